"""apps.avsl (see README.md)."""
