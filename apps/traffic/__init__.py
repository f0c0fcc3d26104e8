"""apps.traffic (see README.md)."""
