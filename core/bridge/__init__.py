"""core.bridge (see README.md)."""
