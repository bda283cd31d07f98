"""Writing an epoch's rows: its `epochs` row and its `layer_metrics` rows, replaced together.

An epoch row is a mapping of metric columns (models.METRIC_COLUMNS) that may also carry
"layers": a list of per-layer mappings, each with `layer` (1-based, input to output), `name`
and the models.LAYER_COLUMNS. Writing an epoch again (a resumed run repeats one) replaces
both: every metric column is written, missing ones as NULL, and the epoch's old layer rows go.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, select

from biobench.store.models import LAYER_COLUMNS, METRIC_COLUMNS, Epoch, LayerMetric

LAYER_KEYS = ("layer", "name", *LAYER_COLUMNS)


def _insert(connection: Connection) -> Any:
    dialect = connection.dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:  # pragma: no cover - other backends take the portable path
        return None
    return insert


def check_row(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The row's layer rows, validated; a column the schema lacks is a ValueError."""
    unknown = set(row) - set(METRIC_COLUMNS) - {"layers"}
    if unknown:
        raise ValueError(f"unknown metric columns: {sorted(unknown)}")
    layers = [dict(layer) for layer in row.get("layers") or ()]
    for layer in layers:
        if set(layer) - set(LAYER_KEYS) or not {"layer", "name"} <= set(layer):
            raise ValueError(f"a layer row has the keys {', '.join(LAYER_KEYS)}; got {layer}")
    return layers


def upsert_epoch(
    connection: Connection,
    run_id: int,
    epoch: int,
    metrics: Mapping[str, Any],
    now: datetime,
) -> None:
    layers = check_row(metrics)
    row = {
        "run_id": run_id,
        "epoch": epoch,
        "recorded_at": now,
        **dict.fromkeys(METRIC_COLUMNS),
        **{key: value for key, value in metrics.items() if key != "layers"},
    }
    table = Epoch.__table__
    insert = _insert(connection)
    if insert is None:  # pragma: no cover
        connection.execute(table.delete().where(table.c.run_id == run_id, table.c.epoch == epoch))
        connection.execute(table.insert().values(**row))
    else:
        statement = insert(table).values(**row)
        statement = statement.on_conflict_do_update(
            index_elements=["run_id", "epoch"],
            set_={key: statement.excluded[key] for key in row if key not in ("run_id", "epoch")},
        )
        connection.execute(statement)
    per_layer = LayerMetric.__table__
    connection.execute(
        per_layer.delete().where(per_layer.c.run_id == run_id, per_layer.c.epoch == epoch)
    )
    if layers:
        connection.execute(
            per_layer.insert(),
            [
                {"run_id": run_id, "epoch": epoch, **dict.fromkeys(LAYER_COLUMNS), **layer}
                for layer in layers
            ],
        )


def layer_query(run_ids: list[int] | None) -> Select:
    table = LayerMetric.__table__
    query = select(table).order_by(table.c.run_id, table.c.epoch, table.c.layer)
    if run_ids is not None:
        query = query.where(table.c.run_id.in_(run_ids))
    return query
