"""Run a model in the TFLite-Micro interpreter and measure its tensor arena.

The arena is measured, not guessed: TFLite-Micro's RecordingMicroAllocator
reports the bytes it allocated (head: activation buffers planned by the
memory planner; tail: the runtime's persistent structures), and a bisection
finds the smallest ``arena_size`` with which the interpreter allocates. The
figures are those of the x86-64 host build of TFLite-Micro with reference
kernels: on a 32-bit MCU the tail (structures holding pointers) is smaller,
and optimized kernels may add scratch buffers.

:func:`measure_arena` and :func:`run` run TFLite-Micro in edgec's interpreter
process (:mod:`edgec.runtime.sandbox`), after LiteRT's flatbuffer verifier has
accepted the bytes there: TFLite-Micro itself trusts every offset.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import select
import signal
from typing import Any

import numpy as np

from edgec.capture import captured_fd2
from edgec.errors import InterpreterCrash, ModelLoadError, RuntimeCheckError, UnsupportedOpError
from edgec.runtime import sandbox

_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
_HEAD = re.compile(r"Arena allocation head (\d+) bytes")
_TAIL = re.compile(r"Arena allocation tail (\d+) bytes")
_MAX_ARENA = 256 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Arena:
    """Measured TFLite-Micro arena, in bytes."""

    bytes: int
    head_bytes: int
    tail_bytes: int
    recorded_bytes: int
    host: str = "x86-64 host, TFLite-Micro reference kernels"
    bytes_32bit: int | None = None  # the same arena on a 32-bit MCU (tail32), estimated from the record

    def to_dict(self) -> dict:
        return {"arena_bytes": self.bytes, "head_bytes": self.head_bytes,
                "tail_bytes": self.tail_bytes, "recorded_bytes": self.recorded_bytes,
                "measured_on": self.host, "arena_bytes_32bit": self.bytes_32bit,
                "note": "arena_bytes is measured with the 64-bit host build and is what the headers and the RAM "
                        "budget use (it always suffices); arena_bytes_32bit estimates a 32-bit MCU's smallest "
                        "arena with TFLite-Micro's reference kernels (CMSIS-NN's scratch buffers add to it)"}


# The 32-bit (4-byte pointer and size_t) sizes of the structures TFLite-Micro's allocation record counts, from
# their declarations (TfLiteEvalTensor: data, dims, type; NodeAndRegistration: TfLiteNode's six pointers and
# an int, and a registration pointer; the static-memory TfLiteTensor; per quantized tensor an affine
# quantization struct and its zero-point array, in two allocations).
_SIZE_32BIT = {"TfLiteEvalTensor data": 12, "NodeAndRegistration struct": 32, "Persistent TfLiteTensor data": 40,
               "Persistent TfLiteTensor quantization data": 10}
_KEPT_32BIT = ("Persistent buffer data",)  # kernels' own data: integers, the same on 32 bits
# The rest of the tail, which the record does not itemize (the allocator's own objects; a firmware's plain
# MicroAllocator is smaller than the recording one the host uses): on a Cortex-M4 the measured smallest arenas
# of three models (../shared/mcu/tflm_cortex_m4.json, reference kernels) minus their head and itemized
# structures at the sizes above leave 164, 260 and 272 bytes; their mean.
_UNITEMIZED_32BIT = 232
_KIND = re.compile(r"'([^']+)' used (\d+) bytes with alignment overhead \(requested \d+ bytes for (\d+) ")


def arena_32bit(head: int, record: str) -> int | None:
    """The smallest arena on a 32-bit MCU: TFLite-Micro's planned head (the same) plus the tail recounted
    at 32-bit sizes. None when the record does not itemize what it should."""
    kinds = {m.group(1): (int(m.group(2)), int(m.group(3))) for m in _KIND.finditer(record)}
    if set(kinds) != set(_SIZE_32BIT) | set(_KEPT_32BIT):
        return None
    tail = sum(count * _SIZE_32BIT[k] for k, (_, count) in kinds.items() if k in _SIZE_32BIT)
    return head + tail + sum(kinds[k][0] for k in _KEPT_32BIT) + _UNITEMIZED_32BIT


# The first tflite-micro wheel with both halves of LUT weight compression (the compressor and DECODE).
WITH_DECODE = "tflite-micro>=0.dev20261023182759"


def version() -> str:
    """The installed tflite-micro's version."""
    from importlib import metadata

    try:
        return metadata.version("tflite-micro")
    except metadata.PackageNotFoundError:
        return "not installed"


