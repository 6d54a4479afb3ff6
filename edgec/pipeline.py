"""``build()``: load → (compress) → convert → measure → verify → emit → report.

With ``emit = ["c"]`` or a runtime "c" target, the emit step also generates
interpreter-free C (:mod:`edgec.emit.codegen`), proved bit-exact with TFLite-Micro
before it is written.

The only function here that writes files is the emit step at the end, and it
writes atomically; everything before it passes models and bytes in memory.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import math
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from edgec import compress, frameworks
from edgec.check import budgets, quant_error, targets
from edgec.check.gate import sixteen_bit, tflite_summary
from edgec.check.latency import estimate, op_table
from edgec.check.measure import compile_for_npu, host_latency_section, latency_warnings, measure, npu_warnings
from edgec.check.verification import paired_drop_interval, samples_to_resolve, verify, verify_several
from edgec.compress import search
from edgec.compress.base import Context
from edgec.compress.structure import footprint
from edgec.compress.training import cluster_task, strategy
from edgec.config import LUT_STAGES, BuildConfig
from edgec.convert import lut, precision
from edgec.convert.int8 import (
    by_layer,
    check_activations,
    check_recurrent,
    io_order,
    layer_for_tensor,
    layer_of_op,
)
from edgec.emit import artifacts, c_array
from edgec.emit.codegen.crosscheck import emit_and_verify, probe_inputs
from edgec.errors import ConfigError, UnsupportedOpError
from edgec.load.data import Dataset, count, load_data, take
from edgec.load.model import LoadedModel, load_model
from edgec.load.tflite_file import EDGEC_BUILT, quantize, read_tflite, weight_sparsity
from edgec.report import TIMING_FIELDS, Report
from edgec.runtime import litert, micro, sandbox, vela

_log = logging.getLogger(__name__)
LAYER_ERROR_SAMPLES = 100  # validation samples for the per-layer quantization error
C_VERIFY_SAMPLES = 100  # validation samples the generated C must reproduce bit for bit


class _Clock:
    def __init__(self):
        self.times: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.times[name] = round(now - self._t, 3)
        self._t = now


def build(cfg: BuildConfig, progress: bool = True) -> Report:
    """Run a whole build and write its artifacts into ``cfg.out``.

    ``progress`` shows the training stages' progress bars on stderr.

    Raises:
        EdgecError: bad input or a model that cannot be converted; nothing is written.
    """
    built = run(cfg, progress, write_to=cfg.out)
    built.write(cfg.out)
    return built.report


DISTRIBUTED_NOTE = ("each worker trains on its shard of every batch and the gradients are summed across workers, "
                    "so the trained weights depend on the number of workers and the order of the all-reduce: a "
                    "single-process run gives a different model of the same structure; that a run with the same "
                    "seed and worker count repeats its bytes is not guaranteed")


@dataclasses.dataclass
class Built:
    """A build's report and the files it makes, in memory until :meth:`write`."""

    report: Report
    files: dict[str, bytes]  # artifact name -> bytes, without report.json and report.html
    writes: bool = True      # False on a worker of a training cluster that is not the chief

    def write(self, out) -> dict[str, str]:
        """Write the artifacts, report.json and report.html into the folder ``out`` (all or nothing); on a
        worker of a ``multi_worker_mirrored`` cluster that is not the chief, nothing.

        Returns:
            Artifact name -> path.
        """
        if not self.writes:
            _log.info("not the chief of the training cluster: the chief writes the artifacts")
            return {}
        folder = artifacts.check_destination(str(out), tuple(self.files) + ("report.json", "report.html"))
        self.report.artifacts = {name: str(Path(out) / name) for name in [*self.files, "report.json", "report.html"]}
        files = {**self.files, "report.json": self.report.to_json().encode(),
                 "report.html": self.report.to_html().encode()}
        artifacts.write_artifacts(folder, files)
        _log.info("wrote %d files to %s", len(files), folder)
        return dict(self.report.artifacts)


def run(cfg: BuildConfig, progress: bool = True, model: LoadedModel | None = None, data: Dataset | None = None,
        write_to: str | None = None) -> Built:
    """Run a build in memory: ``model`` and ``data`` when given (a Python caller's objects), else
    loaded from ``cfg.model`` and ``cfg.data``. ``write_to``: the folder the caller will write into,
    checked before any work."""
    with sandbox.model_label(f"the int8 model converted from {cfg.model}"):
        return _build(cfg, progress, model, data, write_to)


