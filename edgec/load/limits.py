"""Resource limits: what edgec will read and how much memory its interpreters may take.

Files from a pull request can be huge on purpose (a zip bomb of an ``.npz``, a
model whose tensors would need more memory than the CI machine has). edgec
refuses them with a message instead of exhausting memory:

* ``max_input_bytes`` (``--max-input-size`` / ``EDGEC_MAX_INPUT_SIZE``,
  default 2 GiB): the largest model or data file edgec reads, and the largest
  array an ``.npz`` may expand to (its headers are read before its data);
* ``memory_bytes`` (``--max-memory`` / ``EDGEC_MAX_MEMORY``, default 80 % of
  the memory available when edgec starts): the address space of the
  interpreter process, and the bound on a model's activation tensors checked
  before an interpreter allocates them.

Recipes and target profiles are text: at most ``MAX_TEXT_BYTES``.
"""

from __future__ import annotations

import contextvars
import dataclasses
import os
import stat

from edgec.errors import ConfigError, EdgecError
from edgec.units import parse_quantity

MAX_TEXT_BYTES = 1 << 20
DEFAULT_INPUT_BYTES = 2 << 30


def available_memory() -> int:
    """Bytes of memory available now (Linux MemAvailable; physical memory elsewhere)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@dataclasses.dataclass(frozen=True)
class Limits:
    max_input_bytes: int = DEFAULT_INPUT_BYTES
    memory_bytes: int = 0  # 0: 80 % of the available memory

    def __post_init__(self):
        if not self.memory_bytes:
            object.__setattr__(self, "memory_bytes", int(available_memory() * 0.8))


_CURRENT: contextvars.ContextVar[Limits | None] = contextvars.ContextVar("edgec_limits", default=None)


def current() -> Limits:
    limits = _CURRENT.get()
    if limits is None:
        limits = Limits()
        _CURRENT.set(limits)
    return limits


def set_current(limits: Limits) -> None:
    _CURRENT.set(limits)


def parse_size(text: str, option: str) -> int:
    """``"512MiB"``, ``"2GB"``, ``"1048576"`` → bytes."""
    try:
        value = parse_quantity("flash", text)
    except EdgecError:
        raise ConfigError(f"{option} {text!r} is not a size; write it like 512MiB or 2GB") from None
    if not 0 < value <= 2**62:
        raise ConfigError(f"{option} {text!r} must be a size from 1 byte to 4 EiB; write it like 512MiB or 2GB")
    return int(value)


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def check_file_size(path, what: str) -> int:
    """The size of ``path``; an error when it exceeds ``max_input_bytes``, or when ``path`` (or
    what a link points to) is not an ordinary file: a FIFO or device would block or never end,
    and a /proc or /sys file says it is empty while it reads without end."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise InputTooLarge(f"{what} {path} is not a regular file (a FIFO, device or socket); pass a file")
    size = st.st_size
    if size == 0:
        with open(path, "rb") as fh:
            if fh.read(1):
                raise InputTooLarge(f"{what} {path} says it is empty but has content (a /proc or /sys file); "
                                    "pass a real file")
    limit = current().max_input_bytes
    if size > limit:
        raise InputTooLarge(f"{what} {path} is {_mib(size)}, over the {_mib(limit)} input limit; "
                            "pass a smaller file or raise the limit with --max-input-size")
    return size


def read_text(path, what: str, error=ConfigError) -> str:
    """A recipe's or profile's text, refusing files over ``MAX_TEXT_BYTES`` and anything but a regular file."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise error(f"{what} {path} is not a regular file; pass a .toml file")
    size = os.path.getsize(path)
    if size > MAX_TEXT_BYTES:
        raise error(f"{what} {path} is {_mib(size)}; a {what} is text of at most {_mib(MAX_TEXT_BYTES)}; "
                    "pass the right file")
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def check_array_size(nbytes: int, what: str) -> None:
    limit = current().max_input_bytes
    if nbytes > limit:
        raise InputTooLarge(f"{what} would take {_mib(nbytes)} in memory, over the {_mib(limit)} input limit; "
                            "pass smaller data or raise the limit with --max-input-size")


def check_memory(nbytes: int, what: str) -> None:
    limit = current().memory_bytes
    if nbytes > limit:
        raise InputTooLarge(f"{what} needs at least {_mib(nbytes)}, over the {_mib(limit)} edgec may use on "
                            "this machine; shrink the model, or raise the limit with --max-memory")


class InputTooLarge(EdgecError):
    """An input over a resource limit."""
