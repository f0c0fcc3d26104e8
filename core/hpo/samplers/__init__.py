"""core.hpo.samplers (see README.md)."""
