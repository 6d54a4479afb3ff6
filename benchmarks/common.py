"""What the benchmarks share: paths, process measurement, the sample build, synthetic inputs.

Nothing here holds a figure: every number a benchmark prints is measured in
its run, or parsed from ``../shared/models/README.md`` where it is a
published figure.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "models"
SAMPLE = ROOT / "samples" / "digits"
EDGEC = [sys.executable, "-m", "edgec"]
# The environment commands run in. Importing TensorFlow's model-optimization toolkit in this process sets
# TF_USE_LEGACY_KERAS=1, which children inherit: it silently switches a plain script's tf.keras to tf_keras.
# PYTHONDONTWRITEBYTECODE (set on some CI machines) would make every command recompile edgec's modules,
# which a user's pip-installed edgec never does: commands run with Python's bytecode cache, as a user's do.
ENV = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "PYTHONDONTWRITEBYTECODE")}
sys.path.insert(0, str(ROOT))

# The MLPerf Tiny pairs: float model, the reference int8 conversion, the synthetic input generator, and
# the section of ../shared/models/README.md that quotes their published figures.
REFERENCES = (
    {"task": "keyword spotting (DS-CNN)", "readme_section": "Keyword spotting", "float": "kws_ref_model",
     "int8": "kws_ref_model.tflite", "inputs": "kws_features", "inputs_label": "MFCCs of speech-like audio"},
    {"task": "image classification (ResNet-8)", "readme_section": "Image classification", "float": "ic_resnet8.h5",
     "int8": "ic_resnet8_ref_int8.tflite", "inputs": "cifar_like_images",
     "inputs_label": "smooth random colour images"},
)


def shared_present() -> bool:
    return all((SHARED / r["float"]).exists() and (SHARED / r["int8"]).exists() for r in REFERENCES)


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


# --- processes -----------------------------------------------------------------------------

@dataclass
class ProcessCost:
    """Wall time and memory of one command and every process it started."""

    seconds: float
    peak_tree_rss: int  # largest sum of RSS over the command's processes, sampled every 10 ms
    peak_process_rss: int  # the kernel's peak RSS of the largest single process of the tree


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def _descendants_rss(pid: int) -> int:
    kids = _children()
    todo, total = list(kids.get(pid, [])), 0
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        p = todo.pop()
        todo += kids.get(p, [])
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
    return total


# Linux records a process's peak RSS across exec from the memory it had before, so a command started
# straight from this (large) process would inherit its peak. A small launcher forks the command instead,
# waits for it and reports the kernel's peak RSS of the largest process in the command's tree.
_LAUNCHER = """
import os, sys
report_fd, cmd = int(sys.argv[1]), sys.argv[2:]
pid = os.fork()
if pid == 0:
    os.close(report_fd)
    os.execvp(cmd[0], cmd)
_, status, usage = os.wait4(pid, 0)
os.write(report_fd, str(usage.ru_maxrss).encode())
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(cmd: list[str], cwd: Path | None = None) -> ProcessCost:
    """Run ``cmd`` to completion (it must succeed); its wall time and peak memory."""
    read_fd, write_fd = os.pipe()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(write_fd), *map(str, cmd)], cwd=cwd, env=ENV,
                            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(write_fd)
    peak, done = [0], threading.Event()

    def sample():
        while not done.wait(0.01):
            peak[0] = max(peak[0], _descendants_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stderr = proc.stderr.read()
    proc.wait()
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    with os.fdopen(read_fd) as fh:
        maxrss_kib = int(fh.read() or 0)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}): {stderr.decode()[-2000:]}")
    return ProcessCost(seconds, peak[0], maxrss_kib * 1024)


