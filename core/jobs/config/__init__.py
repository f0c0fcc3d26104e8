"""Bundled job templates (YAML) of the job backends; site presets in ``sites/``."""
