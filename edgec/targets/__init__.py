"""Target profiles (TOML files shipped in this folder) and their lookup."""

from edgec.targets.profile import Target, get, names

__all__ = ["Target", "get", "names"]
