"""User-facing errors: one line, exit code 2, never a traceback.

Every mistake a user can make (a missing file, a bad key, a bad value, an unknown ``_target_``, an absent
scheduler) raises a :class:`UserError`. The CLI prints it as::

    error: <what> (<where>) — <what to do>

and exits with status 2. Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix: printed as one ``error:`` line, exit status 2.

    Args:
        what: What went wrong, e.g. ``"config file not found"``.
        where: Where: a file, a key path, a job id. Optional.
        hint: What to do about it. Optional.

    Example:
        >>> str(UserError("config file not found", where="train.yaml", hint="check the path"))
        'config file not found (train.yaml) — check the path'
    """

    exit_code = 2

    def __init__(self, what: str, where: str | None = None, hint: str | None = None) -> None:
        self.what = what
        self.where = where
        self.hint = hint
        super().__init__(self.line())

    def line(self) -> str:
        text = " ".join(self.what.split())  # one line, whatever the message held
        if self.where:
            text += f" ({self.where})"
        if self.hint:
            text += f" — {self.hint}"
        return text


class ConfigError(UserError):
    """A problem in a configuration file, an override or an interpolation."""


class DependencyError(UserError):
    """An optional dependency or external program is missing (e.g. ``sbatch``, ``torch``)."""
