"""Example HPO configs (quadratic.yaml: command trials on the local backend)."""
