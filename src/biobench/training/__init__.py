"""From a resolved spec to a recorded run: the training loop (loop.py), the runner that builds a
job and records it (runner.py), per-epoch checkpoints, the sink that delivers epoch rows to the
database, and the top-k metrics."""