def run_timed(cmd: list[str]) -> float:
    """Wall seconds of ``cmd`` (it must succeed), started as a shell would: no launcher, no memory sampling
    (which scans /proc every 10 ms and, on two cores, takes CPU from a command that lasts half a second)."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return seconds


def build_report(model: Path, data: str | Path, out: Path, stages=(), seed: int = 0, **settings) -> dict:
    """One ``cortex-m4`` build by edgec's own pipeline in this process (``settings``: more BuildConfig
    fields); its report.json as a dict."""
    from edgec.config import BuildConfig, StageSpec
    from edgec.pipeline import build as run_build

    cfg = BuildConfig(model=str(model), data=str(data), target="cortex-m4", out=str(out), seed=seed,
                      stages=tuple(StageSpec.parse(s) for s in stages), **settings)
    return run_build(cfg, progress=False).to_dict()


def edgec_build(model: Path, data: str | Path, out: Path, *extra: str) -> Path:
    """``edgec build`` through the CLI, as a user runs it; the int8 .tflite it wrote."""
    proc = subprocess.run(EDGEC + ["build", str(model), "--target", "cortex-m4", "--data", str(data),
                                   "--out", str(out), "--quiet", *extra], capture_output=True, text=True, env=ENV)
    if proc.returncode != 0:
        raise RuntimeError(f"edgec build {model} failed: {proc.stderr}")
    return next(out.glob("*.tflite"))


def fc_network(tmp: Path) -> tuple[Path, Path]:
    """640 -> 128 x4 -> 8 -> 128 x4 -> 640, BatchNorm + ReLU, untrained (the arena does not depend on training)."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((640,))
    x = inp
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(keras.layers.Dense(units)(x)))
    path, data = tmp / "gate-fc.keras", tmp / "gate-fc.npz"
    keras.Model(inp, keras.layers.Dense(640)(x)).save(path)
    np.savez(data, x=np.random.default_rng(0).normal(size=(300, 640)).astype(np.float32))
    return path, data


# --- synthetic inputs (no Speech Commands or CIFAR-10 here) --------------------------------

def kws_features(n: int, seed: int) -> np.ndarray:
    """MLPerf Tiny KWS input features (49 x 10 MFCC) of synthetic speech-like audio.

    Audio: 1-3 voiced bursts (harmonic series on a gliding pitch, Gaussian
    envelope) over a noise floor of random level, zero-padded at the end as
    short Speech Commands clips are. Features: the MLPerf Tiny KWS front end
    (peak-normalized 16 kHz audio, 30 ms Hann frames every 20 ms, 40 mel bands
    20-4000 Hz, log(mel + 1e-6), first 10 MFCCs). Speech it is not; its
    feature range matches the one the reference int8 input was calibrated on.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    waves = np.zeros((n, 16000))
    for w in waves:
        for _ in range(rng.integers(1, 4)):
            f0 = rng.uniform(100, 400)
            f = np.linspace(f0, f0 * rng.uniform(0.6, 1.6), 16000)  # pitch glide, Hz
            phase = 2 * np.pi * np.cumsum(f) / 16000
            voiced = sum(rng.uniform(0, 1) / k * np.sin(k * phase) for k in range(1, 8))
            w += np.exp(-0.5 * ((t - rng.uniform(0.2, 0.8)) / rng.uniform(0.05, 0.3)) ** 2) * voiced
        w += 10 ** rng.uniform(-4, -1.3) * rng.standard_normal(16000)
        w[int(16000 * rng.uniform(0.7, 1.0)):] = 0
    waves /= np.abs(waves).max(axis=1, keepdims=True)
    spec = tf.abs(tf.signal.stft(waves.astype(np.float32), 480, 320, window_fn=tf.signal.hann_window))
    mel = tf.signal.linear_to_mel_weight_matrix(40, spec.shape[-1], 16000, 20.0, 4000.0)
    log_mel = tf.math.log(tf.tensordot(spec, mel, 1) + 1e-6)
    return tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., :10].numpy()[..., None].astype(np.float32)


def cifar_like_images(n: int, seed: int) -> np.ndarray:
    """32 x 32 RGB images in 0..255 (the reference ResNet-8's input range): 4 x 4 random colour
    fields upsampled bilinearly, so neighbouring pixels correlate as in photographs."""
    import tensorflow as tf

    coarse = np.random.default_rng(seed).uniform(0, 255, (n, 4, 4, 3)).astype(np.float32)
    return tf.image.resize(coarse, (32, 32), method="bilinear").numpy().astype(np.float32)


INPUTS = {"kws_features": kws_features, "cifar_like_images": cifar_like_images}
