"""core.train (see README.md)."""
