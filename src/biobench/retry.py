"""One way to wait and try again: exponential backoff, bounded by attempts or by a deadline.

The store retries transient lock errors ("database is locked") a few times within a second or
two; the epoch sink waits minutes for a database that went away. Both are this loop.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def retry(
    work: Callable[[], T],
    *,
    retry_on: Callable[[Exception], bool],
    delay: float,
    max_delay: float,
    attempts: int | None = None,
    seconds: float | None = None,
    jitter: bool = False,
) -> T:
    """Call `work` until it returns. When it raises an error `retry_on` accepts, sleep (doubling
    from `delay` up to `max_delay`, randomised by up to 2x with `jitter`, so that processes
    that collided do not collide again) and call it again: at most `attempts` calls, or until
    `seconds` have passed. Any other error, or the last one, propagates."""
    if attempts is None and seconds is None:
        raise ValueError("retry needs attempts or seconds, or it may never end")
    deadline = None if seconds is None else time.monotonic() + seconds
    attempt = 0
    while True:
        attempt += 1
        try:
            return work()
        except Exception as error:
            if not retry_on(error):
                raise
            out_of_attempts = attempts is not None and attempt >= attempts
            left = None if deadline is None else deadline - time.monotonic()
            if out_of_attempts or (left is not None and left <= 0):
                raise
            pause = delay * (1 + random.random()) if jitter else delay
            time.sleep(pause if left is None else min(pause, left))
            delay = min(delay * 2, max_delay)
