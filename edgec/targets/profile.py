"""The :class:`Target` profile: a chip (or phone) and its budgets, read from TOML.

Built-in profiles are the ``*.toml`` files beside this module; a user's own
profile is selected by path. Sizes are stored in bytes and times in
milliseconds; formatting happens only when a report is rendered.
"""

from __future__ import annotations

import dataclasses
import tomllib
from importlib import resources
from pathlib import Path

from edgec.config import check_keys
from edgec.errors import TargetError


@dataclasses.dataclass(frozen=True)
class Target:
    """A deployment target and its default budgets."""

    name: str
    description: str
    kind: str  # "mcu" or "mobile"
    runtime: str  # "tflite-micro" or "litert"
    flash_bytes: int | None = None
    ram_bytes: int | None = None
    clock_hz: int | None = None
    budgets: dict = dataclasses.field(default_factory=dict)
    source: str = ""

    _KINDS = ("mcu", "mobile")

    @classmethod
    def from_dict(cls, data: dict, source: str) -> "Target":
        fields = [f.name for f in dataclasses.fields(cls) if f.name != "source"]
        check_keys(data, fields, f"target profile {source}", TargetError)
        missing = [k for k in ("name", "description", "kind", "runtime") if k not in data]
        if missing:
            raise TargetError(f"target profile {source} lacks {', '.join(missing)}; add them to the file")
        if data["kind"] not in cls._KINDS:
            raise TargetError(f"target profile {source}: kind '{data['kind']}' is not one of {', '.join(cls._KINDS)}")
        return cls(**data, source=source)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _builtin_files() -> dict[str, object]:
    folder = resources.files("edgec.targets")
    return {p.name[:-5]: p for p in folder.iterdir() if p.name.endswith(".toml")}


def names() -> list[str]:
    """Names of the built-in profiles."""
    return sorted(_builtin_files())


def _parse(text: str, source: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"target profile {source} is not valid TOML ({exc}); fix the file") from None


def get(name_or_path: str) -> Target:
    """A built-in profile by name, or a user's profile by path.

    Raises:
        TargetError: unknown name, unreadable or malformed profile.
    """
    builtin = _builtin_files()
    if name_or_path in builtin:
        return Target.from_dict(_parse(builtin[name_or_path].read_text(encoding="utf-8"), name_or_path), name_or_path)
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise TargetError(f"target profile {path} does not exist; pass a built-in name ({', '.join(names())}) "
                              "or a .toml file")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TargetError(f"cannot read target profile {path} ({exc}); check the file") from None
        return Target.from_dict(_parse(text, str(path)), str(path))
    raise TargetError(f"unknown target '{name_or_path}'; use one of {', '.join(names())} or a path to a .toml profile")
