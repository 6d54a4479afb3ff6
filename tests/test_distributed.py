"""Training on several workers: two ``edgec build`` processes on 127.0.0.1 under ``multi_worker_mirrored``
train one model together; the chief writes the artifacts, the other worker writes nothing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from conftest import SAMPLE, assert_one_line_error, run_cli
from edgec.load.tflite_file import read_tflite

BUILD = ["build", str(SAMPLE / "digits.keras"), "--target", "cortex-m4", "--data", str(SAMPLE / "digits.npz"),
         "--stage", "prune:sparsity=0.5,epochs=1", "--budget", "accuracy_drop=100%", "--json", "--quiet"]


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _structure(data: bytes) -> tuple:
    tfl = read_tflite(data)
    return [op.name for op in tfl.ops], sorted((t.shape, t.dtype) for t in tfl.tensors)


def test_two_workers_train_together_and_only_the_chief_writes(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        procs.append(subprocess.Popen([sys.executable, "-m", "edgec", *BUILD, "--strategy", "multi_worker_mirrored",
                                       "--out", str(tmp_path / f"out{index}")],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    results = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err
    chief, worker = (json.loads(out) for out, _ in results)
    assert chief["reproducibility"]["distributed"]["chief"] and chief["reproducibility"]["distributed"]["workers"] == 2
    assert not worker["reproducibility"]["distributed"]["chief"] and worker["artifacts"] == {}
    assert not (tmp_path / "out1").exists()
    written = sorted(p.name for p in (tmp_path / "out0").iterdir())
    assert written == sorted(["digits.tflite", "digits_model_data.c", "digits_model_data.h",
                              "digits_model_settings.h", "report.json", "report.html"])
    # the stage ran to the end on both: half the weights pruned
    assert chief["stages"][1]["kernel_sparsity"] > 0.45 and worker["stages"][1]["kernel_sparsity"] > 0.45
    single = run_cli(*BUILD, "--out", tmp_path / "single")
    assert single.returncode == 0, single.stderr
    assert _structure((tmp_path / "out0" / "digits.tflite").read_bytes()) == \
        _structure((tmp_path / "single" / "digits.tflite").read_bytes())


def test_the_text_report_says_which_worker_wrote():
    from edgec.report.text import render

    assert "worker 1 of 2 workers, not the chief: it wrote nothing" in render(_report(False))
    assert "the chief: it writes the artifacts" in render(_report(True))


def _report(chief: bool) -> dict:
    report = json.loads((Path(__file__).parent / "data" / "reports" / "sample_ptq" / "report.json").read_text())
    report["reproducibility"] = {"seed": 0, "seeded": ["numpy"], "tf_op_determinism": True}
    report["reproducibility"]["distributed"] = {"type": "worker", "index": 0 if chief else 1, "workers": 2,
                                                "chief": chief}
    return report


def test_multi_worker_without_a_cluster_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    proc = run_cli(*BUILD, "--strategy", "multi_worker_mirrored", "--out", tmp_path / "out")
    assert_one_line_error(proc, 2, "TF_CONFIG", "cluster")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    proc = run_cli(*BUILD, "--strategy", "multi_worker_mirrored", "--out", tmp_path / "out")
    assert_one_line_error(proc, 2, "TF_CONFIG is not valid")
    assert not (tmp_path / "out").exists()
