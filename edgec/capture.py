"""Capture what C++ code writes to file descriptors 1 and 2.

TFLite-Micro prints its allocation record and its failures with the C-level
stderr, and the TFLite converter prints progress lines on the C-level streams;
``contextlib.redirect_stderr`` sees neither. Users should not get those lines
(stdout is reserved for ``--json``); edgec reads or logs them instead.
"""

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def captured_fds(*fds: int):
    """Yield a list that holds, after the block, the text written to ``fds``."""
    out: list[str] = []
    fds = fds or (2,)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in fds}
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        for fd in fds:
            os.dup2(tmp.fileno(), fd)
        try:
            yield out
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            tmp.seek(0)
            out.append(tmp.read().decode("utf-8", "replace"))


def captured_fd2():
    """Capture file descriptor 2 only."""
    return captured_fds(2)
