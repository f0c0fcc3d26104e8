"""apps.audioqa (see README.md)."""
