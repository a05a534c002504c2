"""Points lots: which earning each spendable point of a wallet came from, and when it expires.

Every point on `member:{id}:points` belongs to a lot `[expires_on, points, earned_for]`,
kept in expiry order; the lots always add up to the balance. Spending consumes the lots
first-in-first-out (earliest expiry first). A spend made for an order (the entry's memo
names `order_id`, or a hold names `hold_id`) remembers the slices it took, so a refund or a
voided hold puts back exactly those slices, with their own expiry dates, as if the spend had
never happened; a partial return gives back the latest-expiring slices first. A clawback of
earned points takes from the lot the order earned before any other.

Points that come back with no record of where they were taken from (movements written
before lots existed, or a credit naming no order) form a lot that never expires: a
member is never charged an expiry the ledger cannot justify.
"""

from __future__ import annotations

import bisect
from typing import Any
from uuid import UUID

from ledger.ids import child

NEVER = "9999-12-31"
# ISO dates compare as strings; a lot is [expires_on, points, earned_for].
Lot = list[Any]


def hold_ref(order_id: str) -> str:
    """The hold an order (fuel or mall) places on points: services name it this way."""
    return child(UUID(order_id), "hold:points").hex


class PointsLots:
    def __init__(self) -> None:
        self.lots: list[Lot] = []
        self.taken: dict[str, list[Lot]] = {}  # order or hold -> slices it consumed

    def copy(self) -> PointsLots:
        twin = PointsLots()
        twin.lots = [list(lot) for lot in self.lots]
        twin.taken = {ref: [list(s) for s in slices] for ref, slices in self.taken.items()}
        return twin

    @property
    def total(self) -> int:
        return sum(lot[1] for lot in self.lots)

    def add(self, expires_on: str, points: int, earned_for: str = "") -> None:
        if points <= 0:
            return
        keys = [lot[0] for lot in self.lots]
        self.lots.insert(bisect.bisect_right(keys, expires_on), [expires_on, points, earned_for])

    def consume(self, points: int, prefer: str = "") -> list[Lot]:
        """Take `points` (earliest expiry first; lots earned for `prefer` before the rest)."""
        first = [i for i, lot in enumerate(self.lots) if prefer and lot[2] == prefer]
        order = first + [i for i in range(len(self.lots)) if i not in first]
        slices: list[Lot] = []
        left = points
        for i in order:
            if left == 0:
                break
            lot = self.lots[i]
            take = min(lot[1], left)
            lot[1] -= take
            left -= take
            slices.append([lot[0], take, lot[2]])
        self.lots = [lot for lot in self.lots if lot[1] > 0]
        return slices

    def remember(self, ref: str, slices: list[Lot]) -> None:
        if ref and slices:
            self.taken.setdefault(ref, []).extend(slices)

    def give_back(self, refs: list[str], points: int) -> int:
        """Return up to `points` from what `refs` took, latest expiry first; returns the
        points no record covered."""
        left = points
        for ref in refs:
            slices = self.taken.get(ref)
            while slices and left:
                slices.sort(key=lambda s: s[0])
                expires_on, n, earned_for = slices[-1]
                back = min(n, left)
                self.add(expires_on, back, earned_for)
                left -= back
                if back == n:
                    slices.pop()
                else:
                    slices[-1][1] = n - back
            if ref in self.taken and not self.taken[ref]:
                del self.taken[ref]
        return left

    def due(self, today: str) -> int:
        """Points in lots whose last day is before `today`."""
        return sum(lot[1] for lot in self.lots if lot[0] < today)

    def view(self) -> list[dict[str, Any]]:
        merged: dict[str, int] = {}
        for expires_on, n, _ in self.lots:
            merged[expires_on] = merged.get(expires_on, 0) + n
        return [{"expires_on": d, "points": n} for d, n in merged.items()]

    # -- the one place a journal entry turns into lot changes ------------------------------

    def follow(self, kind: str, delta: int, memo: dict[str, Any]) -> None:
        """Mirror a change of `delta` points on the spendable account."""
        if delta > 0:
            if "expires_on" in memo:  # an earning: a new lot
                self.add(str(memo["expires_on"]), delta, str(memo.get("order_id", "")))
                return
            refs = self._refs(kind, memo)
            left = self.give_back(refs, delta)
            self.add(str(memo.get("expires_on", NEVER)), left)
            return
        if delta < 0:
            order_id = str(memo.get("order_id", ""))
            if kind.endswith("clawed_back"):
                self.consume(-delta, prefer=order_id)
                return
            slices = self.consume(-delta)
            if kind == "hold":
                self.remember(str(memo.get("hold_id", "")), slices)
            elif kind != "points_expired":
                self.remember(order_id, slices)

    @staticmethod
    def _refs(kind: str, memo: dict[str, Any]) -> list[str]:
        if kind == "hold_voided":
            return [str(memo.get("hold_id", ""))]
        order_id = str(memo.get("order_id", ""))
        if not order_id:
            return []
        try:
            return [order_id, hold_ref(order_id)]
        except ValueError:
            return [order_id]
