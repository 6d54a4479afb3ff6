"""Run the C++ code that parses untrusted models (LiteRT, TFLite-Micro, libhdf5) in a child process.

A model that crashes an interpreter (a segfault, an abort, a hang, memory
exhaustion) must not take edgec down with it. Every call that hands model
bytes to LiteRT or TFLite-Micro, and the first read of a model's HDF5 data
(:mod:`edgec.load.hdf5`), goes through :func:`call`: the function runs
in one long-lived child (``python -m edgec.runtime._child``, which imports
neither TensorFlow nor the CLI), with an address-space limit
(:mod:`edgec.load.limits`) and a time limit. If the child dies, the call raises a
:class:`~edgec.errors.RuntimeCheckError` naming the model (see
:func:`model_label`) and the signal, and the next call starts a fresh child.

The child only runs functions of the modules in ``ALLOWED_MODULES``. Its
answers are unpickled with a whitelist of classes (NumPy arrays, edgec's
errors and measurement records), so even a child that a hostile model had
taken over could not make the parent run code.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import io
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile

from edgec import errors
from edgec.errors import InterpreterCrash, RuntimeCheckError
from edgec.load import limits

ALLOWED_MODULES = ("edgec.runtime.micro", "edgec.runtime.litert", "edgec.load.hdf5")  # also enforced by the child
HEADER = struct.Struct("<Q")  # frame length before each pickled call or answer
_LABEL = contextvars.ContextVar("edgec_model_label", default="the model")
_FIX = contextvars.ContextVar("edgec_model_fix", default="regenerate it with the tool that wrote it")
TIMEOUT_S = 240.0  # one call: TFLite-Micro's arena bisection or a verification run (a WHILE that never ends)
TIMEOUT_ENV = "EDGEC_INTERPRETER_TIMEOUT"  # seconds; overrides TIMEOUT_S (a CI job that wants to fail sooner)


def call_timeout() -> float:
    """The time limit of one interpreter call: ``$EDGEC_INTERPRETER_TIMEOUT`` seconds, else :data:`TIMEOUT_S`."""
    text = os.environ.get(TIMEOUT_ENV)
    if text is None:
        return TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1e7:
        raise RuntimeCheckError(f"{TIMEOUT_ENV}={text!r} is not a number of seconds > 0; set it like 60")
    return value


@contextlib.contextmanager
def model_label(label: str, fix: str | None = None):
    """Name the model in crash messages of the calls made inside the block, and say what to do
    about it (``fix``: see :func:`edgec.load.tflite_file.fix_for`)."""
    token = _LABEL.set(label)
    fix_token = _FIX.set(fix) if fix else None
    try:
        yield
    finally:
        _LABEL.reset(token)
        if fix_token is not None:
            _FIX.reset(fix_token)


CHUNK = 25  # samples per call: each call has its own time limit, so a long verification is not one huge call


def chunks(samples):
    """``samples`` in slices of :data:`CHUNK` (at least one slice, so an empty run still runs); a list
    of arrays (one per model input, the same samples) is sliced alike, into lists."""
    if isinstance(samples, list):
        n = len(samples[0]) if samples else 0
        return [[x[i:i + CHUNK] for x in samples] for i in range(0, n, CHUNK)] or [samples]
    return [samples[i:i + CHUNK] for i in range(0, len(samples), CHUNK)] or [samples]


def current_fix() -> str:
    """What to do about the model being checked (set by :func:`model_label`; in the child, by each call)."""
    return _FIX.get()


def set_fix(fix: str) -> None:
    """The child's side of :func:`model_label`: the fix the calls it runs name in their errors."""
    _FIX.set(fix)


class _Unpickler(pickle.Unpickler):
    """Only the classes the interpreters' functions return or raise."""

    _NUMPY = {"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"}
    _NUMPY_MODULES = {"numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy._core.numeric",
                      "numpy.core.numeric"}

    def find_class(self, module, name):
        # Exact names only: pickle resolves a dotted name attribute by attribute, so
        # "EdgecError.__init__.__globals__..." would walk from an allowed class to anything.
        if "." not in name and (
                (module in self._NUMPY_MODULES and name in self._NUMPY)
                or (module == "edgec.errors" and isinstance(getattr(errors, name, None), type)
                    and issubclass(getattr(errors, name), BaseException))
                or (module, name) == ("edgec.runtime.micro", "Arena")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"the interpreter process sent a {module}.{name}")


