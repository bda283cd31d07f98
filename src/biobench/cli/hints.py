"""The commands biobench prints for a user to type next (continue a run, go on with a search):
one place, so that no hint shows a database password however the URL was given."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from biobench.store.urls import mask_argv


def command(args: Sequence[str]) -> str:
    """`biobench ARGS`, quoted for a shell, with the secret of every URL in it masked."""
    return shlex.join(["biobench", *mask_argv(args)])