def _build(cfg: BuildConfig, progress: bool, model: LoadedModel | None, data: Dataset | None,
           write_to: str | None) -> Built:
    clock = _Clock()
    target = targets.get(cfg.target).with_kernels(cfg.kernels)
    task = cluster_task(cfg.training.strategy)  # TF_CONFIG read before any work
    if task is not None:  # TensorFlow configures collective ops only before any other op runs
        strategy(cfg.training.strategy)
    if task is not None and not task["chief"]:
        write_to = None  # the chief writes
    if write_to is not None:
        artifacts.check_destination(write_to)
    stages = compress.validate(cfg.stages)  # parameters and order, before any work
    if cfg.fit:
        stages = search.with_channels(stages)
    compress_lut = _lut_wanted(cfg, target, stages)
    if model is None:
        _log.info("loading model %s", cfg.model)
        model = load_model(cfg.model, name=cfg.name, safe_mode=not cfg.allow_custom_code,
                           custom_objects=cfg.custom_objects, code_folders=cfg.code_folders)
    ident = c_array.c_identifier(cfg.name or model.name)
    if write_to is not None:
        artifacts.check_destination(write_to, output_names(ident))  # before the work, not after it
    if model.several:
        _refuse_for_several(model, stages, cfg, target)
    several_in, several_out = len(model.input_names) > 1, len(model.output_names) > 1
    if data is None:
        data = load_data(cfg.data, model.input_shapes if several_in else model.input_shape,
                         samples=cfg.calibration_samples, seed=cfg.seed, code_folders=cfg.code_folders,
                         outputs=model.output_names if several_out else None)
    data.check_labels(model.output_shapes if several_out else model.output_shape)
    budgets.require_measurable(dict(cfg.budgets), target, None if data.y_val is not None else
                               f"the data ({cfg.data}) has no labels; put them in the .npz as 'y', or drop "
                               "the accuracy_drop budget")
    limits_asked = {**target.budgets, **dict(cfg.budgets)}
    if cfg.strict and data.y_val is not None and "accuracy_drop" in limits_asked:
        _require_resolvable(limits_asked["accuracy_drop"], min(cfg.verify_samples, count(data.x_val)))
    reproducibility = {**frameworks.set_seed(cfg.seed), "timing_fields": list(TIMING_FIELDS),
                       "note": "the same model, data, recipe and seed give byte-identical .tflite, C sources "
                               "and headers, and this JSON apart from its timing fields"}
    if task is not None:
        reproducibility["distributed"] = {**task, "note": DISTRIBUTED_NOTE}
    clock.lap("load")

    # Stages work on tf_keras (a Keras 3 model is bridged only then); without stages the model converts as saved.
    stage_rows: list[dict[str, Any]] = []
    keras_model, fitted = (model.for_stages() if stages else model.keras), None
    ctx = Context(x_train=data.x_train, y_train=data.y_train, x_val=data.x_val, y_val=data.y_val,
                  training=cfg.training, seed=cfg.seed, progress=progress,
                  allow_custom_code=cfg.allow_custom_code, custom_objects=cfg.custom_objects)
    if cfg.fit:
        _log.info("fitting the channel fraction to the budgets of %s", target.name)
        fitted = search.search(keras_model, stages[0], lambda km: _judge(km, data, target, cfg),
                               stages[0].params.max_fraction, ctx=ctx)
        search.apply(stages[0], fitted["fraction"])
        clock.lap("fit")
    if stages:
        keras_model, stage_rows = compress.run(keras_model, stages, ctx)
        clock.lap("compress")

    _log.info("converting to full-integer int8 (%d calibration samples)",
              min(cfg.calibration_samples, count(data.x_train)))
    calibration = data.calibration(cfg.calibration_samples)
    check_recurrent(keras_model)  # what TensorFlow's converter would crash on, named before any bridge
    convert_from = keras_model if stages else model.for_conversion()  # verified against the user's model
    check_activations(keras_model, calibration)
    asked = {**target.budgets, **dict(cfg.budgets)}
    snr_budget = asked.get("output_snr_db")
    if cfg.precision == "auto":
        tfl_bytes, fc_quantization, calibration_section = _auto_precision(
            cfg, convert_from, calibration, data, target, asked)
    else:
        tfl_bytes, fc_quantization, calibration_section = precision.convert(
            convert_from, calibration, data.x_val, cfg.fc_quantization, snr_budget, cfg.activations, cfg.calibration,
            several=model.several, int16_layers=tuple(pair[0] for pair in cfg.precision))
    tfl = read_tflite(tfl_bytes, "converted model", made_by=EDGEC_BUILT)
    io = io_order(convert_from, tfl)
    # What ships: the int8 model, or its weights LUT-compressed (decoded by TFLite-Micro; LiteRT, the float
    # comparison and the generated C take the uncompressed model, whose outputs it reproduces bit for bit).
    ship_bytes, ship = tfl_bytes, tfl
    lut_section: dict[str, Any] = {}
    if compress_lut.tflite:
        _log.info("compressing the weights into look-up tables")
        ship_bytes, lut_section = lut.compress_weights(tfl_bytes, tfl)
        if lut_section["applied"] and compress_lut.auto:
            ship_bytes, lut_section = _lut_auto(tfl_bytes, tfl, ship_bytes, lut_section, target,
                                                budgets.limits_of(target, dict(cfg.budgets)))
    compressed = bool(lut_section.get("applied"))  # what ships is the LUT-compressed model (``ship``)
    if compressed:
        ship = read_tflite(ship_bytes, "LUT-compressed model", made_by=EDGEC_BUILT)
    clock.lap("convert")

    _log.info("measuring the TFLite-Micro arena")
    warnings = []
    if None in model.input_shape:
        warnings.append(f"the model's input shape {_shape(model.input_shape)} leaves a dimension free; the int8 "
                        f"model is converted for the data's {_shape(tfl.input.shape[1:])}, one fixed shape as a "
                        "microcontroller runs it")
    try:
        arena = micro.measure_arena(ship_bytes)
    except UnsupportedOpError as exc:
        exc = by_layer(keras_model, ship, exc)
        if target.needs_tflm_ops:
            raise exc from None
        arena = None  # a phone runs it with LiteRT; only the MCU artifacts lose their arena
        warnings.append(f"{exc.one_line()} (no arena measured; fine for {target.name}, which runs LiteRT)")
    clock.lap("measure")

    _log.info("verifying int8 against float on %d samples", min(cfg.verify_samples, count(data.x_val)))
    x_val = take(data.x_val, slice(0, cfg.verify_samples))
    y_val = None if data.y_val is None else take(data.y_val, slice(0, cfg.verify_samples))
    if model.several:
        verification = verify_several(keras_model, tfl_bytes, tfl, x_val, y_val, io,
                                      micro_samples=cfg.micro_samples if arena else 0, task=cfg.task)
        verification["layers"] = []  # the quantization debugger takes one input
    else:
        verification = verify(keras_model, tfl_bytes, tfl, x_val, y_val,
                              micro_samples=cfg.micro_samples if arena else 0, task=cfg.task,
                              describe_op=lambda op: layer_of_op(keras_model, tfl, op))
        # the debugger calibrates min-max itself: for other ranges its table would describe another model
        ranges = calibration_section.get("chosen", calibration_section["method"])
        verification["layers"] = [] if ranges != "minmax" or cfg.precision else quant_error.layer_errors(
            convert_from, calibration, x_val[:LAYER_ERROR_SAMPLES],
            per_tensor_fc=fc_quantization["chosen"] == "per-tensor", activations=cfg.activations)
    warnings += verification.pop("warnings")
    if compressed:
        lut_section["tflite_micro_bit_exact"] = lut.check_exact(
            tfl_bytes, ship_bytes, _quantized_inputs(x_val, tfl, io[0], cfg.micro_samples))
    clock.lap("verify")

    if data.random:
        warnings.append("calibrated and verified on RANDOM inputs, not real data: int8 scales may not fit "
                        "real inputs and accuracy was not measured; pass --data with real samples")
    c_files, codegen = {}, None
    if target.judged_on_c or "c" in cfg.emit:
        _log.info("generating C and checking it against TFLite-Micro")
        c_files, codegen = _emit_c(tfl_bytes, tfl, keras_model, ident, cfg, target, arena,
                                   _packed_samples(x_val, tfl, io[0], C_VERIFY_SAMPLES), lut=compress_lut.c)
        clock.lap("codegen")
    npu = compile_for_npu(ship_bytes, target)
    measurements = measure(ship_bytes, ship, target, arena, npu=npu, codegen=codegen, host_latency=not compressed)
    if compressed:  # LiteRT has no DECODE op: its host figure is the uncompressed model's
        measurements.update(host_latency_section(litert.host_latency_ms(tfl_bytes)))
        measurements["host_latency"]["model"] = "the uncompressed int8 model (LiteRT has no DECODE op)"
    accuracy_drop = verification.get("accuracy_drop")
    if stage_rows:
        stage_rows.append(_int8_row(tfl_bytes, tfl, verification))
        if compressed:
            stage_rows.append(_lut_row(lut_section, verification))
        before = stage_rows[0].get("float_accuracy")
        if before is not None and verification.get("int8_accuracy") is not None:
            # The budget judges what the user trained against what ships.
            accuracy_drop = verification["accuracy_drop_from_input"] = before - verification["int8_accuracy"]
    for row in measurements.get("ops", []):
        row["layer"] = layer_for_tensor(keras_model, row["tensor"])
    if npu is not None:
        for row in measurements["npu"]["cpu_ops"]:
            op = next((o for o in tfl.ops if o.outputs and tfl.tensors[o.outputs[0]].name == row["tensor"]), None)
            row["layer"] = layer_of_op(keras_model, tfl, op) if op else row["tensor"]
        warnings += npu_warnings(measurements)
    warnings += latency_warnings(measurements)
    if compressed:
        warnings += _lut_warnings(lut_section, arena, target)
    if target.kind == "mcu" and (flag := sixteen_bit(tfl)):
        warnings.append(flag)
    if accuracy_drop is not None and "accuracy_drop" in limits_asked:
        warnings += _resolution_warnings(limits_asked["accuracy_drop"], verification)
    report = Report(
        model=model.to_dict(),
        target=target.to_dict(),
        data=data.to_dict(),
        tflite={**tflite_summary(ship), "fc_quantization": fc_quantization, "calibration": calibration_section,
                **({"lut": lut_section} if lut_section else {})},
        measurements=measurements,
        verification=verification,
        budgets=budgets.judge(measurements, target, dict(cfg.budgets), accuracy_drop, verification),
        stages=stage_rows,
        fit=fitted,
        warnings=warnings,
        reproducibility=reproducibility,
    )
    files = {f"{ident}.tflite": ship_bytes}
    if npu is None:
        files.update(c_array.model_data_files(ship_bytes, ident, Path(cfg.model).name))
        files.update(c_array.settings_header(ship, arena, ident, Path(cfg.model).name, io))
    else:  # the firmware embeds Vela's compiled model, with the arena Vela planned
        assert arena is not None  # an Ethos-U target runs TFLite-Micro, which measured it
        files[f"{ident}_vela.tflite"] = npu.model
        files.update(c_array.model_data_files(npu.model, ident, Path(cfg.model).name))
        files.update(c_array.settings_header(npu.compiled, vela.npu_arena(npu, arena),
                                             ident, Path(cfg.model).name))
    files.update(c_files)
    clock.lap("emit")
    report.timing = clock.times
    return Built(report, files, writes=task is None or task["chief"])



