"""Write the build's artifacts so that a failure never leaves half an output.

Files are first written completely into a temporary directory beside the
destination (same filesystem, so renames are atomic). A new destination is
then created by renaming that directory; an existing one has each finished
file renamed over its old version, so files edgec did not produce there are
never deleted and an interrupted or failed build leaves the previous output as
it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from edgec.errors import OutputError


def check_destination(out_dir: str | Path) -> Path:
    """Fail early, before any work, if ``out_dir`` cannot be an output directory."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output {out} exists and is a file; pass --out a directory path")
    parent = out.parent if str(out.parent) else Path(".")
    anc = parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise OutputError(f"output {out}: {anc} is not a directory; pass --out a directory path")
    if not os.access(anc, os.W_OK):
        raise OutputError(f"output {out}: {anc} is not writable; pass --out a directory you can write")
    return out


def write_artifacts(out_dir: str | Path, files: dict[str, bytes]) -> dict[str, str]:
    """Write ``files`` (name → bytes) into ``out_dir`` atomically.

    Returns:
        Name → final path of every file written.

    Raises:
        OutputError: the destination cannot be written; nothing was changed.
    """
    out = check_destination(out_dir)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.edgec-", dir=out.parent))
    except OSError as exc:
        raise OutputError(f"cannot create a directory beside {out} ({exc.strerror}); "
                          "pass --out a writable location") from None
    try:
        for name, data in files.items():
            path = staging / name
            with open(path, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        if not out.exists():
            os.rename(staging, out)
        else:
            for name in files:
                os.replace(staging / name, out / name)
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise OutputError(f"could not write the artifacts to {out} ({exc.strerror}); the previous "
                          "contents are unchanged; free space or pick another --out") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {name: str(out / name) for name in files}
