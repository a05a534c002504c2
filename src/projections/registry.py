"""Every projector the system runs, by name."""

from __future__ import annotations

from projections.framework import Projector
from projections.journal import JournalProjector


def all_projectors() -> list[Projector]:
    return [JournalProjector()]


def by_name(name: str) -> Projector:
    for projector in all_projectors():
        if projector.name == name:
            return projector
    raise KeyError(f"no projector named {name!r}")