def _auto_precision(cfg: BuildConfig, convert_from, calibration, data: Dataset, target, asked: dict):
    """``precision = "auto"``: rank the layers by their int8 quantization error (TFLite's debugger, on the
    validation samples) and promote the worst to 16x8 until the output budget is met."""
    if asked.get("output_snr_db") is None and asked.get("max_error_steps") is None:
        raise ConfigError("precision = \"auto\" promotes layers to 16x8 until the output error meets a budget, "
                          "and none is set; add --budget output_snr_db=30 (or max_error_steps=...)")
    rows = quant_error.layer_errors(convert_from, calibration, take(data.x_val, slice(0, LAYER_ERROR_SAMPLES)))
    ranked: list[str] = []
    for row in sorted(rows, key=lambda r: -r["rmse_over_scale"]):
        if row["layer"] and row["layer"] not in ranked and row["op"] not in ("QUANTIZE", "DEQUANTIZE"):
            ranked.append(row["layer"])
    ram = asked.get("ram")
    section = precision.promote_layers(convert_from, calibration, data.x_val, ranked, asked.get("output_snr_db"),
                                       asked.get("max_error_steps"),
                                       None if ram is None else int(ram) - target.ram_reserved_bytes)
    fc = {"mode": cfg.fc_quantization, "chosen": cfg.fc_quantization}
    return section[0], fc, {"method": "minmax", "mixed_precision": {**section[1], "ranked_layers": ranked}}


