"""Write the build's artifacts so that a failure never leaves half an output.

Files are first written completely (and fsynced) into a temporary directory
beside the destination, on the same filesystem. Files of an existing
destination that this build does not produce are hard-linked (or copied) into
it too, so edgec never deletes what it did not write. The finished directory
then replaces the destination in one step: Linux's ``renameat2`` with
``RENAME_EXCHANGE`` swaps the two directories atomically; elsewhere two
renames run with SIGINT and SIGTERM held back. An interrupted or failed build
(an error, a full disk, Ctrl-C) leaves the previous output exactly as it was,
and never a mix of old and new files.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path

from edgec.errors import OutputError

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def check_destination(out_dir: str | Path, names: tuple[str, ...] = ()) -> Path:
    """Fail early, before any work, if ``out_dir`` cannot be an output directory.

    A symlinked ``--out`` is followed: its target is the directory written (the link
    stays a link). ``names`` are the files the build will write: a directory of the
    user's with one of those names is refused, never replaced.

    Returns:
        The directory to write (a link resolved).
    """
    given = Path(out_dir)
    out = given
    if given.is_symlink():
        out = given.resolve()
        if not out.exists():
            raise OutputError(f"output {given} is a link to {out}, which does not exist; create it or pass "
                              "--out another directory")
    if out.exists() and not out.is_dir():
        raise OutputError(f"output {given} exists and is not a directory; pass --out a directory path")
    here = Path.cwd().resolve()
    if out.exists() and (out.resolve() == here or here.is_relative_to(out.resolve())):
        raise OutputError(f"output {given} is the current directory (or holds it), which edgec cannot replace "
                          "in one step; pass --out a subdirectory such as build/")
    for name in names:
        entry = out / name
        if entry.is_dir() and not entry.is_symlink():
            raise OutputError(f"output {given} holds a directory {name}/, where edgec would write the file "
                              f"{name}; move that directory or pass another --out")
    parent = out.parent if str(out.parent) else Path(".")
    anc = parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise OutputError(f"output {out}: {anc} is not a directory; pass --out a directory path")
    if not os.access(anc, os.W_OK):
        raise OutputError(f"output {out}: {anc} is not writable; pass --out a directory you can write")
    return out


def _renameat2():
    name = ctypes.util.find_library("c")
    try:
        fn = ctypes.CDLL(name, use_errno=True).renameat2
    except (OSError, AttributeError, TypeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap directories ``a`` and ``b``; False where the system cannot."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: this filesystem or kernel cannot exchange
        return False
    raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def _signals_held():
    """Hold SIGINT/SIGTERM back until the block is done, then deliver them (where this is the main thread).

    A signal mask would not do: it blocks a signal in this thread only, and TensorFlow's threads
    would take it instead (Python then raises KeyboardInterrupt in the main thread at once). Python
    runs its handlers in the main thread whichever thread the signal hit, so the handlers are
    replaced for the block by one that only records the signal.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: pending.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for s in pending:
            signal.raise_signal(s)


def _keep_others(out: Path, staging: Path, produced: set[str]) -> None:
    """Link (or copy) the destination's entries this build does not produce into ``staging``."""
    for entry in out.iterdir():
        if entry.name in produced:
            continue
        target = staging / entry.name
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, target, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, target)


def _link_or_copy(src, dst):
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)


def _swap_in(staging: Path, out: Path) -> None:
    """Make ``staging`` the destination in one step; the old contents end up in ``staging``."""
    if not out.exists():
        os.rename(staging, out)
        return
    if _exchange(staging, out):
        return
    backup = staging.with_name(staging.name + "-old")
    with _signals_held():
        os.rename(out, backup)
        try:
            os.rename(staging, out)
        except OSError:
            os.rename(backup, out)
            raise
        os.rename(backup, staging)


def write_artifacts(out_dir: str | Path, files: dict[str, bytes]) -> dict[str, str]:
    """Write ``files`` (name → bytes) into ``out_dir`` atomically.

    Returns:
        Name → final path of every file written.

    Raises:
        OutputError: the destination cannot be written; nothing was changed.
    """
    out = check_destination(out_dir, tuple(files))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.edgec-", dir=out.parent))
    except OSError as exc:
        raise OutputError(f"cannot create a directory beside {out} ({exc.strerror}); "
                          "pass --out a writable location") from None
    existed = out.exists()
    try:
        for name, data in files.items():
            with open(staging / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        if existed:
            _keep_others(out, staging, set(files))
        os.chmod(staging, 0o777 & ~_umask())
        _swap_in(staging, out)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise OutputError(f"could not write the artifacts to {out} ({exc.strerror}); the previous "
                          "contents are unchanged; free space or pick another --out") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)  # the previous contents, after a swap
    return {name: str(out / name) for name in files}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
