"""The collector's settings for a server process.

The API keeps up to 200,000 aggregates in its cache, and every payment adds objects that
live on. With CPython's default thresholds (700, 10, 10) the collector walked that whole
heap again and again: in one 70 s bench run of one worker, 35 full collections took 4.3 s
in all, up to 147 ms each, with every request waiting behind them (that was the p99 of
both the card payment and the empty POST). Request garbage is freed by reference counting;
only cycles need the collector, and they are rare here. So: what start-up made (modules,
routes, the app) is frozen out of every collection, and a young collection runs every
50,000 net allocations instead of 700.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 100)


def tune_for_serving() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