def output_names(ident: str) -> tuple[str, ...]:
    """Every file a build may write into ``--out``."""
    return (f"{ident}.tflite", f"{ident}_vela.tflite", f"{ident}_model_data.h", f"{ident}_model_data.c",
            f"{ident}_model_settings.h", f"{ident}_infer.c", f"{ident}_infer.h", "report.json", "report.html")


def _refuse_for_several(model, stages, cfg: BuildConfig, target) -> None:
    """What a model of several inputs or outputs cannot go through yet, refused before any work."""
    what = f"{model.source} has {len(model.input_names)} inputs and {len(model.output_names)} outputs"
    if stages or cfg.fit:
        raise ConfigError(f"{what}; compression stages and --fit take models of one input and one output for "
                          "now: build it without --stage and --fit (post-training int8)")


def _require_resolvable(limit: float, n: int) -> None:
    """--strict: refuse, before any work, an accuracy_drop budget that ``n`` validation samples
    cannot resolve even if int8 and float agreed on every one of them."""
    half = paired_drop_interval(np.ones(n, bool), np.ones(n, bool))["half_width"]
    if half > limit:
        raise ConfigError(f"--strict: the accuracy_drop budget {100 * limit:.2g} % cannot be resolved on {n} "
                          f"validation samples (one sample is {100 / n:.2g} %; even with no sample changed the 95 % "
                          f"interval of the drop is ±{100 * half:.2g} %); give --data at least "
                          f"{samples_to_resolve(limit, 0, n):,} validation samples, or loosen the budget")