class _Child:
    def __init__(self):
        self.log = tempfile.TemporaryFile()
        self.timed_out = False
        env = dict(os.environ, EDGEC_CHILD_MEMORY_BYTES=str(limits.current().memory_bytes),
                   EDGEC_PARENT_PID=str(os.getpid()))
        self.proc = subprocess.Popen([sys.executable, "-m", "edgec.runtime._child"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, env=env,
                                     start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, payload: bytes):
        self.proc.stdin.write(HEADER.pack(len(payload)) + payload)
        self.proc.stdin.flush()

    def receive(self, timeout: float) -> bytes | None:
        """The answer, or None if the child died or timed out (it is then killed)."""
        fd = self.proc.stdout
        header = self._read(fd, HEADER.size, timeout)
        if header is None:
            return None
        return self._read(fd, HEADER.unpack(header)[0], timeout)

    def _read(self, fh, n: int, timeout: float) -> bytes | None:
        buf = io.BytesIO()
        while buf.tell() < n:
            ready, _, _ = select.select([fh], [], [], timeout)
            if not ready:
                self.timed_out = True
                self.kill()
                return None
            chunk = os.read(fh.fileno(), n - buf.tell())
            if not chunk:
                return None
            buf.write(chunk)
        return buf.getvalue()

    def kill(self):
        if self.alive():
            self.proc.kill()
        self.proc.wait()


_child: _Child | None = None


def _get() -> _Child:
    global _child
    if _child is None or not _child.alive():
        _child = _Child()
    return _child


def prestart() -> None:
    """Start the child now, so that its imports (LiteRT, TFLite-Micro: a quarter of a second) overlap
    edgec's own; the command line does this before it imports the library (and stops it again if
    --max-memory asks for another limit than the one it started with)."""
    _get()


@atexit.register
def shutdown():
    """Stop the child (it also exits by itself when edgec's end of the pipe closes)."""
    global _child
    if _child is not None:  # it holds nothing to save: its answers are in, so it is not waited for
        _child.kill()
        _child = None


def _death(child: _Child, runtime: str, timeout: float, fix: str) -> InterpreterCrash:
    label = _LABEL.get()
    if child.timed_out:
        return InterpreterCrash.because("timed out", f"{runtime} did not finish with {label} within {timeout:.0f} s "
                                        f"and was stopped; the model is far too large or malformed; {fix}")
    code = child.proc.returncode
    try:
        how = signal.Signals(-code).name if code < 0 else f"exit code {code}"
    except ValueError:
        how = f"signal {-code}"
    mem = limits.current().memory_bytes
    return InterpreterCrash.because(how, f"{runtime} crashed ({how}) on {label}; edgec's checks passed the file, so "
                                         f"it is malformed in a way they miss, needs more than the {mem // 2**20} MiB "
                                         f"allowed (--max-memory), or hits a bug in {runtime}; {fix}")


def call(fn, *args, runtime: str, timeout: float | None = None, fix: str | None = None, fresh: bool = False,
         **kwargs):
    """``fn(*args, **kwargs)`` run in the child; its EdgecErrors are re-raised here.

    ``runtime`` names the C++ library ``fn`` drives and ``fix`` what the user
    should do, for the messages when the child dies or fails. ``fresh`` runs
    ``fn`` in a new child that is discarded afterwards (for C++ code whose
    failures leave state behind that a later call can trip over).

    Raises:
        InterpreterCrash: the child crashed or ran out of time.
        RuntimeCheckError: the child ran out of memory or failed otherwise.
    """
    if fn.__module__ not in ALLOWED_MODULES:
        raise ValueError(f"{fn.__module__}.{fn.__qualname__} may not run in the interpreter process")
    fix = fix or _FIX.get()
    timeout = timeout or call_timeout()
    payload = pickle.dumps((fn.__module__, fn.__qualname__, args, kwargs, fix), protocol=pickle.HIGHEST_PROTOCOL)
    if fresh:
        shutdown()
    try:
        return _call(payload, runtime, timeout, fix)
    finally:
        if fresh:
            shutdown()


def _call(payload: bytes, runtime: str, timeout: float, fix: str):
    child = _get()
    try:
        child.send(payload)
        answer = child.receive(timeout)
    except (BrokenPipeError, ConnectionResetError):
        answer = None
    if answer is None:
        child.kill()
        raise _death(child, runtime, timeout, fix)
    status, value = _Unpickler(io.BytesIO(answer)).load()
    if status == "ok":
        return value
    if status == "error":
        raise value
    raise RuntimeCheckError(f"{runtime} failed on {_LABEL.get()}: {value}; {fix}")
