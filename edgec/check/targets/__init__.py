"""Target profiles (TOML files shipped in this folder) and their lookup."""

from edgec.check.targets.profile import Target, get, names

__all__ = ["Target", "get", "names"]
