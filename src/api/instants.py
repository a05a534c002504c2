"""Instants as PostgreSQL can take them: a time with an offset becomes UTC on the way in.

Python accepts offsets up to a day; PostgreSQL refuses any beyond 15:59, mid-query (for an
export, after the 200 has gone out). In UTC the offset is gone, and a time too close to
year 1 or 9999 to be moved there is refused as a 422 like any other invalid value.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime


def in_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value  # a naive time keeps its meaning: the server's time zone
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the instant is out of range") from None


Instant = Annotated[datetime, AfterValidator(in_utc)]
AwareInstant = Annotated[AwareDatetime, AfterValidator(in_utc)]  # an offset is required
