"""Errors edgec raises on purpose.

Every message says what was wrong, what was received, and what to do. The CLI
turns an :class:`EdgecError` into one line on stderr and exit code 2 (a
:class:`BudgetExceeded` into exit code 1); nothing else should reach the user
as a traceback.
"""


class EdgecError(Exception):
    """Bad input or a build that cannot proceed; the message tells the fix."""

    exit_code = 2

    def one_line(self) -> str:
        """The message folded onto a single line, for stderr."""
        return " ".join(str(self).split())


class BudgetExceeded(EdgecError):
    """No build can meet the budgets (``--fit`` found no fraction that fits); exit code 1."""

    exit_code = 1


class ModelLoadError(EdgecError):
    """The model file is missing, unreadable, or not a Keras/TFLite model."""


class DataError(EdgecError):
    """The data does not exist, is malformed, or does not fit the model."""


class ConversionError(EdgecError):
    """The model cannot be converted to a full-integer TFLite model."""


class TargetError(EdgecError):
    """An unknown or malformed target profile."""


class ConfigError(EdgecError):
    """An unknown or malformed configuration key or value."""


class OutputError(EdgecError):
    """The output directory cannot be written."""


class RuntimeCheckError(EdgecError):
    """An interpreter refused the model (for example an unsupported op)."""


class InterpreterCrash(RuntimeCheckError):
    """The sandboxed interpreter process died (a signal) or was stopped (a timeout) during a call.

    ``how`` says which: ``SIGSEGV``, ``exit code 1``, ``timed out``."""

    how = "crashed"

    @classmethod
    def because(cls, how: str, message: str) -> "InterpreterCrash":
        exc = cls(message)
        exc.how = how
        return exc


class UnsupportedOpError(RuntimeCheckError):
    """A runtime has no kernel for one op of the model (or refuses its types).

    ``op`` is the TFLite builtin name and ``index`` the op's position in the
    graph (None when the runtime did not say); ``where`` names the Keras layer
    or the tensor the op came from, filled in by :meth:`at` once it is known.
    """

    def __init__(self, runtime: str, op: str, index: int | None, reason: str, where: str = "", way_out: str = ""):
        self.runtime, self.op, self.index, self.reason, self.where = runtime, op, index, reason, where
        self.way_out = way_out
        origin = f"{where} became TFLite op {op}" if where else f"TFLite op {op}"
        super().__init__(f"{runtime} cannot run this model: {origin}, and {reason}; replace that layer "
                         f"with one {runtime} supports, or {way_out or f'pick a target whose runtime has {op}'}")

    def __reduce__(self):  # errors cross from the interpreter process by pickle
        return UnsupportedOpError, (self.runtime, self.op, self.index, self.reason, self.where, self.way_out)

    def at(self, where: str) -> "UnsupportedOpError":
        return UnsupportedOpError(self.runtime, self.op, self.index, self.reason, where, self.way_out)
