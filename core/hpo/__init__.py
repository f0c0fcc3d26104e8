"""core.hpo (see README.md)."""
