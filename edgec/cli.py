"""The ``edgec`` command: parse options, call one library function, render, exit.

Exit codes are API: 0 every budget met, 1 a budget exceeded, 2 bad usage or
input, 3 an internal error (a bug in edgec: one line saying so; the traceback
only with ``--verbose``). stdout carries only the payload (``--json``);
progress and the summary go to stderr. An :class:`EdgecError` is one line on
stderr, never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys

import click

from edgec import __version__, api
from edgec.report.text import codegen_lines, inspect_text

INTERNAL_ERROR = 3  # an exception edgec did not raise on purpose: a bug, never "budget exceeded"


class _OneLineGroup(click.Group):
    """Click group whose usage errors are one line on stderr with exit code 2."""

    def main(self, args=None, prog_name=None, **extra):
        try:
            rv = super().main(args=args, prog_name=prog_name, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help(), err=True)
            sys.exit(2)
        except click.UsageError as exc:
            hint = f"; see `edgec {exc.ctx.command.name} --help`" if exc.ctx and exc.ctx.command else ""
            msg = " ".join(exc.format_message().split()).rstrip(".")
            click.echo(f"edgec: error: {msg}{hint}", err=True)
            sys.exit(2)
        except click.Abort:
            click.echo("edgec: interrupted; nothing was written", err=True)
            sys.exit(130)
        except api.EdgecError as exc:
            click.echo(f"edgec: error: {exc.one_line()}", err=True)
            sys.exit(exc.exit_code)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - anything else is a bug in edgec, reported as such
            _internal_error(exc, args)
        sys.exit(rv if isinstance(rv, int) else 0)


def _internal_error(exc: BaseException, args) -> None:
    """One line saying it is a bug in edgec (the traceback with --verbose), exit 3."""
    argv = list(sys.argv[1:] if args is None else args)
    if "--verbose" in argv or "-v" in argv:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    click.echo(f"edgec: internal error (a bug in edgec, not in your model or data): {detail}; please report "
               f"it with the command line and `edgec --version` ({__version__}); rerun with --verbose for the "
               "traceback", err=True)
    sys.exit(INTERNAL_ERROR)


def _setup_logging(quiet: bool, verbose: bool) -> None:
    """Progress lines only on an interactive terminal (or with --verbose), so
    that a failing run in CI prints exactly its one error line."""
    if verbose:
        level = logging.DEBUG
    elif quiet or not sys.stderr.isatty():
        level = logging.WARNING
    else:
        level = logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("edgec: %(message)s"))
    root = logging.getLogger("edgec")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


@click.group(cls=_OneLineGroup)
@click.version_option(__version__, prog_name="edgec")
@click.option("--max-input-size", envvar="EDGEC_MAX_INPUT_SIZE", default="2GiB", show_default=True,
              help="Largest model or data file edgec reads, and largest array an .npz may expand to.")
@click.option("--max-memory", envvar="EDGEC_MAX_MEMORY", default=None,
              help="Memory the interpreters may use (default: 80% of what is available).")
def main(max_input_size, max_memory):
    """edgec: a trained Keras model to a microcontroller or a phone."""
    api.set_limits(max_input_size, max_memory)


def _common_options(f):
    """Options shared by build and check, in the order --help shows them."""
    for decorator in reversed([
        click.option("--budget", "-b", multiple=True, metavar="NAME=VALUE",
                     help="Override a budget: flash=1MiB, ram=96KiB, latency=50ms, accuracy_drop=1%."),
        click.option("--kernels", default=None, metavar="LIBRARY",
                     help="Kernel library the latency estimate assumes: tflm-reference, tflm-cmsis-nn or c "
                          "(default: the profile's)."),
        click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout, nothing else there."),
        click.option("--summary-md", "summary_md", type=click.Path(dir_okay=False), default=None,
                     help="Write a short Markdown summary here (for CI: \"$GITHUB_STEP_SUMMARY\")."),
        click.option("--quiet", "-q", is_flag=True, help="Only warnings and errors on stderr."),
        click.option("--verbose", "-v", is_flag=True, help="Progress and debug logging on stderr."),
    ]):
        f = decorator(f)
    return f


@main.command()
@click.argument("model", required=False)
@click.option("--config", "-c", "config_path", default=None,
              help="An edgec.toml recipe (or a pyproject.toml with [tool.edgec]); options given here override it.")
@click.option("--target", "-t", default=None, help="Target profile name (see `edgec targets`) or a .toml path.")
@click.option("--data", "-d", default=None,
              help="An .npz (x[,y] or x_train/y_train/x_val/y_val), 'package.module:function', or 'random'.")
@click.option("--stage", "-s", "stages", multiple=True, metavar="NAME[:K=V,...]",
              help="A compression stage, in order (replaces the recipe's): prune:sparsity=0.75, cluster:clusters=16, "
                   "qat, distill:teacher=big.keras. See `edgec stages`.")
@click.option("--strategy", type=click.Choice(["default", "mirrored", "multi_worker_mirrored"]), default=None,
              help="tf.distribute strategy for training stages (default: the recipe's, else none).")
@click.option("--out", "-o", default=None, help="Output directory (default: edgec_out).")
@click.option("--name", default=None, help="Model name for files and C identifiers (default: file stem).")
@click.option("--calibration-samples", default=None, type=click.IntRange(min=1), help="Default: 300.")
@click.option("--verify-samples", default=None, type=click.IntRange(min=1), help="Default: 500.")
@click.option("--seed", default=None, type=click.IntRange(0, 2**32 - 1), help="Default: 0.")
@click.option("--fit", is_flag=True, default=None,
              help="Find the least channel pruning (the 'channels' stage's fraction) that meets the budgets.")
@click.option("--allow-custom-code", is_flag=True, default=None,
              help="Load Lambda layers and other code stored in the model file. Only for files you trust.")
@click.option("--custom-objects", "custom_objects", multiple=True, metavar="MODULE",
              help="A module (or .py file) of your code in the current folder whose classes (custom layers) the "
                   "model may use: mypkg.layers.")
@click.option("--trust-recipe", is_flag=True, default=False,
              help="Let the --config recipe name Python code to run (a data loader, custom_objects), looked up "
                   "in the recipe's folder too. Only for recipes you trust.")
@click.option("--emit", "emit", multiple=True, type=click.Choice(["c"]),
              help="Also write interpreter-free C inference code (<name>_infer.c/.h), proved bit-exact "
                   "with TFLite-Micro on the host and, where the ARM tools are installed, under QEMU.")
@click.option("--task", type=click.Choice(["classifier", "regression", "reconstruction", "other"]), default=None,
              help="How the output is judged (default: inferred from the output op, the labels and the shapes).")
@click.option("--strict", is_flag=True, default=None,
              help="Refuse an accuracy_drop budget the validation samples are too few to resolve.")
@click.option("--fc-quantization", type=click.Choice(api.FC_QUANTIZATION), default=None,
              help="FULLY_CONNECTED weight scales: per-channel (default), per-tensor (a smaller file and arena), "
                   "or auto (both converted; per-tensor kept if its output error is as good, see the README).")
@click.option("--activations", type=click.Choice(api.ACTIVATIONS), default=None,
              help="int8 (default), or int16: TFLite's 16x8 mode (int16 activations, int8 weights), for models that "
                   "lose too much in int8 activations; TFLite-Micro has 16x8 kernels for the common ops.")
@click.option("--calibration", default=None, metavar="METHOD",
              help="Activation ranges: minmax (default, the converter's), percentile:99.99, mse (narrower ranges "
                   "chosen from the calibration values, so that a few outliers do not waste the int8 grid), or auto "
                   "(each converted, the best output SNR on the validation samples kept).")
@click.option("--precision", "precision", multiple=True, metavar="LAYER=int16|auto",
              help="Quantize this Keras layer 16x8 (int16 activations), the rest int8 (mixed precision, with "
                   "ai-edge-quantizer): --precision conv3=int16, repeated for more layers; or auto: the layers with "
                   "the largest int8 error, until the output_snr_db or max_error_steps budget is met.")
@click.option("--lut", type=click.Choice(api.LUT), default=None,
              help="Store weights as 1-4 bit indices into per-channel tables (less flash): in the .tflite, decoded "
                   "by TFLite-Micro's DECODE op (more arena), and in generated C: auto (default: after cluster, "
                   "ternary or binary, where the firmware gets smaller with DECODE's code and the RAM budget "
                   "holds), on, or off.")
@_common_options
def build(model, config_path, target, data, stages, strategy, out, name, calibration_samples, verify_samples,
          seed, fit, allow_custom_code, custom_objects, trust_recipe, emit, task, strict, fc_quantization,
          activations, calibration, precision, lut, budget, kernels, as_json, summary_md, quiet, verbose):
    """Compress MODEL, convert it to a verified full-int8 TFLite model, and write firmware headers."""
    _setup_logging(quiet, verbose)
    _check_writable(summary_md)
    result = api.build(model, data, target, stages=list(stages), budgets=list(budget), out=out, write=True,
                       recipe=config_path,
                       trust_recipe=trust_recipe, name=name, task=task, seed=seed,
                       calibration_samples=calibration_samples, verify_samples=verify_samples, fit=fit, emit=list(emit),
                       kernels=kernels, strategy=strategy, allow_custom_code=allow_custom_code,
                       custom_objects=list(custom_objects), strict=strict, fc_quantization=fc_quantization,
                       activations=activations, calibration=calibration, precision=list(precision) or None,
                       lut=lut, progress=not quiet)
    return _render(result.report, as_json, quiet, summary_md)


@main.command()
@click.argument("model")
@click.option("--target", "-t", required=True, help="Target profile name (see `edgec targets`) or a .toml path.")
@_common_options
def check(model, target, budget, kernels, as_json, summary_md, quiet, verbose):
    """Measure an int8 MODEL.tflite against a target's budgets (no TensorFlow; the CI gate)."""
    _setup_logging(quiet, verbose)
    _check_writable(summary_md)
    return _render(api.check(model, target, budgets=list(budget), kernels=kernels), as_json, quiet, summary_md)


