"""Hyperparameter search on Optuna, trials as biobench runs in the results database.

`space` declares and samples what is searched, `study` keeps a study's spec and Optuna's storage
beside biobench's tables, `worker` runs trials (many workers may share one study), `report`
reads studies back for `biobench studies` and `biobench study`.
"""

from __future__ import annotations
