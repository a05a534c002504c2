"""A storm of provider notifications: every WeChat Pay and Alipay payment and refund
notification is delivered 1 to 5 times, all of them shuffled together and sent at once from
many threads with random delays, to three API instances (each its own core, as three server
processes would be) on one database. Each has exactly one effect: one journal entry per
provider transaction, one recorded answer per refund, and the provider clearing accounts
hold exactly what was paid less what was refunded.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient
from scale import pick

from api.main import create_app
from infra.bootstrap import build_core
from ledger import accounts as acc
from ledger.domain.provider_payment import ProviderPayment
from ledger.domain.refund import Refund
from office_support import partner_token
from orders_support import make_station
from providers.sim.notifier import Outgoing
from support import project, read_balances
from workers.context import WorkerContext
from workers.effects import send_provider_refund

pytestmark = pytest.mark.proof


ORDERS_PER_PROVIDER = pick(ci=8, full=60)
THREADS = pick(ci=8, full=16)
MAX_DELAY_S = 0.02
API_INSTANCES = 3
PROVIDERS = ("wechat", "alipay")
SEED = int(os.environ.get("PROOF_SEED", "20261124"))


@dataclass
class Paid:
    order_id: str
    out_trade_no: str
    method: str
    amount_fen: int
    transaction_id: str = ""
    finished: bool = False  # an Alipay trade closed to refunds (TRADE_FINISHED sent too)
    out_refund_no: str = ""
    refund_fen: int = 0


@pytest.fixture(scope="module")
def apis(proof_world, settings) -> Iterator[list[TestClient]]:
    """The module's API plus two more, each on a core of its own (own cache, locks and
    group committer), like three server processes behind one load balancer."""
    with ExitStack() as stack:
        clients = [proof_world.api]
        for _ in range(API_INSTANCES - 1):
            core = build_core(settings, proof_world.core.owner_url, migrate=False)
            stack.callback(core.close)
            app = create_app(core=core, providers=proof_world.providers)
            clients.append(stack.enter_context(TestClient(app)))
        yield clients


def test_every_notification_one_to_five_times_concurrently_has_one_effect(
    proof_world, apis, effects, shop
) -> None:
    w, rng = proof_world, random.Random(SEED)
    started = time.monotonic()
    station = make_station(w.core)
    orders = place_orders(shop, station, rng)
    hold_payment_notifications(w, orders, rng)
    paid_storm = storm(w, apis, rng)
    project(w.core)
    refund_half(w, station, orders, rng)
    refund_storm = storm(w, apis, rng)
    project(w.core)

    stored = effects(w.core)
    assert_paid_once(w, orders, stored)
    assert_refunded_once(w, orders, stored)
    assert_provider_accounts(w, orders)
    assert all(n == 1 for n in stored.entries_by_id.values()), "a journal entry stored twice"
    deliveries = paid_storm + refund_storm
    refused = [outcome for _, _, outcome in deliveries if outcome != "accepted"]
    assert not refused, refused[:5]
    by_kind = {
        "payments": dict(Counter(f"{who}:{event}" for who, event, _ in paid_storm)),
        "refunds": dict(Counter(f"{who}:{event}" for who, event, _ in refund_storm)),
    }
    print(
        f"\nnotification storm: {len(orders)} payments + {len(refundable(orders))} refunds, "
        f"{len(deliveries)} deliveries {by_kind} from {THREADS} threads to "
        f"{len(apis)} API instances, {len(stored.entries_by_transaction)} transactions with "
        f"exactly 1 journal entry each, 0 double effects ({time.monotonic() - started:.0f} s)"
    )


# -- the orders ---------------------------------------------------------------------------


def place_orders(shop, station: UUID, rng: random.Random) -> list[Paid]:
    """Members order fuel over the API and choose WeChat Pay or Alipay; `amount_fen` is
    what the provider is asked for."""
    payers = {method: [shop.member_auth(method) for _ in range(2)] for method in PROVIDERS}
    project(shop.w.core)
    orders = []
    for method, auths in payers.items():
        for _ in range(ORDERS_PER_PROVIDER):
            amount = rng.randrange(1_000, 50_000)
            made = shop.paying_order(station, method, amount, rng.choice(auths))
            orders.append(Paid(made.order_id, made.out_trade_no, method, made.payable_fen))
    return orders


def hold_payment_notifications(w, orders: list[Paid], rng: random.Random) -> None:
    """The providers see each payment and queue its notification 1..5 times (Alipay sends
    TRADE_SUCCESS and, for some, TRADE_FINISHED too: both are the same payment)."""
    for order in orders:
        times = rng.randint(1, 5)
        if order.method == "wechat":
            w.run(w.sims.wechatpay.pay(order.out_trade_no, times=times, hold=True))
        else:
            order.finished = rng.random() < 0.3
            w.run(
                w.sims.alipay.pay(order.out_trade_no, finish=order.finished, times=times, hold=True)
            )


def refund_half(w, station: UUID, orders: list[Paid], rng: random.Random) -> None:
    """The station refunds half of each refundable order over the API; the worker asks the
    provider; each provider queues its refund notification 1..5 times."""
    partner = {"Authorization": f"Bearer {partner_token(w.core, station)}"}
    ctx = WorkerContext(
        core=w.core,
        wechat_pay=w.providers.wechat_pay,
        alipay=w.providers.alipay,
        tts=None,  # type: ignore[arg-type]
        redis=None,
    )
    w.sims.alipay.notify_refunds = True
    for order in refundable(orders):
        made = w.api.post(
            f"/v1/partner/stations/{station}/orders/{order.order_id}/refunds",
            json={"amount_fen": order.amount_fen // 2, "reason": "storm"},
            headers=partner,
        )
        assert made.status_code == 201, made.text
        order.out_refund_no = made.json()["out_refund_no"]
        order.refund_fen = made.json()["provider_fen"]  # the provider's share of the refund
    project(w.core)
    for order in refundable(orders):
        times = rng.randint(1, 5)
        w.sims.alipay.configure_delivery(hold=True, times=times)
        send_provider_refund(ctx, out_refund_no=order.out_refund_no, event_id=uuid4().hex)
        if order.method == "wechat":
            w.run(w.sims.wechatpay.settle_refund(order.out_refund_no, times=times, hold=True))
    w.sims.alipay.configure_delivery(hold=False, times=1)


def refundable(orders: list[Paid]) -> list[Paid]:
    return [o for o in orders if not o.finished]


# -- the storm ----------------------------------------------------------------------------


def storm(w, apis: list[TestClient], rng: random.Random) -> list[tuple[str, str, str]]:
    """Send everything the providers hold, shuffled, from THREADS threads at once; returns
    (provider, event, outcome) for every delivery."""
    held: list[Outgoing] = []
    for sim in (w.sims.wechatpay, w.sims.alipay):
        held += sim.notifier.pending
        sim.notifier.pending = []
    rng.shuffle(held)
    plan = [(item, rng.choice(apis), rng.uniform(0, MAX_DELAY_S)) for item in held]
    outcomes: list[tuple[str, str, str]] = []
    lock = threading.Lock()
    gate = threading.Barrier(THREADS)

    def worker(share: list[tuple[Outgoing, TestClient, float]]) -> None:
        gate.wait(timeout=30)
        for item, api, delay in share:
            time.sleep(delay)
            outcome = deliver(item, api)
            with lock:
                provider = "wechat" if "wechat" in item.url else "alipay"
                outcomes.append((provider, item.event, outcome))

    threads = [
        threading.Thread(target=worker, args=(plan[i::THREADS],), daemon=True)
        for i in range(THREADS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a delivery thread is stuck"
    assert len(outcomes) == len(held)
    return outcomes


def deliver(item: Outgoing, api: TestClient) -> str:
    headers, body = item.render(item.policy)
    response = api.post(urlsplit(item.url).path, headers=headers, content=body)
    wechat_ok = response.status_code in (200, 204) and "wechat" in item.url
    alipay_ok = response.status_code == 200 and response.content.strip() == b"success"
    return "accepted" if wechat_ok or alipay_ok else f"{response.status_code} {response.text[:80]}"


# -- what must hold afterwards ------------------------------------------------------------


def assert_paid_once(w, orders: list[Paid], stored: Any) -> None:
    with w.core.read_pool.connection() as conn:
        rows = conn.execute(
            "SELECT out_trade_no, status, provider_transaction FROM read.fuel_orders "
            "WHERE out_trade_no = ANY(%s)",
            ([o.out_trade_no for o in orders],),
        ).fetchall()
        exceptions = conn.execute(
            "SELECT count(*) FROM read.payment_exceptions WHERE out_trade_no = ANY(%s)",
            ([o.out_trade_no for o in orders],),
        ).fetchone()[0]
    shown = {t: (status, tx) for t, status, tx in rows}
    for order in orders:
        status, order.transaction_id = shown[order.out_trade_no]
        assert status == ("paid" if order.finished else "partially_refunded"), (order, status)
        assert stored.entries_by_transaction[order.transaction_id] == 1, order
        payment = ProviderPayment.create_id(order.method, order.transaction_id)
        assert stored.events_by_topic[(payment, "Received")] == 1, order
    assert exceptions == 0, "a duplicate was parked in suspense"


def assert_refunded_once(w, orders: list[Paid], stored: Any) -> None:
    with w.core.read_pool.connection() as conn:
        states = dict(
            conn.execute(
                "SELECT out_refund_no, provider_state FROM read.refunds "
                "WHERE out_refund_no = ANY(%s)",
                ([o.out_refund_no for o in refundable(orders)],),
            ).fetchall()
        )
    for order in refundable(orders):
        assert states[order.out_refund_no] == "SUCCESS", order
        refund = Refund.create_id(order.out_refund_no)
        assert stored.events_by_topic[(refund, "ProviderAnswered")] == 1, order


def assert_provider_accounts(w, orders: list[Paid]) -> None:
    balances = read_balances(w.core)
    for method in ("wechat", "alipay"):
        mine = [o for o in orders if o.method == method]
        expected = -sum(o.amount_fen for o in mine) + sum(o.refund_fen for o in mine)
        assert balances[(acc.provider(method), acc.CNY)] == expected, method
