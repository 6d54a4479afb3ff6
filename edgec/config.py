"""Configuration as data: frozen dataclasses with strict ``from_dict``.

An unknown key is an error that suggests the closest known one, so a typo in
a recipe or profile never passes silently.
"""

from __future__ import annotations

import dataclasses
import difflib

from edgec.errors import ConfigError


def check_keys(data: dict, known, where: str, error=ConfigError) -> None:
    """Raise ``error`` naming the first unknown key of ``data`` and the closest known key."""
    known = list(known)
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(sorted(known))}"
            raise error(f"{where}: unknown key '{key}'; {hint}")


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """Everything one ``edgec build`` needs, as plain values."""

    model: str
    data: str
    target: str
    out: str
    name: str | None = None
    calibration_samples: int = 300
    verify_samples: int = 500
    micro_samples: int = 50
    seed: int = 0
    allow_custom_code: bool = False
    kernels: str | None = None
    budgets: tuple = ()  # (name, value in bytes / ms / fraction) pairs overriding the profile

    @classmethod
    def from_dict(cls, data: dict) -> "BuildConfig":
        check_keys(data, [f.name for f in dataclasses.fields(cls)], "build configuration")
        cfg = cls(**data)
        for key in ("calibration_samples", "verify_samples", "micro_samples"):
            if int(getattr(cfg, key)) < 1:
                raise ConfigError(f"{key} must be at least 1, got {getattr(cfg, key)}")
        return cfg

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
