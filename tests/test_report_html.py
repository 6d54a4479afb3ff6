"""report.html in a real browser, and the per-layer quantization error naming the layer to blame."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from conftest import SAMPLE, run_cli
from edgec.report.html import PLOTS


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (scripts/system-deps.sh installs Debian's package where it can)")
    return path


def _render(page, tmp_path):
    """Load ``page`` headless with every host unresolvable; return the DOM after load, the problems
    (console messages, references to other hosts) and a screenshot."""
    shot = tmp_path / f"{page.stem}.png"
    base = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0",
            "--window-size=1200,3000", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    subprocess.run([*base, f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=120)
    # The page has no scripts, so any console message is a problem; Chromium logs them as CONSOLE lines.
    problems = [ln for ln in dom.stderr.splitlines() if ":CONSOLE" in ln]
    # Offline: nothing in the rendered DOM may point at another host.
    problems += re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//[^"'\s>]+|url\(\s*["']?https?:[^)]+|@import""",
                           dom.stdout)
    return dom.stdout, problems, shot


@pytest.fixture(scope="module")
def staged_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("html") / "out"
    proc = run_cli("build", str(SAMPLE / "digits.keras"), "--target", "cortex-m4", "--data",
                   str(SAMPLE / "digits.npz"), "--stage", "channels:fraction=0.5,epochs=1",
                   "--budget", "accuracy_drop=100%", "--out", str(out), "--quiet", "--json")
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout)


def test_report_html_renders_offline_with_every_plot(staged_build, tmp_path):
    out, report = staged_build
    page = out / "report.html"
    assert report["artifacts"]["report.html"] == str(page)
    source = page.read_text()
    assert "<script" not in source
    dom, problems, shot = _render(page, tmp_path)
    assert problems == []
    for name in PLOTS:
        start = dom.index(f'id="plot-{name}"')
        assert 'class="plot"' in dom[dom.rindex("<figure", 0, start):start], f"plot {name} is missing"
        assert "<svg" in dom[start:dom.index("</figure>", start)]
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_browser_check_catches_a_broken_page(tmp_path):
    """Negative control: the same check flags a console error and a network fetch."""
    page = tmp_path / "broken.html"
    page.write_text('<html><body><img src="https://example.invalid/x.png">'
                    '<script>console.error("boom")</script></body></html>')
    _, problems, _ = _render(page, tmp_path)
    assert problems


def test_per_layer_error_names_the_layer_with_a_weight_outlier(tfk):
    from edgec.check.quant_error import layer_errors, worst

    tfk.utils.set_random_seed(4)
    rng = np.random.default_rng(4)
    inp = tfk.Input((12,))
    x = tfk.layers.Dense(16, activation="relu", name="first")(inp)
    x = tfk.layers.Dense(16, activation="relu", name="spoiled")(x)
    x = tfk.layers.Dense(16, activation="relu", name="third")(x)
    model = tfk.Model(inp, tfk.layers.Dense(4, name="out")(x))
    data = rng.normal(size=(200, 12)).astype(np.float32)
    # A dead unit of 'first' (its output is always 0) feeds a huge weight in every output channel of
    # 'spoiled': the float outputs do not change, but each channel's int8 weight scale (per channel, or
    # per tensor) now rounds every other weight of 'spoiled' to a few levels.
    first = model.get_layer("first")
    k, b = first.get_weights()
    k[:, 0], b[0] = 0.0, -1.0
    first.set_weights([k, b])
    spoiled = model.get_layer("spoiled")
    k, b = spoiled.get_weights()
    k[0, :] = 5000.0 * np.abs(k).max()
    spoiled.set_weights([k, b])
    rows = layer_errors(model, data[:100], data[100:])
    assert {r["layer"] for r in rows} >= {"first", "spoiled", "third", "out"}
    assert worst(rows, 1)[0]["layer"] == "spoiled", rows
    assert worst(rows, 1)[0]["rmse_over_scale"] > 5 * sorted(r["rmse_over_scale"] for r in rows)[-2]


def test_plots_escape_model_names_and_scale_bars_to_their_values():
    """The plots are SVG written by edgec: names from the model are text, never markup, and each bar's
    length is its value on a round scale."""
    from edgec.report import plots

    svg = plots.quant_error([{"layer": '<script>alert("x")</script>', "op": "CONV_2D", "rmse_over_scale": 0.25},
                             {"layer": "b&c", "op": "ADD", "rmse_over_scale": 0.5}])
    assert "<script" not in svg and "&lt;script&gt;" in svg and "b&amp;c" in svg
    widths = [float(w) for w in re.findall(r'<rect [^>]*width="([\d.]+)"', svg)]
    assert len(widths) == 2 and widths[1] == pytest.approx(2 * widths[0], rel=1e-3)
    assert plots._ticks(1536) == [0, 500, 1000, 1500, 2000]
    assert plots._ticks(0.43) == pytest.approx([0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert plots.quant_error([]) is None
    odd = plots.quant_error([{"layer": "ln", "op": "RSQRT", "rmse_over_scale": float("inf")},
                             {"layer": "fc", "op": "FULLY_CONNECTED", "rmse_over_scale": float("nan")},
                             {"layer": "ok", "op": "ADD", "rmse_over_scale": 0.3}])
    assert ">inf</text>" in odd and ">nan</text>" in odd
    assert plots.budgets([{"name": "ram", "value": 50, "limit": 100, "ok": True}]) == \
        plots.budgets([{"name": "ram", "value": 50, "limit": 100, "ok": True}])  # the same bytes each time
