"""apps.robots (see README.md)."""
