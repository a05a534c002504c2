"""Forged, stale, replayed and wrong-amount provider notifications, for WeChat Pay and Alipay,
are refused or flagged and move no money; and the event store, its receipts and the audit
chain refuse UPDATE, DELETE and TRUNCATE from the application role (and from the owner,
through triggers).

Each case posts to the API in-process what the simulator signed (or forged) and then reads
the raw event log: no journal entry, no payment, the order still `paying` — or, for a
genuine notification sent again, still exactly one of each.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

import psycopg
import pytest
from scale import pick

from audit.chain import seal
from ledger.domain.provider_payment import ProviderPayment
from orders_support import make_station
from support import project

pytestmark = pytest.mark.proof


ROUNDS = pick(ci=1, full=10)
FIGURES: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def figures() -> Iterator[None]:
    yield
    print("\nforgery: " + "; ".join(f"{k} {v}" for k, v in sorted(FIGURES.items())))


@pytest.fixture(scope="module")
def station(proof_world) -> Any:
    return make_station(proof_world.core)


@pytest.fixture(scope="module")
def payers(shop, proof_world) -> dict[str, dict[str, str]]:
    payers = {method: shop.member_auth(method) for method in ("wechat", "alipay")}
    project(proof_world.core)
    return payers


def paid_entries(w, effects, out_trade_no: str) -> tuple[str, int]:
    """The order's status, and the journal entries naming its provider transaction."""
    project(w.core)
    with w.core.read_pool.connection() as conn:
        status, tx = conn.execute(
            "SELECT status, provider_transaction FROM read.fuel_orders WHERE out_trade_no = %s",
            (out_trade_no,),
        ).fetchone()
    return status, (effects(w.core).entries_by_transaction[tx] if tx else 0)


def exceptions_of(w, out_trade_no: str) -> list[tuple[str, int]]:
    with w.core.read_pool.connection() as conn:
        return conn.execute(
            "SELECT outcome, amount_fen FROM read.payment_exceptions WHERE out_trade_no = %s",
            (out_trade_no,),
        ).fetchall()


def replay(w, delivery: Any) -> Any:
    """The same bytes and headers again, as an attacker who captured them would send."""
    return w.api.post(urlsplit(delivery.url).path, headers=delivery.headers, content=delivery.body)


def sim_of(w, method: str) -> Any:
    return w.sims.wechatpay if method == "wechat" else w.sims.alipay


REFUSED = {"wechat": (401,), "alipay": (400,)}


# -- forged and stale --------------------------------------------------------------------


@pytest.mark.parametrize("round_", range(ROUNDS))
@pytest.mark.parametrize("method", ["wechat", "alipay"])
def test_a_forged_signature_is_refused_and_moves_nothing(
    proof_world, shop, station, payers, effects, method, round_
) -> None:
    w = proof_world
    order = shop.paying_order(station, method, 12_300, payers[method])
    [forged] = w.run(sim_of(w, method).pay(order.out_trade_no, bad_signature=True))
    assert forged.status in REFUSED[method] and not forged.accepted, forged
    assert paid_entries(w, effects, order.out_trade_no) == ("paying", 0)
    FIGURES[f"{method} forged signature"] = f"-> {forged.status}, no effect"


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_one_changed_byte_of_a_wechat_notification_is_refused(
    proof_world, shop, station, payers, effects, round_
) -> None:
    w = proof_world
    order = shop.paying_order(station, "wechat", 12_300, payers["wechat"])
    assert w.run(w.sims.wechatpay.pay(order.out_trade_no, hold=True)) == []  # held
    [held] = w.sims.wechatpay.notifier.pending
    w.sims.wechatpay.notifier.pending = []
    headers, body = held.render(held.policy)
    tampered = body[:10] + bytes([body[10] ^ 1]) + body[11:]
    response = w.api.post(urlsplit(held.url).path, headers=headers, content=tampered)
    assert response.status_code == 401, response.text
    assert paid_entries(w, effects, order.out_trade_no) == ("paying", 0)
    FIGURES["wechat changed byte"] = f"-> {response.status_code}, no effect"


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_a_stale_wechat_notification_is_refused(
    proof_world, shop, station, payers, effects, round_
) -> None:
    """Signed, but 10 minutes old: outside WeChat Pay's 5-minute window."""
    w = proof_world
    order = shop.paying_order(station, "wechat", 12_300, payers["wechat"])
    [stale] = w.run(w.sims.wechatpay.pay(order.out_trade_no, old_timestamp=True))
    assert stale.status == 401 and not stale.accepted
    assert paid_entries(w, effects, order.out_trade_no) == ("paying", 0)
    FIGURES["wechat old timestamp"] = f"-> {stale.status}, no effect"


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_an_old_alipay_notification_counts_once(
    proof_world, shop, station, payers, effects, round_
) -> None:
    """Alipay defines no time window (it retries for 25 hours and signs notify_time):
    a genuine old notification pays the order, and all its copies pay it once."""
    w = proof_world
    order = shop.paying_order(station, "alipay", 12_300, payers["alipay"])
    old = w.run(w.sims.alipay.pay(order.out_trade_no, old_timestamp=True, times=3))
    assert [d.accepted for d in old] == [True] * 3
    assert paid_entries(w, effects, order.out_trade_no) == ("paid", 1)
    FIGURES["alipay old timestamp"] = "-> accepted, paid once (3 copies)"


