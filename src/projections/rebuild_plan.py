"""How a rebuild shares its projectors out over the lanes of its bulk phase.

A lane costs what its folds cost (CPU per event, both the lane's and the server's: see
`bulk.cost_of`) plus reading and decoding each event its projectors want, once. Projectors
go to lanes heaviest first, each where it raises that lane's cost the least: a projector
that wants events a lane reads already is cheaper there, so projectors that share topics
tend to share a lane (the journal and the points lots both follow the wallets' entries).
"""

from __future__ import annotations

import os
from typing import Any

import psycopg

from projections.bulk import cost_of
from projections.framework import Projector
from projections.rebuild_lane import Lane

READ_COST = 5.0  # microseconds to read and decode one event in a lane
SAMPLE = 50_000  # events counted to weigh the topics


def topic_counts(conn: psycopg.Connection[Any], after: int, head: int) -> dict[str, int]:
    """About how many events of each topic the log holds after `after`: counted on a sample
    of about SAMPLE events (every event of a small log). A topic the sample misses is not
    left out of any lane (see `plan`), only not weighed."""
    share = min(100.0, 100.0 * SAMPLE / max(head - after, 1))
    rows = conn.execute(
        "SELECT topic, count(*) FROM public.ledger_events TABLESAMPLE SYSTEM (%s) "
        "WHERE notification_id > %s GROUP BY topic",
        (share, after),
    ).fetchall()
    return {topic: round(int(n) * 100.0 / share) for topic, n in rows}


def lane_count(lanes: int | None, projectors: int) -> int:
    count = lanes if lanes is not None else min(len(os.sched_getaffinity(0)), 4)
    return max(1, min(count, projectors))


def plan(
    url: str,
    projectors: list[Projector],
    counts: dict[str, int],
    head: int,
    lanes: int | None,
    window: int,
) -> list[Lane]:
    count = lane_count(lanes, len(projectors))
    wanted = {p.name: {t for t in counts if p.wants(t)} for p in projectors}
    work = {p.name: cost_of(p) * sum(counts[t] for t in wanted[p.name]) for p in projectors}
    groups: list[list[Projector]] = [[] for _ in range(count)]
    reads: list[set[str]] = [set() for _ in range(count)]
    loads = [0.0] * count

    def load_with(i: int, p: Projector) -> float:
        unread = wanted[p.name] - reads[i]
        return loads[i] + work[p.name] + READ_COST * sum(counts[t] for t in unread)

    for p in sorted(projectors, key=lambda p: (-work[p.name], p.name)):
        best = min(range(count), key=lambda i: (load_with(i, p), len(groups[i])))
        loads[best] = load_with(best, p)
        groups[best].append(p)
        reads[best] |= wanted[p.name]
    planned: list[Lane] = []
    for group, topics in zip(groups, reads, strict=True):
        if group:
            names = tuple(p.name for p in group)
            skip = tuple(sorted(set(counts) - topics))  # seen, and wanted by none of them
            planned.append(Lane(len(planned), url, names, skip, head, window))
    return planned
