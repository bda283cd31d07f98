"""The results database: schema (models.py), typed records (records.py) and access
(store.py). Never imports torch."""

from __future__ import annotations

from biobench.store.records import RunRecord, RunStatus
from biobench.store.store import RunGone, Store, default_db_url
from biobench.store.urls import mask_url, parse_url

__all__ = ["RunGone", "RunRecord", "RunStatus", "Store", "default_db_url", "mask_url", "parse_url"]