# -- replayed ----------------------------------------------------------------------------


@pytest.mark.parametrize("round_", range(ROUNDS))
@pytest.mark.parametrize("method", ["wechat", "alipay"])
def test_a_replayed_notification_has_no_second_effect(
    proof_world, shop, station, payers, effects, method, round_
) -> None:
    w = proof_world
    order = shop.paying_order(station, method, 12_300, payers[method])
    [genuine] = w.run(sim_of(w, method).pay(order.out_trade_no))
    assert genuine.accepted
    assert paid_entries(w, effects, order.out_trade_no) == ("paid", 1)
    replies = [replay(w, genuine).status_code for _ in range(3)]
    assert paid_entries(w, effects, order.out_trade_no) == ("paid", 1)
    payment = ProviderPayment.create_id(method, genuine_transaction(w, order.out_trade_no))
    assert effects(w.core).events_by_topic[(payment, "Received")] == 1
    assert exceptions_of(w, order.out_trade_no) == []
    FIGURES[f"{method} replayed id"] = f"-> {replies}, 1 entry"


def genuine_transaction(w, out_trade_no: str) -> str:
    with w.core.read_pool.connection() as conn:
        (tx,) = conn.execute(
            "SELECT provider_transaction FROM read.fuel_orders WHERE out_trade_no = %s",
            (out_trade_no,),
        ).fetchone()
    return str(tx)


# -- wrong amount ------------------------------------------------------------------------


@pytest.mark.parametrize("round_", range(ROUNDS))
@pytest.mark.parametrize("method", ["wechat", "alipay"])
def test_a_wrong_amount_is_flagged_not_paid(
    proof_world, shop, station, payers, effects, method, round_
) -> None:
    """Genuinely signed, but for one fen less: parked in suspense as an exception."""
    w = proof_world
    order = shop.paying_order(station, method, 12_300, payers[method])
    wrong = order.payable_fen - 1
    w.run(sim_of(w, method).pay(order.out_trade_no, amount_override=wrong))
    status, _ = paid_entries(w, effects, order.out_trade_no)
    assert status == "paying"
    assert exceptions_of(w, order.out_trade_no) == [("amount_mismatch", wrong)]
    FIGURES[f"{method} amount mismatch"] = "-> flagged amount_mismatch, order unpaid"


# -- append-only -------------------------------------------------------------------------

TABLES = ("public.ledger_events", "public.ledger_receipts", "audit.chain")
STATEMENTS = {
    "UPDATE": "UPDATE {t} SET {c} = {c}",
    "DELETE": "DELETE FROM {t}",
    "TRUNCATE": "TRUNCATE {t}",
    "DISABLE TRIGGER": "ALTER TABLE {t} DISABLE TRIGGER USER",
}
A_COLUMN = {
    "public.ledger_events": "topic",
    "public.ledger_receipts": "fingerprint",
    "audit.chain": "hash",
}


@pytest.fixture(scope="module")
def sealed(proof_world) -> Any:
    """At least one row in each table, so row triggers have something to refuse."""
    core = proof_world.core
    core.wallets.top_up(key=uuid4().hex, member_id=uuid4(), amount=100)
    with psycopg.connect(core.app_url, autocommit=True) as conn:
        while seal(conn):
            pass
    with psycopg.connect(core.owner_url) as conn:
        for table in TABLES:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0, table
    return core


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("verb", STATEMENTS)
def test_the_application_role_cannot_change_the_log(sealed, table, verb) -> None:
    sql = STATEMENTS[verb].format(t=table, c=A_COLUMN[table])
    with (
        psycopg.connect(sealed.app_url) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(sql)
    refused = int(FIGURES.get("ledger_app refused", "0 of").split()[0]) + 1
    FIGURES["ledger_app refused"] = f"{refused} of {len(TABLES) * len(STATEMENTS)} statements"


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("verb", ["UPDATE", "DELETE", "TRUNCATE"])
def test_even_the_owner_is_refused_by_the_triggers(sealed, table, verb) -> None:
    sql = STATEMENTS[verb].format(t=table, c=A_COLUMN[table])
    with (
        psycopg.connect(sealed.owner_url) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege) as refused,
    ):
        conn.execute(sql)
    assert "append-only" in str(refused.value)
    count = int(FIGURES.get("owner refused by triggers", "0 of").split()[0]) + 1
    FIGURES["owner refused by triggers"] = f"{count} of {len(TABLES) * 3} statements"
