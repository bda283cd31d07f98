"""The results database: schema (models.py) and access (store.py). Never imports torch."""

from __future__ import annotations

from biobench.store.store import (
    DEFAULT_DB_ENV,
    RUN_STATUSES,
    Store,
    default_db_url,
    mask_url,
)

__all__ = ["DEFAULT_DB_ENV", "RUN_STATUSES", "Store", "default_db_url", "mask_url"]
