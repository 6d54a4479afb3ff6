"""The interpreter process of :mod:`edgec.runtime.sandbox` (``python -m edgec.runtime._child``).

Reads length-prefixed pickled calls on stdin, runs them, and answers on a
private copy of stdout: the C++ code's own prints go to stderr, so they cannot
corrupt the answers. Once LiteRT and TFLite-Micro are loaded, limits its
address space to what it maps then plus ``EDGEC_CHILD_MEMORY_BYTES``, and
writes no core files. Exits when stdin closes, and is killed when edgec dies
(PR_SET_PDEATHSIG), even if stuck in C code.
"""

import importlib
import importlib.util
import os
import pickle
import resource
import signal
import sys

from edgec.runtime import sandbox
from edgec.runtime.sandbox import ALLOWED_MODULES, HEADER


def _mapped_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _die_with_parent():
    """Be killed when edgec exits, even while stuck in C code that never reads stdin again (a damaged HDF5
    file can send libhdf5 into an endless loop): otherwise a killed edgec would leave it spinning."""
    import ctypes

    parent = int(os.environ.get("EDGEC_PARENT_PID", "0"))
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: the child still exits when stdin closes
    if parent and os.getppid() != parent:  # edgec died before the line above
        os._exit(1)


def _register_without_init(package: str) -> None:
    """Make ``package`` importable without running its ``__init__``: tflite_micro's also imports its
    compression tools (yaml and the compressor, a tenth of `edgec check`'s time), which this process,
    which only interprets, never uses. Its subpackages import as usual."""
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.submodule_search_locations and package not in sys.modules:
        sys.modules[package] = importlib.util.module_from_spec(spec)


def _limit_resources():
    """No core files; the interpreters may map ``EDGEC_CHILD_MEMORY_BYTES`` beyond what the process
    holds once its libraries are loaded."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for edgec, which then closes the pipe
    import numpy  # noqa: F401  (loaded before the limit: the limit is for the models' memory)
    from ai_edge_litert import interpreter  # noqa: F401

    _register_without_init("tflite_micro")
    from tflite_micro.python.tflite_micro import runtime  # noqa: F401

    limit = int(os.environ.get("EDGEC_CHILD_MEMORY_BYTES", "0"))
    if limit > 0:
        try:
            total = _mapped_bytes() + limit
            resource.setrlimit(resource.RLIMIT_AS, (total, total))
        except (OSError, ValueError):
            pass  # no /proc, or a hard limit already lower


def _read(fh, n):
    data = b""
    while len(data) < n:
        chunk = fh.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _answer(out, status, value):
    try:
        payload = pickle.dumps((status, value), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # an unpicklable result or exception
        payload = pickle.dumps(("failed", f"{type(exc).__name__}: {exc}"))
    out.write(HEADER.pack(len(payload)) + payload)
    out.flush()


def main():
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints of the C++ code must not reach the answer stream
    _die_with_parent()
    _limit_resources()
    from edgec.errors import EdgecError

    stdin = sys.stdin.buffer
    while True:
        header = _read(stdin, HEADER.size)
        if header is None:
            return
        module, name, args, kwargs, fix = pickle.loads(_read(stdin, HEADER.unpack(header)[0]))
        sandbox.set_fix(fix)  # what the messages of errors raised here tell the user to do
        if module not in ALLOWED_MODULES:
            _answer(out, "failed", f"{module} may not run here")
            continue
        try:
            value = getattr(importlib.import_module(module), name)(*args, **kwargs)
        except EdgecError as exc:
            _answer(out, "error", exc)
        except MemoryError:
            _answer(out, "failed", "it ran out of the memory it may use (--max-memory)")
        except Exception as exc:
            _answer(out, "failed", f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
        else:
            _answer(out, "ok", value)


if __name__ == "__main__":
    main()
