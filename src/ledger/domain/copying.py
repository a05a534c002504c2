"""Cheap copies of cached aggregates for commands.

The repository hands each command a deep copy of the cached aggregate; a real deepcopy
costs tens of microseconds. A shallow copy with fresh containers is enough, provided the
list of pending events is new too: shared, an event triggered by a command that then fails
would stay in the cached aggregate and be saved by the next command that loads it.
"""

from __future__ import annotations

from copy import copy
from typing import TypeVar

from eventsourcing.domain import Aggregate

A = TypeVar("A", bound=Aggregate)


def clone(aggregate: A) -> A:
    twin = copy(aggregate)
    twin._pending_events = []  # noqa: SLF001 - the library's own attribute, see above
    return twin
