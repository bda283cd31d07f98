"""Reading results back: comparison with BP and the paper, the check against references,
rendering for the terminal, exports and figures, and `runs()` / `epochs()`, the results as
pandas DataFrames (api.py). No torch here."""

from biobench.results.api import epochs, runs

__all__ = ["epochs", "runs"]
