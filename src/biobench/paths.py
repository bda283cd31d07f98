"""Where biobench keeps things by default, and the environment variables that move them.

BIOBENCH_HOME      base folder (default: $XDG_DATA_HOME/biobench, else ~/.local/share/biobench)
BIOBENCH_DB        results database URL (default: sqlite:///$BIOBENCH_HOME/results.db)
BIOBENCH_DATA_DIR  dataset root (default: $BIOBENCH_HOME/data)
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    if os.environ.get("BIOBENCH_HOME"):
        return Path(os.environ["BIOBENCH_HOME"]).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg).expanduser() / "biobench"


def default_db_url() -> str:
    return os.environ.get("BIOBENCH_DB") or f"sqlite:///{home() / 'results.db'}"


def default_data_dir() -> Path:
    if os.environ.get("BIOBENCH_DATA_DIR"):
        return Path(os.environ["BIOBENCH_DATA_DIR"]).expanduser()
    return home() / "data"


def default_checkpoint_dir() -> Path:
    if os.environ.get("BIOBENCH_CHECKPOINT_DIR"):
        return Path(os.environ["BIOBENCH_CHECKPOINT_DIR"]).expanduser()
    return home() / "checkpoints"