def _resolution_warnings(limit: float, v: dict) -> list[str]:
    """A warning when the accuracy_drop budget is finer than the validation set can tell apart."""
    n = v["accuracy_samples"]
    lo, hi = v["accuracy_drop_ci95"]
    if (hi - lo) / 2 <= limit:
        return []
    need = samples_to_resolve(limit, v["accuracy_drop_discordant"], n)
    return [f"the accuracy_drop budget {100 * limit:.2g} % is judged on {n} validation samples (one sample is "
            f"{100 / n:.2g} %): the drop measured, {100 * v['accuracy_drop']:.2g} %, has a 95 % interval of "
            f"{100 * lo:.2g} % to {100 * hi:.2g} %, wider than the budget; about {need:,} samples would resolve it "
            "(--strict makes this an error)"]


class _Lut(NamedTuple):
    """Where the weights are stored as look-up tables."""

    tflite: bool  # in the .tflite, unpacked by TFLite-Micro's DECODE op
    c: bool       # in the generated C, unpacked by its own kernels
    auto: bool = False  # the .tflite's only where it pays (pipeline._lut_auto)


def _lut_wanted(cfg: BuildConfig, target, stages) -> _Lut:
    """Whether the weights are LUT-compressed: ``lut = "on"``, or ``"auto"`` after a stage that leaves few
    values per channel; in the .tflite on a target whose runtime decodes them (TFLite-Micro on the CPU), and
    in the generated C wherever C is generated.

    Raises:
        ConfigError: ``lut = "on"`` for a target whose runtime cannot decode them, without C generated.
    """
    if cfg.lut == "off" or cfg.activations != "int8":
        return _Lut(False, False)
    wanted = cfg.lut == "on" or any(stage.name in LUT_STAGES for stage in stages)
    in_tflite = wanted and target.runs_on.decodes_lut
    plan = _Lut(in_tflite, wanted and (target.judged_on_c or "c" in cfg.emit), in_tflite and cfg.lut == "auto")
    if cfg.lut == "on" and not (plan.tflite or plan.c):
        raise ConfigError(f"--lut on: target {target.name} runs {target.runtime}, which has no TFLite-Micro "
                          "DECODE op to unpack LUT-compressed weights (Vela compresses an Ethos-U's weights "
                          "itself; LiteRT has none); drop --lut on, add --emit c (the generated C unpacks them "
                          "itself), or pick a target that runs tflite-micro (cortex-m4)")
    return plan


