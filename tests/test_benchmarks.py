"""The benchmark harness: its published figures match its results, and its instruments measure what they claim."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import ROOT, have, shared_model
from edgec.load.tflite_file import read_tflite
from edgec.runtime import micro

sys.path.insert(0, str(ROOT / "benchmarks"))

import arena  # noqa: E402
import common  # noqa: E402
import headline  # noqa: E402
import tflm_runtime  # noqa: E402

RESULTS = json.loads((ROOT / "benchmarks" / "results.json").read_text())


def test_readme_headline_is_rendered_from_results():
    """No figure in the README's benchmark block is typed by hand: it is exactly what results.json renders."""
    lines = headline.render(RESULTS)
    assert len(lines) >= 10
    assert headline.block((ROOT / "README.md").read_text()) == lines


def test_committed_results_cover_every_section():
    assert RESULTS["shared_models"], "results.json must come from a run with ../shared/models present"
    for section in ("fidelity", "overhead", "gate", "arena", "latency", "codegen", "codegen_firmware", "compression"):
        assert RESULTS.get(section), section
    results_md = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    for row in RESULTS["fidelity"] + RESULTS["overhead"]:
        assert row["model"] in results_md


def test_process_memory_counts_grandchildren():
    """The overhead benchmark's peak memory includes a child's child (edgec's interpreter process)."""
    code = ("import subprocess, sys; subprocess.run([sys.executable, '-c', "
            "'b = bytearray(300 << 20); import time; time.sleep(0.5)'])")
    cost = common.run_measured([sys.executable, "-c", code])
    assert cost.peak_tree_rss >= 300 << 20
    assert cost.peak_process_rss >= 300 << 20
    assert 0.5 <= cost.seconds < 30


def _arena_cross_check(data: bytes) -> None:
    record = arena.tflm_record(data)
    measured = micro.measure_arena(data)
    assert measured.bytes == record["total"]
    assert read_tflite(data).peak_live_bytes == arena.live_lower_bound(data)
    assert record["head"] >= arena.live_lower_bound(data)


def test_arena_equals_tflite_micro_record_and_live_bound_matches(tiny_tflite):
    """edgec's arena against TFLite-Micro's own record, and its live-tensor peak against an independent count."""
    _arena_cross_check(tiny_tflite)


@pytest.mark.parametrize("name", ["kws_ref_model.tflite", "ic_resnet8_ref_int8.tflite"])
def test_arena_cross_check_on_reference_models(name):
    _arena_cross_check(shared_model(name).read_bytes())


# --- the linker walk that measures TFLite-Micro's runtime code (benchmarks/tflm_runtime.py) ---------------

needs_gcc = pytest.mark.skipif(not have("gcc", "objdump", "readelf", "nm", "c++filt", "size"),
                               reason="gcc and binutils are needed (make test installs them)")
needs_gxx = pytest.mark.skipif(not have("gcc", "g++", "objdump", "readelf", "nm", "c++filt"),
                               reason="gcc, g++ and binutils are needed (make test installs them)")

WALK_CPP = r"""
struct Shape { virtual int area(int) const = 0; virtual ~Shape() {} };
struct Square : Shape { int area(int s) const override; };
int Square::area(int s) const { return s * s; }
struct Unused : Shape { int area(int s) const override; };
int Unused::area(int s) const { return s + 1000; }

int counter;                                   // global: read through the GOT under -fPIC
extern "C" __attribute__((noinline)) int through_plt(int x) { return x * 7 + counter; }
static int doubled(int x) { return 2 * x; }
static int tripled(int x) { return 3 * x; }
static int (*const table[])(int) = {doubled, tripled};   // function pointers in relocated data
extern "C" int unreferenced(int x) { return x ^ 0x5a5a; }

extern "C" int entry(int x) {
  Square sq;                                   // its vtable: reached through a relocation in code
  const Shape& s = sq;
  counter += table[x & 1](x) + through_plt(x);
  static const char msg[] = "a string in read-only data, long enough to see";
  return s.area(x) + msg[x & 31];
}
"""


def _reached_names(binary, reached) -> set[str]:
    return {n for p in reached for n in binary.names(p)}


