"""Run every edgec benchmark side by side; write benchmarks/RESULTS.md, results.json and the README's headline.

Every figure is measured in this run, or parsed from ../shared/models/README.md
where it is a published figure (cited as such); nothing is typed in by hand.
The README's headline block (between the ``bench:headline`` markers) is
rewritten from the same results; ``tests/test_benchmarks.py`` checks that it
still matches results.json. Usage: ``make bench`` (or
``.venv/bin/python benchmarks/run.py [SECTION ...]`` to run some sections and
keep the others' last results).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import arena  # noqa: E402
import codegen  # noqa: E402
import codegen_firmware  # noqa: E402
import compression  # noqa: E402
import criteria  # noqa: E402
import fidelity  # noqa: E402
import gate  # noqa: E402
import headline  # noqa: E402
import latency  # noqa: E402
import lut  # noqa: E402
import overhead  # noqa: E402
import precision  # noqa: E402
from common import ROOT, SAMPLE, edgec_build, shared_present  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results.json"
# Each section: how to measure it (given the scratch directory and the sample's int8 file) and its table.
SECTIONS = {
    "fidelity": (lambda tmp, sample: fidelity.run(tmp, sample), fidelity.markdown),
    "overhead": (lambda tmp, sample: overhead.run(tmp), overhead.markdown),
    "gate": (lambda tmp, sample: gate.run(tmp), gate.markdown),
    "arena": (lambda tmp, sample: arena.run(arena.models(sample)), arena.markdown),
    "latency": (lambda tmp, sample: latency.run(sample) if latency.present() else None, latency.markdown),
    "codegen": (lambda tmp, sample: codegen.run(arena.models(sample)), codegen.markdown),
    "codegen_firmware": (lambda tmp, sample: codegen_firmware.run(sample) if codegen_firmware.present() else None,
                         codegen_firmware.markdown),
    "compression": (lambda tmp, sample: compression.run_all(), compression.markdown),
    "lut": (lambda tmp, sample: lut.run(tmp), lut.markdown),
    "criteria": (lambda tmp, sample: criteria.run(tmp), criteria.markdown),
    "precision": (lambda tmp, sample: precision.run(tmp), precision.markdown),
}


def _machine() -> str:
    """What the timings depend on: CPU model, cores, memory, Python."""
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor() or platform.machine())
    mem = next((int(ln.split()[1]) // 2**20 for ln in Path("/proc/meminfo").read_text().splitlines()
                if ln.startswith("MemTotal")), 0)
    return f"{cpu}, {os.cpu_count()} cores, {mem} GiB, Linux {platform.release()}, Python {platform.python_version()}"


def main(sections: list[str]) -> None:
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        sys.exit(f"unknown section(s) {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    results = json.loads(RESULTS.read_text()) if sections and RESULTS.exists() else {}
    results["machine"] = _machine()
    results["shared_models"] = shared_present()
    seconds = results.setdefault("seconds", {})
    with tempfile.TemporaryDirectory(prefix="edgec-bench-") as tmp:
        tmp = Path(tmp)
        sample = edgec_build(SAMPLE / "digits.keras", SAMPLE / "digits.npz", tmp / "sample")
        for section in sections or SECTIONS:
            t0 = time.perf_counter()
            results[section] = SECTIONS[section][0](tmp, sample)
            seconds[section] = round(time.perf_counter() - t0, 1)
            if results[section] is not None:
                print("\n".join(SECTIONS[section][1](results[section])), flush=True)
    write(results)


def write(results: dict) -> None:
    lines = ["# edgec benchmark results", "",
             f"Written by `benchmarks/run.py` (`make bench`) on {results['machine']}; every figure below was "
             "measured by it on this machine (a section can be rerun on its own)" + ("" if results["shared_models"] else
                                      " (../shared/models absent: the reference-model rows were skipped)") + ".",
             "Seconds per section: " + ", ".join(f"{k} {v}" for k, v in results["seconds"].items()) + ".", ""]
    for section, (_, markdown) in SECTIONS.items():
        if results.get(section) is not None:
            lines += markdown(results[section])
    (ROOT / "benchmarks" / "RESULTS.md").write_text("\n".join(lines))
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
    readme = ROOT / "README.md"
    readme.write_text(headline.replace_block(readme.read_text(), headline.render(results)))


if __name__ == "__main__":
    main(sys.argv[1:])
