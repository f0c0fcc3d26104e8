"""core.workflow (see README.md)."""
