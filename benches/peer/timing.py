"""Timing shared by the peer scripts: one warm-up call, then the median of `repeat` runs."""

import statistics
import time


def timed(repeat, run):
    """The median of `repeat` timed calls of `run` after one warm-up, and every time, in seconds."""
    run()  # warm-up
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), seconds