def _lut_auto(plain: bytes, tfl, packed: bytes, section: dict, target, limits: dict[str, float]):
    """What ``--lut auto`` ships on a TFLite-Micro target: the compressed model only where it makes the
    firmware smaller and keeps the RAM and latency budgets the uncompressed model meets.

    TFLite-Micro decodes each compressed tensor into the arena on every inference, so where the arena or the
    estimated latency would go over a budget that the uncompressed model meets, the largest compressed
    tensors are left uncompressed, one at a time, until both fit. Then the bytes saved must exceed what the
    DECODE kernel adds to the firmware (the profile's ``decode_flash_bytes``). Returns what ships and its
    section, which records the figures on both sides (``auto``)."""
    def figures(data: bytes) -> dict[str, float | None]:
        model = read_tflite(data, "LUT-compressed model", made_by=EDGEC_BUILT)
        ms = (estimate(op_table(model, target), target)["latency_ms"]
              if target.clock_hz and target.instruction_tables() else None)
        return {"ram": micro.measure_arena(data).bytes + target.ram_reserved_bytes, "latency": ms}

    def over() -> list[str]:  # the budgets the uncompressed model meets and the compressed one breaks
        broken: list[str] = []
        for k in ("ram", "latency"):
            was, now = before[k], after[k]
            if k in limits and was is not None and now is not None and was <= limits[k] < now:
                broken.append(k)
        return broken

    try:
        before, after = figures(plain), figures(packed)
    except UnsupportedOpError:
        return packed, section  # TFLite-Micro cannot run it: the build says so where it measures the arena
    leave: dict[int, str] = {}
    candidates = sorted((c for c in lut.choose(plain, tfl) if c.bits is not None),
                        key=lambda c: math.prod(c.shape), reverse=True)
    while (broken := over()) and section["applied"] and candidates:
        largest = candidates.pop(0)
        leave[largest.tensor] = (f"decoded on every inference ({math.prod(largest.shape):,} values), it would take "
                                 + " and ".join(f"{_UNITS[k][0]} to {_UNITS[k][1](after[k])}, over the "
                                                f"{_UNITS[k][1](limits[k])} budget" for k in broken)
                                 + " that the uncompressed model meets")
        packed, section = lut.compress_weights(plain, tfl, leave=leave)
        after = figures(packed) if section["applied"] else before
    kernel = target.decode_flash_bytes or 0
    saved = len(plain) - len(packed)
    auto = {"bytes_saved": saved, "decode_kernel_bytes": kernel,
            "ram_bytes": {"compressed": after["ram"], "uncompressed": before["ram"]},
            "latency_ms": {"compressed": after["latency"], "uncompressed": before["latency"]},
            "limits": {k: limits[k] for k in ("ram", "latency") if k in limits}}
    if section["applied"] and saved <= kernel:
        section = {**section, "applied": False, "bytes_after": len(plain),
                   "why_not": f"it would save {saved:,} B of the model, not more than TFLite-Micro's DECODE kernel "
                              f"adds to the firmware on {target.name} ({kernel:,} B); --lut on compresses anyway "
                              "(for a firmware that has DECODE already), and the generated C (--emit c, target "
                              "cortex-m4-c) decodes such tables with a few hundred bytes of code"}
    return (packed if section["applied"] else plain), {**section, "auto": auto}


_UNITS = {"ram": ("RAM", lambda v: f"{v:,.0f} B"), "latency": ("the estimated latency", lambda v: f"{v:.3g} ms")}


def _quantized_inputs(x, tfl, in_names, n: int) -> list[np.ndarray]:
    """Up to ``n`` samples quantized for each input, in the interpreter's order (``x``: an array, or a dict
    by the Keras input names ``in_names``)."""
    xs = x if isinstance(x, dict) else {in_names[0]: x}
    return [quantize(xs[name][:n], tfl.tensors[t]) for name, t in zip(in_names, tfl.inputs)]


