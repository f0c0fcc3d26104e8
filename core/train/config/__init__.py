"""Bundled training configs: ``default.yaml`` (what every training config extends) and examples."""
