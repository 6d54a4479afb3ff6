"""Read a model's HDF5 data in the interpreter process before edgec's own process parses any of it.

HDF5 files are parsed by libhdf5 (C, through h5py), which trusts much of what
a file says. A ``.h5`` model, and the ``model.weights.h5`` inside a ``.keras``
zip, is therefore first opened in edgec's sandboxed child process
(:mod:`edgec.runtime.sandbox`): :func:`preflight` visits every group, dataset
and attribute there and reads every dataset's data, which is everything the
Keras loaders read. A file that crashes libhdf5 crashes the child, and edgec
reports it as an error naming the file; only a file that survived is handed
to Keras in edgec's process. The stored architecture (``model_config``) is
returned from the child too, so edgec's code scan never opens the file itself.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

from edgec.errors import EdgecError, ModelLoadError
from edgec.runtime import sandbox

MAX_OBJECTS = 100_000  # groups + datasets; a Keras model has a few per layer
# Reading a model's HDF5 data takes well under a second per 20 MB; damaged files can send libhdf5 into an
# endless loop (found by fuzzing), so the walk gets this long before the child is stopped.
TIMEOUT_BASE_S = 30.0
TIMEOUT_BYTES_PER_S = 20e6
MAGIC = b"\x89HDF\r\n\x1a\n"  # the first 8 bytes of an HDF5 file


def preflight(path: Path, max_bytes: int) -> str | None:
    """Walk the HDF5 data of ``path`` (an .h5 file or a .keras zip) in the sandbox.

    Args:
        path: the model file.
        max_bytes: the largest a dataset may expand to (``--max-input-size``).

    Returns:
        The ``model_config`` attribute of an .h5 file (JSON text), or None.

    Raises:
        ModelLoadError: the HDF5 data is damaged, or expands past ``max_bytes``.
        RuntimeCheckError: libhdf5 crashed on it (the child died) or did not finish in time.
    """
    timeout = TIMEOUT_BASE_S + path.stat().st_size / TIMEOUT_BYTES_PER_S
    return sandbox.call(_preflight, str(path), max_bytes, runtime="libhdf5 (h5py)", timeout=timeout,
                        fix="re-save the model with Keras")


def _preflight(path: str, max_bytes: int) -> str | None:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head == MAGIC:
        return _walk(path, path, max_bytes)
    if head.startswith(b"PK"):
        try:
            z = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError):
            return None  # no HDF5 reachable in it; the Keras loader says what is wrong with the file
        with z:
            for info in z.infolist():
                if info.filename.endswith(".h5"):
                    if info.file_size > max_bytes:
                        raise ModelLoadError(f"{path}: {info.filename} expands to {info.file_size:,} bytes, over "
                                             "the input limit; raise --max-input-size if the model is that large")
                    try:
                        member = z.read(info)
                    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError):
                        return None  # as above: Keras cannot reach this HDF5 either
                    _walk(io.BytesIO(member), f"{path}:{info.filename}", max_bytes)
    return None


def _walk(source, label: str, max_bytes: int) -> str | None:
    import h5py
    import numpy as np

    seen = 0

    def visit(_name, obj):
        nonlocal seen
        seen += 1
        if seen > MAX_OBJECTS:
            raise ModelLoadError(f"{label} holds more than {MAX_OBJECTS:,} HDF5 objects; that is not a Keras "
                                 "model; check the file")
        for key in obj.attrs:
            obj.attrs[key]
        if isinstance(obj, h5py.Dataset):
            if obj.is_virtual or obj.external:
                raise ModelLoadError(f"{label}: dataset {obj.name} reads its data from other files (HDF5 "
                                     "virtual or external storage), which edgec refuses; re-save the model with Keras")
            nbytes = int(np.prod(obj.shape or (), dtype=np.int64)) * obj.dtype.itemsize
            if nbytes > max_bytes:
                raise ModelLoadError(f"{label}: dataset {obj.name} expands to {nbytes:,} bytes, over the input "
                                     "limit; raise --max-input-size if the model is that large")
            obj[()]

    try:
        with h5py.File(source, "r") as f:
            visit("/", f)
            f.visititems(visit)
            config = f.attrs.get("model_config")
    except EdgecError:
        raise
    except Exception as exc:  # h5py raises OSError, KeyError, TypeError, ValueError on damaged files
        raise ModelLoadError(f"{label} is not a readable HDF5 file ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:200]}); re-save the model with Keras") from None
    if config is None:
        return None
    return config.decode("utf-8", "replace") if isinstance(config, bytes) else str(config)
