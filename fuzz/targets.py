"""What the fuzzer feeds: one function per input kind, each taking the raw bytes of a file.

Each target writes the bytes to a file with the kind's suffix and calls the
same library function the CLI calls for that input. The only allowed outcomes
are a result or an :class:`~edgec.errors.EdgecError`; anything else propagates
and is a finding. The interpreter process dying is reported by edgec as an
EdgecError (the CLI survives it), but it also means edgec's own verification
let a harmful file through, so :data:`CHILD_CRASHES` counts those.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from edgec.errors import EdgecError

WORKDIR = Path(tempfile.mkdtemp(prefix="edgec-fuzz-"))
CHILD_CRASHES: list[str] = []
FINDINGS = Path(__file__).resolve().parent / "findings"
_SHAPE = (8, 8, 1)  # the seed models' input


def _file(data: bytes, suffix: str) -> Path:
    path = WORKDIR / f"input{suffix}"
    path.write_bytes(data)
    return path


def _keep(path: Path):
    """Save an input that crashed the interpreter process in fuzz/findings/ (not kept in git)."""
    import hashlib

    FINDINGS.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(path.read_bytes()).hexdigest()[:16]
    shutil.copy(path, FINDINGS / f"child-crash-{digest}{path.suffix}")


def _allowed(fn, *args):
    try:
        fn(*args)
        return "ok"
    except EdgecError as exc:
        text = exc.one_line()
        if "crashed (" in text or "did not finish" in text:
            CHILD_CRASHES.append(text)
            _keep(Path(args[0]))
        return "error"


def check_tflite(data: bytes) -> str:
    """`edgec check FILE.tflite --target cortex-m4`: verification, TFLite-Micro, LiteRT, budgets."""
    from edgec.check.gate import check

    return _allowed(check, str(_file(data, ".tflite")), "cortex-m4")


def load_npz(data: bytes) -> str:
    """`--data FILE.npz`: size limits, headers, arrays, labels."""
    from edgec.load.data import load_data

    return _allowed(load_data, str(_file(data, ".npz")), _SHAPE)


def load_h5(data: bytes) -> str:
    """A model given as FILE.h5: libhdf5's first read (in the sandbox), the code scan, then the Keras loaders."""
    from edgec.load import hdf5
    from edgec.load import model as models
    from edgec.load.model import load_model

    hdf5.TIMEOUT_BASE_S = 3.0  # the seed reads in milliseconds; damaged files that hang libhdf5 are common
    models.LOAD_TIMEOUT_S = 20.0  # the seed loads in about a second; damaged configs can keep tf_keras busy

    return _allowed(load_model, str(_file(data, ".h5")))


def load_recipe(data: bytes) -> str:
    """`--config edgec.toml` as the CLI reads it, untrusted: TOML, keys, stages, budgets with units, and
    the gate that refuses code-loading keys (a data loader, custom_objects) without --trust-recipe.
    A mutant that slipped a loader past the gate would be imported by the build; here the gate's
    answer is checked instead: no recipe that names code may come back accepted."""
    from edgec.config import BuildConfig, code_in_recipe, recipe_settings

    def read(p):
        settings, folders = recipe_settings(p)
        if code_in_recipe(settings) or folders != (Path.cwd(),):
            raise AssertionError(f"an untrusted recipe that names code was accepted: {code_in_recipe(settings)}")
        return BuildConfig.from_dict(settings)

    return _allowed(read, str(_file(data, ".toml")))


def load_target(data: bytes) -> str:
    """`--target FILE.toml`: a target profile."""
    from edgec.check import targets

    return _allowed(targets.get, str(_file(data, ".toml")))


SEEDS = Path(__file__).resolve().parents[1] / "tests" / "data" / "fuzz"
# The SavedModel whose keras_metadata.pb the savedmodel_meta target replaces (written by make_seeds.py).
SAVEDMODEL_BASE = SEEDS.parent / "fuzz_base" / "savedmodel"


def load_savedmodel_meta(data: bytes) -> str:
    """A tf_keras SavedModel whose ``keras_metadata.pb`` is these bytes: the metadata scan (both
    layouts), the op scan, then tf_keras's loader."""
    from edgec.load import model as models
    from edgec.load.model import load_model

    models.LOAD_TIMEOUT_S = 20.0
    folder = WORKDIR / "savedmodel"
    if not folder.exists():
        shutil.copytree(SAVEDMODEL_BASE, folder)
    (folder / "keras_metadata.pb").write_bytes(data)
    return _allowed(load_model, str(folder))


TARGETS = {"tflite": check_tflite, "npz": load_npz, "h5": load_h5, "recipe": load_recipe, "target": load_target,
           "savedmodel_meta": load_savedmodel_meta}


atexit.register(shutil.rmtree, WORKDIR, True)
