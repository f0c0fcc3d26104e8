"""kakehashi applications; each subpackage is one app (see README.md)."""