@main.command("emit-c")
@click.argument("model")
@click.option("--out", "-o", default="edgec_c", show_default=True, help="Output directory for <name>_infer.c/.h.")
@click.option("--name", default=None, help="C identifier prefix (default: the model file's stem).")
@click.option("--samples", default=100, show_default=True, type=click.IntRange(min=1),
              help="Probe inputs (extremes, zero point, random) the C must reproduce bit for bit.")
@click.option("--mcu/--no-mcu", default=True, show_default=True,
              help="Also build for a Cortex-M4 and run under QEMU (skipped, with a note, without the ARM tools).")
@click.option("--target", "-t", default="cortex-m4", show_default=True,
              help="Target profile whose clock (and cycles_per_instruction) convert instructions to milliseconds.")
@click.option("--lut", type=click.Choice(["on", "off"]), default="off", show_default=True,
              help="Store conv and FC weights with at most 16 values per output channel (clustered, ternary, "
                   "binary) as 1-4 bit indices and tables, where that takes less flash (the decode costs time).")
@click.option("--json", "as_json", is_flag=True, help="Print what was generated and measured as JSON on stdout.")
def emit_c(model, out, name, samples, mcu, target, lut, as_json):
    """Generate interpreter-free C99 for an int8 MODEL.tflite and prove it bit-exact with TFLite-Micro."""
    section = api.emit_c(model, name=name, samples=samples, mcu=mcu, target=target, out=out,
                         lut=lut == "on").section
    if as_json:
        click.echo(json.dumps(section, indent=2))
    click.echo("\n".join([f"edgec emit-c: {section['name']}", *codegen_lines(section)]) + "\n", err=True, nl=False)
    return 0


