"""Arena: edgec's reported figure against TFLite-Micro's own record and against a lower bound.

- edgec's figure comes from the CLI (`edgec check MODEL --json`), as a user gets it.
- TFLite-Micro's record is read here, independently of edgec's code: an
  interpreter with a generous arena, then ``print_allocations()`` (the
  RecordingMicroAllocator's "Arena allocation total").
- The lower bound is the largest sum of activation tensors alive at any op,
  computed here from LiteRT's view of the graph (not edgec's parser): a
  tensor is alive from the op producing it (or the start, for graph inputs)
  to its last reader (or the end, for graph outputs). No memory plan can place
  the activations of an op in less; the gap between TFLite-Micro's planned
  head and this bound is what a better plan could still save.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np

from common import EDGEC, ENV, REFERENCES, SHARED, shared_present
from edgec.report.markdown import md_table


def tflm_record(data: bytes) -> dict:
    """TFLite-Micro's RecordingMicroAllocator record for ``data`` (trusted models only: runs in-process)."""
    from tflite_micro.python.tflite_micro import runtime

    from edgec.capture import captured_fd2

    interpreter = runtime.Interpreter.from_bytes(data, arena_size=16 << 20)
    with captured_fd2() as log:  # print_allocations writes to the C-level stderr
        interpreter.print_allocations()
    text = log[0]
    return {k: int(re.search(rf"Arena allocation {k} (\d+) bytes", text).group(1)) for k in ("total", "head", "tail")}


def live_lower_bound(data: bytes) -> int:
    """Largest sum of bytes of activation tensors alive at any op (from LiteRT's op and tensor details)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=data, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    ops = it._get_ops_details()
    size = {t["index"]: int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize for t in it.get_tensor_details()}
    first, last = {}, {}
    for t in it.get_input_details():
        first[t["index"]] = 0
    for i, op in enumerate(ops):
        for t in op["outputs"]:
            first.setdefault(t, i)
        for t in op["inputs"]:
            if t >= 0:
                last[t] = i
    for t in it.get_output_details():
        last[t["index"]] = len(ops) - 1
    activations = [t for t in first]  # produced by an op or fed in: everything else is a constant
    return max(sum(size[t] for t in activations if first[t] <= i <= last.get(t, first[t])) for i in range(len(ops)))


def _edgec_arena(path: Path) -> dict:
    proc = subprocess.run(EDGEC + ["check", str(path), "--target", "cortex-m4", "--json"], capture_output=True,
                          text=True, env=ENV)
    if proc.returncode not in (0, 1):  # 1: over a budget; the measurements are still there
        raise RuntimeError(f"edgec check {path} failed: {proc.stderr}")
    return json.loads(proc.stdout)["measurements"]


def run(models: list[tuple[str, Path]]) -> list[dict]:
    rows = []
    for label, path in models:
        data = path.read_bytes()
        ours = _edgec_arena(path)
        record = tflm_record(data)
        bound = live_lower_bound(data)
        rows.append({"model": label, "edgec_arena": ours["arena_bytes"], "edgec_peak_live": ours["peak_live_bytes"],
                     "tflm_total": record["total"], "tflm_head": record["head"], "tflm_tail": record["tail"],
                     "equal": ours["arena_bytes"] == record["total"], "lower_bound": bound,
                     "head_over_bound": round(record["head"] / bound, 3), "saving_bytes": record["head"] - bound})
    return rows


def models(sample_tflite: Path) -> list[tuple[str, Path]]:
    out = [("samples/digits (int8 by edgec)", sample_tflite)]
    if shared_present():
        out += [(f"{r['int8']} (MLPerf Tiny reference)", SHARED / r["int8"]) for r in REFERENCES]
    return out


def markdown(rows: list[dict]) -> list[str]:
    lines = ["## Arena: edgec vs TFLite-Micro's own record, and the live-tensor lower bound", "",
             *md_table(["model", "edgec arena (B)", "TFLite-Micro record total (B)", "equal",
                        "planned activations, head (B)", "lower bound (B)", "**head / bound**",
                        "a better plan could save (B)"],
                       [[r["model"], f"{r['edgec_arena']:,}", f"{r['tflm_total']:,}", "yes" if r["equal"] else "NO",
                         f"{r['tflm_head']:,}", f"{r['lower_bound']:,}", f"**{r['head_over_bound']}x**",
                         f"{r['saving_bytes']:,}"] for r in rows])]
    lines += ["", "edgec's arena is the smallest `arena_size` with which TFLite-Micro allocates (bisection), read from "
              "`edgec check --json`; the record is TFLite-Micro's RecordingMicroAllocator total for the same file, "
              "read by this benchmark directly. Both are x86-64 host figures (reference kernels); the tail holds "
              "runtime structures with pointers and is smaller on a 32-bit MCU. The lower bound counts tensor "
              "bytes only (no alignment, no kernel scratch buffers).", ""]
    return lines