def _lut_warnings(section: dict, arena, target) -> list[str]:
    """What LUT compression costs besides the flash it saves: the decoded weights live in the arena."""
    largest = max((math.prod(t["shape"]) for t in section["tensors"] if t["bits"]), default=0)
    out = [f"LUT-compressed weights are decoded into the arena before the op that reads them: the largest, "
           f"{largest:,} B, is part of the {arena.bytes:,} B arena" if arena else
           "LUT-compressed weights are decoded into the TFLite-Micro arena before the op that reads them"]
    saved, kernel = section["bytes_before"] - section["bytes_after"], target.decode_flash_bytes or 0
    if saved <= kernel:
        out.append(f"LUT compression saves {saved:,} B of the model, less than TFLite-Micro's DECODE kernel adds "
                   f"to the firmware on {target.name} ({kernel:,} B): unless the firmware has DECODE already, "
                   "--lut off (or auto) ships less")
    return out


def _lut_row(section: dict, verification: dict) -> dict:
    """The row after ``int8`` when the weights are LUT-compressed: the bytes that ship."""
    row = {"name": "lut", "tflite_bytes": section["bytes_after"], "bits_per_weight": section["weight_bits"],
           "lut_tensors": sum(1 for t in section["tensors"] if t["bits"])}
    if "int8_accuracy" in verification:  # the decode is exact (checked): the int8 model's accuracy
        row["int8_accuracy"] = verification["int8_accuracy"]
    return row


def _int8_row(data: bytes, tfl, verification: dict) -> dict:
    """The last row of ``stages``: what the converted model weighs and scores."""
    row = {"name": "int8", "tflite_bytes": len(data),
           "tflite_gzip_bytes": len(gzip.compress(data, compresslevel=9, mtime=0)),
           "int8_weight_sparsity": weight_sparsity(data, tfl)}
    if "int8_accuracy" in verification:
        row["int8_accuracy"] = verification["int8_accuracy"]
    return row


def _packed_samples(x, tfl, in_names, n: int) -> np.ndarray:
    """Up to ``n`` samples quantized for each input and packed one after another per row (the generated
    C's ``<NAME>_INFER_PACKED`` layout); ``x`` is an array or a dict by the Keras input names ``in_names``."""
    parts = _quantized_inputs(x, tfl, in_names, n)
    return np.concatenate([p.reshape(len(p), -1) for p in parts], axis=1)


def _emit_c(tfl_bytes, tfl, keras_model, ident, cfg: BuildConfig, target, arena, samples_q, lut: bool):
    """The generated C files and the report's ``c`` section (``lut``: weights with few values as indices
    and tables); an op without a C kernel is named by its Keras layer."""
    inputs_q = np.concatenate([probe_inputs(tfl, 3), samples_q])
    try:
        gen, section = emit_and_verify(tfl_bytes, tfl, ident, Path(cfg.model).name, inputs_q,
                                       mcu="require" if target.judged_on_c else "auto", target=target, lut=lut)
    except UnsupportedOpError as exc:
        raise by_layer(keras_model, tfl, exc) from None
    section["tflm_arena_bytes"] = arena.bytes if arena else None
    return {k: v.encode() for k, v in gen.files.items()}, section


def _shape(dims) -> str:
    return "(" + ", ".join("None" if d is None else str(int(d)) for d in dims) + ")"


def _judge(keras_model, data, target, cfg: BuildConfig) -> list[dict]:
    """Budget rows of ``keras_model`` converted to int8: the cheap measurements ``--fit`` searches on."""
    fp = footprint(keras_model, data.x_train)
    if fp.refusal is not None and target.needs_tflm_ops:
        raise fp.refusal
    codegen = None
    if target.judged_on_c:  # judged on the generated C's measured footprint
        _, codegen = emit_and_verify(fp.tflite, fp.model, "fit_trial", "--fit trial", probe_inputs(fp.model, 4),
                                     mcu="require", target=target)
    measurements = measure(fp.tflite, fp.model, target, fp.arena, host_latency=False,
                                   npu=compile_for_npu(fp.tflite, target), codegen=codegen)
    # --fit searches on what a trial measures: flash, RAM, latency (accuracy is judged after the build)
    return budgets.judge(measurements, target, {k: v for k, v in cfg.budgets if k != "accuracy_drop"})