def _has_decode(data: bytes) -> bool:
    """Whether the model holds TFLite-Micro's DECODE custom op (LUT-compressed weights)."""
    if not data:
        return False
    from edgec.load.tflite_file import DECODE, read_tflite

    try:
        return DECODE in read_tflite(data).op_counts
    except Exception:  # noqa: BLE001  # the refusal is reported either way
        return False


def _runtime():
    from tflite_micro.python.tflite_micro import runtime

    return runtime


def _construct(data: bytes, arena_size: int):
    """Interpreter or None if it does not allocate with this arena; C++ logs are captured."""
    runtime = _runtime()
    with captured_fd2() as log:
        try:
            return runtime.Interpreter.from_bytes(bytes(data), arena_size=arena_size), log
        except (RuntimeError, ValueError):
            return None, log


_MISSING = re.compile(r"Didn't find op for builtin opcode '(\w+)'")
_MISSING_CUSTOM = "Failed to get registration from op code CUSTOM"
_FAILED_NODE = re.compile(r"Node (\w+) \(number (\d+)\) failed to (?:prepare|init|allocate)")
_KERNEL_CHECK = re.compile(r"micro/kernels/(\S+?\.cc:\d+ .+)")


def _refusal(log_text: str, data: bytes = b"") -> RuntimeCheckError:
    """The error for a model TFLite-Micro will not load, naming the op when its log does."""
    lines = [ln.strip() for ln in log_text.splitlines() if ln.strip()]
    text = "\n".join(lines)
    if _MISSING_CUSTOM in text and _has_decode(data):
        return RuntimeCheckError(f"the installed TFLite-Micro (tflite-micro {version()}) has no DECODE op, which "
                                 "this model's LUT-compressed weights need; install the version edgec depends on "
                                 f"(pip install --upgrade '{WITH_DECODE}'), or build with --lut off")
    if _MISSING_CUSTOM in text:
        return UnsupportedOpError("TFLite-Micro", "CUSTOM", None, "TFLite-Micro has no kernel registered for it")
    if m := _MISSING.search(text):
        return UnsupportedOpError("TFLite-Micro", m.group(1), None, "TFLite-Micro has no kernel for it")
    if m := _FAILED_NODE.search(text):
        check = _KERNEL_CHECK.search(text)
        detail = f" ({check.group(1)})" if check else ""
        return UnsupportedOpError("TFLite-Micro", m.group(1), int(m.group(2)),
                                  f"TFLite-Micro's {m.group(1)} kernel refuses its tensor types{detail}")
    return RuntimeCheckError("the TFLite-Micro interpreter cannot load the model: "
                             f"{lines[0] if lines else 'no message'}; use only ops TFLite-Micro supports")


def load(data: bytes, arena_size: int | None = None):
    """A TFLite-Micro interpreter for ``data`` with a generous arena.

    Raises:
        UnsupportedOpError: TFLite-Micro has no kernel for an op, or its kernel
            refuses the op's types (``op`` and ``index`` say which).
        RuntimeCheckError: TFLite-Micro cannot load the model for another reason.
    """
    size = arena_size or max(len(data) * 10, 1 << 20)
    it, log = _construct(data, size)
    if it is None:
        it2, log2 = _construct(data, _MAX_ARENA)
        if it2 is None:
            raise _refusal(log[0] + log2[0], data)
        it = it2
    return it


def verified(data: bytes, litert_verify: bool = True) -> bytes:
    """``data`` once the flatbuffer verifier LiteRT compiles in has accepted it (in this process).

    ``litert_verify=False`` skips it, for a file on which LiteRT itself crashes but
    edgec's own verifier (:mod:`edgec.load.flatbuffer_check`, run on every file
    before any C++ sees it) passed: an MCU target does not need LiteRT.

    Raises:
        ModelLoadError: the verifier refuses the bytes.
    """
    if not litert_verify:
        return data
    from ai_edge_litert import interpreter as lrt

    try:
        with captured_fd2():
            lrt.Interpreter(model_content=bytes(data))
    except ValueError as exc:
        if "not a valid Flatbuffer" in str(exc):
            raise ModelLoadError("the model is not a valid TFLite flatbuffer (LiteRT's verifier refuses it); "
                                 f"{sandbox.current_fix()}") from None
    except RuntimeError:
        pass  # ops LiteRT cannot resolve: the verifier itself passed
    return data