def _check_writable(path: str | None) -> None:
    """Refuse a --summary-md path that cannot be written before any work starts."""
    if path is None:
        return
    existed = os.path.exists(path)
    if existed and not os.path.isfile(path):  # a FIFO would block the build before any work; a device, worse
        raise api.OutputError(f"--summary-md {path} exists and is not a regular file; pass a file path")
    try:  # access() says yes to root even where nothing can be written (/proc): try it
        with open(path, "a", encoding="utf-8"):
            pass
        if not existed:
            os.unlink(path)
    except OSError:
        raise api.OutputError(f"--summary-md {path}: cannot write there; pass a path in a writable directory") from None


def _render(report, as_json: bool, quiet: bool, summary_md: str | None = None) -> int:
    """Summary on stderr, JSON on stdout, and one line per failing budget; the exit code."""
    if not quiet:
        color = sys.stderr.isatty() and "NO_COLOR" not in os.environ
        click.echo(report.to_text(color=color), err=True, nl=False)
    if summary_md:
        with open(summary_md, "w", encoding="utf-8") as f:
            f.write(report.to_markdown())
    if as_json:
        click.echo(report.to_json(), nl=False)
    for msg in report.failures:
        click.echo(f"edgec: budget exceeded: {msg}", err=True)
    return report.exit_code


@main.command()
@click.argument("model")
@click.option("--target", "-t", default="cortex-m4", show_default=True,
              help="Target profile whose cycles per MAC the estimate uses.")
@click.option("--kernels", default=None, metavar="LIBRARY",
              help="Kernel library the latency estimate assumes: tflm-reference, tflm-cmsis-nn or c (default: "
                   "the profile's).")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON on stdout, nothing else there.")
def inspect(model, target, kernels, as_json):
    """Per-layer table of an int8 MODEL.tflite: op, shape, parameters, MACs, cycles, live memory."""
    info = api.inspect(model, target, kernels).to_dict()
    click.echo(json.dumps(info, indent=2) if as_json else inspect_text(info), nl=False if not as_json else True)
    return 0


@main.command("stages")
@click.option("--json", "as_json", is_flag=True, help="Print the stages as JSON on stdout.")
def stages_cmd(as_json):
    """List the compression stages and their parameters."""
    listing = api.stages()
    if as_json:
        click.echo(json.dumps(listing, indent=2, default=list))
        return 0
    for name, stage in listing.items():
        click.echo(f"{name:10s} {stage['summary']}")
        for field, default in stage["parameters"].items():
            click.echo(f"    {field} = {default!r}")
    return 0


@main.command("targets")
@click.option("--json", "as_json", is_flag=True, help="Print the profiles as JSON.")
def targets_cmd(as_json):
    """List the built-in target profiles."""
    profiles = api.targets()
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in profiles], indent=2))
    else:
        for p in profiles:
            click.echo(f"{p.name:24s} {p.description}")
    return 0
