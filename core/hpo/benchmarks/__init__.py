"""core.hpo.benchmarks (see README.md)."""
