"""Time helpers for the simulators: one injectable clock, Beijing-time formatting."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

BEIJING = timezone(timedelta(hours=8))


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, BEIJING).isoformat(timespec="seconds")


def beijing_date(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, BEIJING).strftime("%Y-%m-%d")


def beijing_datetime(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, BEIJING).strftime("%Y-%m-%d %H:%M:%S")


class ManualClock:
    """A clock tests move by hand; simulators and clients can share it."""

    def __init__(self, start: float) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
