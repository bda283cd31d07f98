"""Where biobench keeps things by default, and the environment variables that move them.

BIOBENCH_HOME      base folder (default: $XDG_DATA_HOME/biobench, else ~/.local/share/biobench)
BIOBENCH_DB        results database URL (default: sqlite:///$BIOBENCH_HOME/results.db)
BIOBENCH_DATA_DIR  dataset root (default: $BIOBENCH_HOME/data)
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from biobench.errors import BiobenchError


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


# Seconds that the environment may set, with their defaults: checked when a store opens, so a
# typo is one line at the start instead of a dead heartbeat thread or a crash after training.
SECONDS_ENV = {"BIOBENCH_HEARTBEAT": 60.0, "BIOBENCH_LOST_AFTER": 300.0, "BIOBENCH_DB_WAIT": 120.0}


def env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and name == "BIOBENCH_HEARTBEAT"):
        raise BiobenchError(
            f"{name}={raw!r} is not a number of seconds; set it to e.g. {default:g}, or unset it"
        )
    return value


def check_environment() -> None:
    for name, default in SECONDS_ENV.items():
        env_seconds(name, default)