def measure_arena(data: bytes, litert_verify: bool = True) -> Arena:
    """Smallest arena with which TFLite-Micro allocates ``data``, plus its record (in the sandbox).

    The bisection runs in the interpreter process; a forked copy of it answers the probes (see
    :class:`_Prober`). Some arena sizes just below the minimum crash TFLite-Micro instead of failing
    cleanly (seen on models whose FULLY_CONNECTED ops have no bias: a segfault for 1448 and 1480 bytes
    when 1512 are needed, inside GreedyMemoryPlanner::CalculateOffsetsIfNeeded, after TFLite-Micro logs
    that temporary allocations were not freed); such a size kills only the copy and counts as one that
    does not allocate. If the interpreter process itself crashes (while recording), the search is
    repeated with every probe in a fresh process.

    Raises:
        RuntimeCheckError: the model does not load even with a 256 MiB arena, or crashes TFLite-Micro.
    """
    data = bytes(data)
    try:
        return sandbox.call(_measure_arena, data, litert_verify, runtime="TFLite-Micro")
    except InterpreterCrash:
        record = sandbox.call(_record, data, litert_verify, runtime="TFLite-Micro", fresh=True)

    def allocates(size: int) -> bool:
        try:
            return sandbox.call(_allocates, data, size, runtime="TFLite-Micro", fresh=True)
        except InterpreterCrash:  # a firmware with this arena would crash too: it does not allocate
            return False

    return Arena(_smallest(allocates, record[0]), record[1], record[2], record[0],
                 bytes_32bit=arena_32bit(record[1], record[3]))


def _smallest(allocates, recorded: int) -> int:
    """The smallest arena size for which ``allocates(size)``, searched upwards from the recorded total.

    TFLite-Micro needs at least what it records (its total after allocation;
    temporary allocations during it can need more, and the arena's start is
    aligned): the search never probes below it, where tiny arenas crash it.
    """
    lo, hi = recorded - 1, max(recorded, 1024)
    while not allocates(hi):
        lo, hi = hi, hi * 2
        if hi > _MAX_ARENA:
            raise RuntimeCheckError("the TFLite-Micro arena exceeds 256 MiB; the model is far too large for an MCU")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if allocates(mid):
            hi = mid
        else:
            lo = mid
    return hi


def run(data: bytes, inputs_q: np.ndarray, litert_verify: bool = True) -> np.ndarray:
    """Run every int8 sample of ``inputs_q`` through TFLite-Micro, one at a time (in the sandbox);
    the first output tensor's values, flattened, one row per sample."""
    return run_many(data, [np.asarray(inputs_q)], litert_verify)[0]


def run_many(data: bytes, inputs_q: list[np.ndarray], litert_verify: bool = True) -> list[np.ndarray]:
    """:func:`run` for several inputs (one array per input tensor, in the interpreter's order);
    one (samples, elements) array per output tensor."""
    data, inputs_q = bytes(data), [np.asarray(x) for x in inputs_q]
    parts = [sandbox.call(_run, data, chunk, litert_verify, runtime="TFLite-Micro")
             for chunk in sandbox.chunks(inputs_q)]
    return [np.concatenate([part[k] for part in parts]) for k in range(len(parts[0]))]


def run_all_outputs(data: bytes, input_q: np.ndarray) -> list[np.ndarray]:
    """Every graph output of ``data`` for one int8 input (in the sandbox)."""
    return sandbox.call(_run_all_outputs, bytes(data), np.asarray(input_q), runtime="TFLite-Micro")


def _run_all_outputs(data: bytes, input_q: np.ndarray) -> list[np.ndarray]:
    it = load(verified(data))
    detail = it.get_input_details(0)
    it.set_input(input_q.reshape(tuple(detail["shape"])).astype(detail["dtype"]), 0)
    it.invoke()
    n = len(read_outputs(it))
    return [np.array(it.get_output(i)).reshape(-1).copy() for i in range(n)]


def read_outputs(it) -> list:
    """The output details of a TFLite-Micro interpreter, however many outputs it has."""
    details, i = [], 0
    while True:
        try:
            details.append(it.get_output_details(i))
        except (IndexError, RuntimeError, ValueError):
            return details
        i += 1


def _record(data: bytes, litert_verify: bool = True) -> tuple[int, int, int, str]:
    """TFLite-Micro's own allocation record (total, head, tail, and its text) with a generous arena."""
    it = load(verified(data, litert_verify))
    with captured_fd2() as log:
        it.print_allocations()
    total, head, tail = (int(m.group(1)) if (m := rx.search(log[0])) else 0 for rx in (_TOTAL, _HEAD, _TAIL))
    return total, head, tail, log[0]


