"""core.hpo.simulator (see README.md)."""
