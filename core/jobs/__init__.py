"""core.jobs (see README.md)."""
