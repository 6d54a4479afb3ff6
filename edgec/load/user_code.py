"""The user's own Python code: data loaders (``--data loader.py:load``) and custom layers
(``--custom-objects mypkg.layers``).

Code runs only where the user named it on the command line, or in a recipe the
user trusts (``--trust-recipe``), and only from files under the folders the
user gave it from (the current folder, the recipe's folder): a name is never
resolved against the standard library or site-packages, so ``sys:exit``,
``faulthandler:_sigsegv`` or ``this`` name nothing here. While that code is
imported and called, whatever it prints goes to stderr, so ``--json`` on
stdout stays JSON.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

from edgec.errors import EdgecError


@contextlib.contextmanager
def stdout_to_stderr():
    """Send what the block prints (Python's and C's) to stderr: stdout carries only edgec's payload."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _inside(path: Path, folders: tuple[Path, ...]) -> bool:
    real = path.resolve()
    return any(real.is_relative_to(f.resolve()) for f in folders)


def _module_file(name: str, folders: tuple[Path, ...], where: str, what: str, error) -> Path:
    """The file ``name`` (a ``.py`` path, or a module or ``pkg.mod`` looked up in ``folders`` alone) names."""
    if name.endswith(".py") or os.sep in name or "/" in name:
        candidates = [Path(name)] if Path(name).is_absolute() else [f / name for f in folders]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None or not _inside(path, folders):
            raise error(f"{what} {name}: no such .py file under {where}; name a file of your own code there")
        return path
    parts = name.split(".")
    found = next((spec for f in folders
                  if (spec := importlib.machinery.PathFinder.find_spec(parts[0], [str(f)])) is not None), None)
    if found is None:
        raise error(f"{what} {name}: no module '{parts[0]}' under {where}; edgec imports only your own code from "
                    "there (never the standard library or installed packages); name a module or a .py file "
                    "of yours")
    if len(parts) == 1:
        if not found.origin or not Path(found.origin).is_file():
            raise error(f"{what} {name}: resolves to {found.origin}, outside {where}; name a module of your own code")
        return Path(found.origin)
    for folder in folders:  # the submodule must be a file of that package, under the folder
        for target in (folder.joinpath(*parts[:-1], parts[-1] + ".py"), folder.joinpath(*parts, "__init__.py")):
            if target.is_file():
                return target
    raise error(f"{what} {name}: no such module file under {where}; name a module of your own code")


def import_user_module(name: str, folders: tuple[Path, ...], what: str, error: type[EdgecError]):
    """The module ``name`` (``pkg.mod`` or a ``path/to/file.py``) from a file under ``folders``.

    Raises:
        error: it is not a file under those folders (a standard-library or installed module
            included), or importing it failed or exited.
    """
    where = " or ".join(str(f) for f in folders)
    origin = _module_file(name, folders, where, what, error)
    if not _inside(origin, folders):
        raise error(f"{what} {name}: resolves to {origin}, outside {where}; name a module of your own code")
    # A private name: a file of the user's called json.py must not replace the json edgec uses.
    spec = importlib.util.spec_from_file_location(f"edgec_user.{name.removesuffix('.py')}", origin)
    if spec is None or spec.loader is None:
        raise error(f"{what} {name}: {origin} cannot be imported as a Python module; name a .py file or a package")
    module = importlib.util.module_from_spec(spec)
    added = [str(f) for f in folders if str(f) not in sys.path]
    sys.path[:0] = added  # the module's own imports of its siblings
    try:
        with stdout_to_stderr():
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
    except SystemExit as exc:
        sys.modules.pop(spec.name, None)
        raise error(f"{what} {name}: importing it called exit({exc.code}); a module edgec imports must not "
                    "exit") from None
    except Exception as exc:
        sys.modules.pop(spec.name, None)
        raise error(f"{what} {name}: importing it raised {type(exc).__name__}: {exc}; fix the module") from None
    finally:
        for f in added:
            if f in sys.path:
                sys.path.remove(f)
    return module


def call_user_function(fn, what: str, error: type[EdgecError]):
    """``fn()`` with its prints sent to stderr; an exit or an exception is an ``error``."""
    try:
        with stdout_to_stderr():
            return fn()
    except SystemExit as exc:
        raise error(f"{what} called exit({exc.code}) instead of returning data; return the arrays") from None
    except EdgecError:
        raise
    except Exception as exc:
        raise error(f"{what} raised {type(exc).__name__}: {exc}; fix the loader") from None
