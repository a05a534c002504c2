"""Read models of distribution and loyalty: commissions, withdrawals, points lots; and the
outbox rows that send approved payouts.

- read.commissions: one row per order that earned its referrer a commission, with what
  refunds clawed back and whether it is still pending.
- read.withdrawals: one row per request, its review and its payout.
- read.points_lots: each member's points lots, kept by the very code the wallet keeps them
  with (ledger.domain.points_lots), fed the same journal entries in the same order; the
  expiry job finds members with `next_expiry` before today here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.types.json import Jsonb

from ledger.domain.points_lots import PointsLots
from ledger.journal import JournalEntry
from projections.framework import Envelope, Projector
from projections.outbox import event_id as outbox_event_id

COMMISSION = "ledger.domain.commission:Commission."
WALLET = "ledger.domain.wallet:Wallet."
# Events defined on a wallet's base classes keep their base's topic (Book.FundsHeld ...).
LOYALTY_BOOK = "ledger.domain.loyalty_book:LoyaltyBook."
BOOK = "ledger.domain.book:Book."
WITHDRAWAL = "ledger.domain.withdrawal:Withdrawal."
PAYOUT_EVENTS = (WITHDRAWAL + "Approved", WITHDRAWAL + "Retried")
# The events whose journal entries the points lots follow (by class name).
FOLLOWED = ("Wallet.", "LoyaltyBook.", "Book.")
SEND_PAYOUT = "send_payout"


def mask_payee(channel: str, payee: dict[str, Any]) -> str:
    if channel == "bank":
        number = str(payee.get("account_no", ""))
        return f"{payee.get('bank_name', '')} ****{number[-4:]} {payee.get('account_name', '')}"
    openid = str(payee.get("openid", ""))
    return f"WeChat {openid[:4]}****{openid[-4:]}" if len(openid) > 8 else "WeChat"


class DistributionProjector(Projector):
    name = "distribution"
    topic_prefixes = (COMMISSION, WALLET, LOYALTY_BOOK, BOOK, WITHDRAWAL)
    schema_aware = True

    def tables(self) -> Sequence[str]:
        return ("read.commissions", "read.withdrawals", "read.points_lots")

    def apply(self, cur: Cursor[Any], envelopes: Sequence[Envelope]) -> None:
        lots = LotsBatch(cur)
        for env in envelopes:
            self.handle(cur, env)
            if type(env.event).__qualname__.startswith(FOLLOWED):
                lots.follow(env.event, env.position)
        lots.write()

    def handle(self, cur: Cursor[Any], env: Envelope) -> None:
        """The commission and withdrawal rows an event changes (the points lots aside)."""
        name = type(env.event).__qualname__.replace(".", "_")
        handler = getattr(self, "_" + name, None)
        if handler is not None:
            handler(cur, env.event, env.position)

    @classmethod
    def handles(cls, kind: str) -> bool:
        return getattr(cls, "_" + kind.replace(".", "_"), None) is not None

    # -- commissions ------------------------------------------------------------------------

    def _Commission_Accrued(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        cur.execute(
            "INSERT INTO commissions (order_id, commission_id, referrer, referee, "
            "station_id, base_fen, rate_bps, amount_fen, paid_at, due_at, state, position) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'pending', %s) "
            "ON CONFLICT (order_id) DO NOTHING",
            (
                e.order_id,
                e.originator_id,
                e.referrer,
                e.referee,
                e.station_id,
                e.base_fen,
                e.rate_bps,
                e.amount_fen,
                e.paid_at,
                e.due_at,
                pos,
            ),
        )

    def _Commission_ClawedBack(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        cur.execute(
            "UPDATE commissions SET clawed_fen = clawed_fen + %s, debt_fen = debt_fen + %s, "
            "position = %s WHERE commission_id = %s",
            (e.amount, e.debt, pos, e.originator_id),
        )

    def _LoyaltyBook_CommissionReleased(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        cur.execute(
            "UPDATE commissions SET state = 'available', released_at = %s, position = %s "
            "WHERE order_id = ANY(%s)",
            (e.timestamp, pos, [UUID(hex=o) for o in e.orders]),
        )

    # -- withdrawals ------------------------------------------------------------------------

    def _Withdrawal_Requested(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        kind, _, owner_id = e.owner.partition(":")
        cur.execute(
            "INSERT INTO withdrawals (withdrawal_id, owner, owner_kind, owner_id, account, "
            "amount_fen, fee_fen, net_fen, channel, payee, state, attempt, requested_at, "
            "updated_at, position) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'requested', "
            "1, %s, %s, %s) ON CONFLICT (withdrawal_id) DO NOTHING",
            (
                e.originator_id,
                e.owner,
                kind,
                UUID(owner_id),
                e.account,
                e.amount_fen,
                e.fee_fen,
                e.amount_fen - e.fee_fen,
                e.channel,
                mask_payee(e.channel, e.payee),
                e.timestamp,
                e.timestamp,
                pos,
            ),
        )

    def _update(self, cur: Cursor[Any], e: Any, pos: int, sets: str, *args: Any) -> None:
        cur.execute(
            f"UPDATE withdrawals SET {sets}, updated_at = %s, position = %s "
            "WHERE withdrawal_id = %s",
            (*args, e.timestamp, pos, e.originator_id),
        )

    def _Withdrawal_Approved(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._update(
            cur,
            e,
            pos,
            "state = 'approved', out_bill_no = %s, decided_by = %s, decided_at = %s",
            e.out_bill_no,
            e.by,
            e.timestamp,
        )

    def _Withdrawal_Rejected(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._update(
            cur,
            e,
            pos,
            "state = 'rejected', reason = %s, decided_by = %s, decided_at = %s",
            e.reason,
            e.by,
            e.timestamp,
        )

    def _Withdrawal_Retried(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._update(
            cur,
            e,
            pos,
            "state = 'approved', attempt = attempt + 1, out_bill_no = %s, "
            "transfer_bill_no = NULL, provider_state = NULL, package = NULL, "
            "reason = ''",
            e.out_bill_no,
        )

    def _Withdrawal_PayoutSent(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._update(
            cur,
            e,
            pos,
            "state = 'sent', transfer_bill_no = %s, provider_state = %s, "
            "package = %s, sent_at = coalesce(sent_at, %s)",
            e.transfer_bill_no,
            e.provider_state,
            e.package or None,
            e.timestamp,
        )

    def _Withdrawal_PaidOut(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._update(
            cur,
            e,
            pos,
            "state = 'paid', provider_state = 'SUCCESS', package = NULL, "
            "transfer_bill_no = coalesce(%s, transfer_bill_no), paid_at = %s",
            e.transfer_bill_no,
            e.timestamp,
        )

    def _Withdrawal_PayoutFailed(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._update(
            cur,
            e,
            pos,
            "state = 'failed', provider_state = %s, reason = %s, package = NULL",
            e.provider_state,
            e.reason,
        )


class LotsBatch:
    """read.points_lots for the members one page of wallet events touches."""

    def __init__(self, cur: Cursor[Any]) -> None:
        self.cur = cur
        self.lots: dict[UUID, PointsLots] = {}
        self.positions: dict[UUID, int] = {}

    def follow(self, event: Any, position: int) -> None:
        entry = getattr(event, "entry", None)
        if not isinstance(entry, JournalEntry):
            return
        for leg in entry.legs:
            parts = leg.account.split(":")
            if len(parts) == 3 and parts[0] == "member" and parts[2] == "points":
                member_id = UUID(parts[1])
                lots = self.lots.get(member_id) or self._load(member_id)
                lots.follow(entry.kind, leg.amount, entry.memo)
                self.positions[member_id] = position

    def _load(self, member_id: UUID) -> PointsLots:
        row = self.cur.execute(
            "SELECT lots, taken FROM points_lots WHERE member_id = %s", (member_id,)
        ).fetchone()
        lots = PointsLots()
        if row:
            lots.lots, lots.taken = (
                [list(x) for x in row[0]],
                {k: [list(s) for s in v] for k, v in row[1].items()},
            )
        self.lots[member_id] = lots
        return lots

    def write(self) -> None:
        if not self.lots:
            return
        self.cur.executemany(
            "INSERT INTO points_lots AS p (member_id, lots, taken, points, next_expiry, "
            "position) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (member_id) DO UPDATE SET "
            "lots = EXCLUDED.lots, taken = EXCLUDED.taken, points = EXCLUDED.points, "
            "next_expiry = EXCLUDED.next_expiry, position = EXCLUDED.position",
            [
                (
                    m,
                    Jsonb(lots.lots),
                    Jsonb(lots.taken),
                    lots.total,
                    lots.lots[0][0] if lots.lots else None,
                    self.positions[m],
                )
                for m, lots in self.lots.items()
            ],
        )


class PayoutOutboxProjector(Projector):
    """An approved (or retried) withdrawal asks for its payout to be sent: an outbox row,
    keyed like the shared outbox's rows, so the relay hands it to `send_payout` once."""

    name = "payout_outbox"
    topic_prefixes = PAYOUT_EVENTS

    def tables(self) -> Sequence[str]:
        return ()  # never emptied: a row records what was (or is to be) sent

    def apply(self, cur: Cursor[Any], envelopes: Sequence[Envelope]) -> None:
        rows = [
            (
                outbox_event_id(env.event.originator_id, env.event.originator_version),
                env.position,
                SEND_PAYOUT,
                Jsonb(
                    {
                        "withdrawal_id": str(env.event.originator_id),
                        "out_bill_no": env.event.out_bill_no,
                    }
                ),
                env.event.timestamp,
            )
            for env in envelopes
        ]
        cur.executemany(
            "INSERT INTO read.outbox (event_id, position, actor, payload, created_at) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING",
            rows,
        )
