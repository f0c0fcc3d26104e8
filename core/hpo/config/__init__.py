"""Bundled HPO configs: default.yaml (extend it with _base_: ${pkg:core.hpo.config}/default.yaml)."""
