"""The `biobench` command. Commands parse options, call the library, render; nothing more.

Errors a user can fix arrive as `BiobenchError` and print as one red line with a non-zero exit;
anything else is a bug, shown as one line too unless `--debug` asks for the traceback.
"""

from __future__ import annotations

import importlib

from biobench.cli.app import app

# Importing a command module registers its commands; this order is the order of --help.
for _module in ("run", "preflight", "search", "results", "report", "listing", "tidy", "db"):
    importlib.import_module(f"biobench.cli.{_module}")


def main() -> None:
    app()


__all__ = ["app", "main"]
