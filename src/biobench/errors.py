"""The one error type users see.

Every mistake a user can make (a bad name, missing data, an unreachable database) is raised as a
`BiobenchError` whose message is a single line saying what is wrong and how to fix it. The CLI
catches it once, prints that line and exits non-zero; anything else is a bug and gets a traceback
with `--debug`.
"""

from __future__ import annotations


class BiobenchError(Exception):
    """A user-facing error: one line naming the problem and the fix."""


class DataError(BiobenchError):
    """A dataset is missing, corrupt or malformed."""


class StoreError(BiobenchError):
    """The results database cannot be opened, migrated or written."""


class SpecError(BiobenchError):
    """A benchmark spec, preset or hyperparameter is invalid."""


class LeaseLost(BiobenchError):
    """Another process took over a run (it was resumed elsewhere): this one must stop writing."""
