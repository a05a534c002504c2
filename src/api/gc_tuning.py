"""The collector's settings for a server process.

The API keeps up to 200,000 aggregates in its cache, and every command puts a fresh deep
copy of the ones it changed there: objects that live on. With CPython's default thresholds
(700, 10, 10) the collector walked that whole heap again and again: in one 70 s bench run of
one worker, 35 full collections took 4.3 s in all, up to 147 ms each, with every request
waiting behind them.

Request garbage is freed by reference counting; only cycles need the collector, and they are
rare here. So every object that survives a young collection is frozen: no later collection
walks it, and reference counting still frees it when its last reference goes. A young
collection walks only what was made since the last one, and the older generations never fill
up. Before, with a young threshold of 50,000 and no freezing, young collections took 12-60 ms
each in the bench server (bench/http_payments, one worker, a gc.callbacks probe), and every
twentieth would have been an older one over up to a million objects. Now: 2-24 ms each, and
no older collection after start-up (the same probe, one run each). What this gives up: a
cycle still in use at a young collection is never collected once it dies. The
`ledger_gc_frozen_objects` metric shows if that ever grows.
"""

from __future__ import annotations

import gc
from typing import Any

YOUNG = 10_000  # net allocations between young collections


def tune_for_serving() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG)
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)


def _freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    if phase == "stop":
        gc.freeze()


def frozen_objects() -> int:
    return gc.get_freeze_count()