def _allocates(data: bytes, size: int) -> bool:
    return _construct(data, size)[0] is not None


PROBE_TIMEOUT_S = 60.0  # one allocation probe


class _Prober:
    """Allocation probes answered by a forked copy of this process (TFLite-Micro is loaded already), one
    after another in a loop: a size on which TFLite-Micro crashes kills only the copy, and the next probe
    forks a new one (a few milliseconds; crashes are rare, so most probes cost one interpreter
    construction). Use it as a context manager; the copy exits when its pipe closes."""

    def __init__(self, data: bytes):
        self.data = data
        self.worker: tuple[int, int, int] | None = None  # pid, its request pipe, its answer pipe

    def __enter__(self) -> "_Prober":
        return self

    def __exit__(self, *exc) -> None:
        self._stop()

    def _start(self) -> tuple[int, int, int]:
        requests, answers = os.pipe(), os.pipe()
        pid = os.fork()
        if pid == 0:  # the copy: read sizes, answer one byte each; run none of the parent's cleanup
            try:
                os.close(requests[1])
                os.close(answers[0])
                while len(raw := os.read(requests[0], 8)) == 8:
                    os.write(answers[1], b"1" if _allocates(self.data, int.from_bytes(raw, "little")) else b"0")
            finally:
                os._exit(0)
        os.close(requests[0])
        os.close(answers[1])
        return pid, requests[1], answers[0]

    def _stop(self, kill: bool = True) -> int:
        """The copy's wait status, once it is gone."""
        if self.worker is None:
            return 0
        pid, request, answer = self.worker
        self.worker = None
        os.close(request)
        os.close(answer)
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return os.waitpid(pid, 0)[1]

    def probe(self, size: int) -> str:
        """``"allocates"``, ``"refused"``, or ``"crashed (SIGSEGV)"`` and the like.

        Raises:
            InterpreterCrash: the copy neither answered nor crashed within :data:`PROBE_TIMEOUT_S`.
        """
        if self.worker is None:
            self.worker = self._start()
        _, request, answer = self.worker
        os.write(request, size.to_bytes(8, "little"))
        ready, _, _ = select.select([answer], [], [], PROBE_TIMEOUT_S)
        if not ready:
            self._stop()
            raise InterpreterCrash.because("timed out", f"TFLite-Micro did not finish allocating a {size}-byte "
                                           f"arena within {PROBE_TIMEOUT_S:.0f} s")
        reply = os.read(answer, 1)
        if reply:
            return "allocates" if reply == b"1" else "refused"
        status = self._stop(kill=False)
        if os.WIFSIGNALED(status):
            return f"crashed ({signal.Signals(os.WTERMSIG(status)).name})"
        raise RuntimeCheckError(f"TFLite-Micro failed unexpectedly while allocating a {size}-byte arena")


def _probe_forked(data: bytes, size: int) -> str:
    """One probe in a forked copy of this process (see :class:`_Prober`)."""
    with _Prober(data) as prober:
        return prober.probe(size)


def _measure_arena(data: bytes, litert_verify: bool = True) -> Arena:
    total, head, tail, record = _record(data, litert_verify)
    if not hasattr(os, "fork"):
        smallest = _smallest(lambda size: _allocates(data, size), total)
    else:  # a size that crashes TFLite-Micro does not allocate: a firmware with that arena would crash too
        with _Prober(data) as prober:
            smallest = _smallest(lambda size: prober.probe(size) == "allocates", total)
    return Arena(bytes=smallest, head_bytes=head, tail_bytes=tail, recorded_bytes=total,
                 bytes_32bit=arena_32bit(head, record))


def _run(data: bytes, inputs_q: list[np.ndarray], litert_verify: bool = True) -> list[np.ndarray]:
    it = load(verified(data, litert_verify))
    details = [it.get_input_details(k) for k in range(len(inputs_q))]
    n_out = len(read_outputs(it))
    results: list[list[Any]] = [[] for _ in range(n_out)]
    for i in range(len(inputs_q[0])):
        for k, (detail, x) in enumerate(zip(details, inputs_q)):
            it.set_input(x[i].reshape(tuple(detail["shape"])).astype(detail["dtype"]), k)
        it.invoke()
        for k in range(n_out):
            results[k].append(np.array(it.get_output(k)).reshape(-1).copy())
        it.reset()
    return [np.stack(r) if r else np.zeros((0, 0), np.int8) for r in results]