@needs_gxx
def test_linker_walk_follows_plt_got_vtables_and_data_relocations(tmp_path):
    """The walk reaches what the entry point uses through every kind of reference, and nothing else."""
    import subprocess

    (tmp_path / "walk.cc").write_text(WALK_CPP)
    so = tmp_path / "libwalk.so"
    subprocess.run(["g++", "-O2", "-fPIC", "-shared", "-fno-exceptions", str(tmp_path / "walk.cc"), "-o", str(so)],
                   check=True)
    binary = tflm_runtime.Binary(so)
    roots = [p for p in binary.pieces if p.name == "entry"]
    footprint, reached = binary.reach(roots)
    names = _reached_names(binary, reached)
    for expected in ("through_plt", "doubled(int)", "tripled(int)", "Square::area(int) const",
                     "vtable for Square", "counter"):
        assert any(expected in n for n in names), (expected, sorted(names))
    assert not any("unreferenced" in n or "Unused" in n for n in names), sorted(names)
    assert footprint.rodata >= len("a string in read-only data, long enough to see")
    assert footprint.bss >= 4


@needs_gcc
def test_linker_walk_reaches_exactly_the_symbols_of_generated_c(tiny_tflite, tmp_path):
    """On the generated C, where everything is reachable from <name>_infer, the walk finds every symbol
    the object file defines, each with its size, and nothing else; what it does not count of the
    object's sections is alignment padding between them (exact, no tolerance)."""
    import subprocess

    from edgec.emit.codegen import generate

    gen = generate(tiny_tflite, read_tflite(tiny_tflite), "tiny", "tiny")
    walked, sections = tflm_runtime.c_footprint(gen, tmp_path)
    table = subprocess.run(["nm", "-S", "--defined-only", str(tmp_path / "tiny_x86.o")], capture_output=True,
                           text=True, check=True).stdout
    symbols = {parts[3]: int(parts[1], 16) for parts in map(str.split, table.splitlines()) if len(parts) == 4}
    binary = tflm_runtime.Binary(tmp_path / "libtiny_x86.so")
    _, reached = binary.reach([p for p in binary.pieces if p.name == "tiny_infer"])
    named = {p.name: p.size for p in reached if not p.name.startswith("<anonymous")}
    assert named == symbols
    for kind in ("code", "rodata", "data", "bss"):
        assert getattr(walked, kind) <= getattr(sections, kind), kind


@pytest.fixture(scope="module")
def tflm_library():
    return tflm_runtime.Binary(tflm_runtime.runtime_library())


@needs_gxx
def test_tflm_runtime_walk_keeps_only_the_models_kernels(tflm_library):
    small, small_full = tflm_runtime.tflm_footprint(["FULLY_CONNECTED", "SOFTMAX"], tflm_library)
    big, _ = tflm_runtime.tflm_footprint(["FULLY_CONNECTED", "SOFTMAX", "CONV_2D", "DEPTHWISE_CONV_2D"],
                                            tflm_library)
    assert big.code > small.code > 0
    assert small_full.flash > small.flash  # the wheel's tensor decompression, left out of `small`
    patterns = tflm_runtime.op_roots(["FULLY_CONNECTED", "SOFTMAX"])
    _, reached = tflm_library.reach(tflm_library.roots(patterns), skip=tflm_runtime.COMPRESSION)
    names = _reached_names(tflm_library, reached)
    assert any("Register_FULLY_CONNECTED" in n for n in names)
    assert any("MicroInterpreter::Invoke" in n for n in names)
    assert any("GreedyMemoryPlanner" in n for n in names)
    assert not any("Register_CONV_2D" in n or "ConvEval" in n for n in names)
    assert not any("pybind11" in n or "Recording" in n or "ompress" in n for n in names)
    # the walk keeps a fraction of the library: the Python bindings and other kernels stay out
    total_code = sum(p.size for p in tflm_library.pieces if p.kind == "code")
    assert small.code < 0.25 * total_code


def test_tflm_runtime_walk_refuses_an_op_it_has_no_parser_for():
    with pytest.raises(KeyError, match="LSTM"):
        tflm_runtime.op_roots(["FULLY_CONNECTED", "LSTM"])
