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
