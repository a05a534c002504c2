"""Side effects from events: event -> outbox row -> relay -> dramatiq on a real Redis -> effect.

Real PostgreSQL (a database of this module's own, so only its events reach its outbox) and
real Redis (TEST_REDIS_URL, else 127.0.0.1:6379/15; each test on its own key namespace).
The providers are the in-process simulators; their notifications go to our API in-process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import dramatiq
import httpx
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker
from fastapi.testclient import TestClient

from api.auth import issue_access_token
from api.main import create_app
from api.station_events import event_stream
from databases import create_database, drop_database
from infra.bootstrap import Core, build_core
from infra.settings import Settings, get_settings
from ledger import accounts as acc
from ledger.services.top_ups import TopUpService
from orders_support import Clock, make_station, order_service
from projections.daemon import Daemon
from projections.outbox import event_id as outbox_event_id
from providers.alipay import AlipayClient, AlipayConfig
from providers.errors import ProviderError
from providers.keys import DevKeys
from providers.sim.app import Simulators, build_simulators
from providers.sim.asgi_client import SyncASGITransport
from providers.sim.notifier import asgi_deliver
from providers.tts import TtsClient
from providers.wechatpay import WeChatPayClient, WeChatPayConfig
from support import journal_sums, project, read_balances
from workers import effects
from workers.broker import build_broker, close_broker
from workers.context import WorkerContext, use_context
from workers.relay import outbox_message, relay

MCHID, APPID, ALIPAY_APP_ID = "1900000109", "wx8888888888888888", "2021000000000042"
BASE = "http://sim.test"
NOTIFY = "https://api.test/v1/payments"


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL") or "redis://127.0.0.1:6379/15"
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {url}")
    finally:
        client.close()
    return url


@pytest.fixture(scope="module")
def ocore(server_url: str, redis_url: str) -> Iterator[Core]:
    """A database of this module's own (the session one's outbox holds other tests' events)."""
    url = create_database(server_url, "ledger_outbox")
    built = build_core(Settings(environment="test", redis_url=redis_url), url)
    yield built
    built.close()
    drop_database(server_url, url)


@pytest.fixture(scope="module")
def keys() -> DevKeys:
    return DevKeys.generate()


@pytest.fixture(scope="module")
def actors(redis_url: str) -> Any:
    """workers.actors, imported with REDIS_URL pointing at the test Redis."""
    saved = os.environ.get("REDIS_URL")
    os.environ["REDIS_URL"] = redis_url
    get_settings.cache_clear()
    try:
        from workers import actors as module
    finally:
        if saved is None:
            os.environ.pop("REDIS_URL", None)
        else:
            os.environ["REDIS_URL"] = saved
        get_settings.cache_clear()
    return module


@pytest.fixture
def broker(redis_url: str, actors: Any) -> Iterator[RedisBroker]:
    """A broker on the test Redis, in a namespace of its own, knowing the real actors."""
    built = build_broker(redis_url)
    built.namespace = f"ledger-test-{uuid.uuid4().hex[:12]}"
    for actor in actors.broker.actors.values():
        built.declare_actor(actor)
    yield built
    built.flush_all()
    close_broker(built)


@dataclass
class World:
    sims: Simulators
    transport: SyncASGITransport
    wechat: WeChatPayClient
    alipay: AlipayClient
    api: TestClient
    ctx: WorkerContext

    def run(self, coroutine: Any) -> Any:
        return self.transport.run(coroutine)


@pytest.fixture
def world(ocore: Core, keys: DevKeys, redis_url: str) -> Iterator[World]:
    target: list[Any] = []

    async def deliver(url: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        return await target[0](url, headers, body)

    sims = build_simulators(
        keys,
        merchant_id=MCHID,
        appid=APPID,
        alipay_app_id=ALIPAY_APP_ID,
        login_secret="s",
        deliver=deliver,
    )
    transport = SyncASGITransport(sims.asgi)
    http = httpx.Client(transport=transport, base_url=BASE)
    wechat = WeChatPayClient(
        WeChatPayConfig(
            mchid=MCHID,
            appid=APPID,
            merchant_serial=keys.merchant_serial,
            merchant_private_key_pem=keys.merchant.private_pem,
            apiv3_key=keys.apiv3_key,
            platform_public_keys=keys.wechat_platform_public_keys(),
            base_url=f"{BASE}/wechatpay",
            notify_url=f"{NOTIFY}/wechat/notify",
        ),
        http,
    )
    alipay = AlipayClient(
        AlipayConfig(
            app_id=ALIPAY_APP_ID,
            app_private_key_pem=keys.alipay_app.private_pem,
            alipay_public_key_pem=keys.alipay_platform.public_pem,
            gateway_url=f"{BASE}/alipay/gateway.do",
            notify_url=f"{NOTIFY}/alipay/notify",
        ),
        http,
    )
    app = create_app(core=ocore, providers=SimpleNamespace(wechat_pay=wechat, alipay=alipay))  # type: ignore[arg-type]
    publisher = redis.Redis.from_url(redis_url)
    ctx = WorkerContext(
        core=ocore,
        wechat_pay=wechat,
        alipay=alipay,
        tts=TtsClient(f"{BASE}/tts", http=http),
        redis=publisher,
    )
    previous = use_context(ctx)
    with TestClient(app) as api:
        target.append(asgi_deliver(app))
        yield World(sims, transport, wechat, alipay, api, ctx)
    use_context(previous)
    publisher.close()
    http.close()
    transport.close()


# -- helpers ----------------------------------------------------------------------------


def run_worker(broker: RedisBroker, timeout_s: float = 30) -> None:
    """Run every message on the queue (and its retries) on a real dramatiq worker."""
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=50)
    worker.start()
    try:
        broker.join("default", timeout=int(timeout_s * 1000))
        worker.join()
    finally:
        worker.stop()


def relay_now(core: Core, broker: dramatiq.Broker) -> int:
    with core.read_pool.connection() as conn:
        return relay(conn, broker)


def outbox(core: Core, actor: str, key: str, value: str) -> list[tuple[Any, ...]]:
    with core.read_pool.connection() as conn:
        return conn.execute(
            "SELECT event_id, payload, sent_at FROM read.outbox "
            "WHERE actor = %s AND payload ->> %s = %s",
            (actor, key, value),
        ).fetchall()


def queued(broker: RedisBroker) -> list[dramatiq.Message[Any]]:
    raw = broker.client.hvals(f"{broker.namespace}:default.msgs")
    return [dramatiq.Message.decode(data) for data in raw]


def messages(core: Core, order_id: UUID) -> list[tuple[Any, ...]]:
    with core.read_pool.connection() as conn:
        return conn.execute(
            "SELECT message_id, station_id, text, amount_fen, audio, seq "
            "FROM read.station_messages WHERE order_id = %s",
            (order_id,),
        ).fetchall()


def card_paid_order(core: Core, station: UUID, amount: int = 12_345, nozzle: int = 3) -> UUID:
    orders, m = order_service(core), uuid4()
    core.wallets.top_up(key=f"{m}-t", member_id=m, amount=amount)
    order = orders.create(
        member_id=m, key="k", station_id=station, grade="92#", nozzle=nozzle, amount_fen=amount
    )
    orders.pay_with_card(order_id=UUID(order["order_id"]), member_id=m)
    return UUID(order["order_id"])


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the station broadcast ------------------------------------------------------------------


def test_a_card_payment_reaches_the_station_once(ocore, world, broker) -> None:
    station = make_station(ocore)
    paid_at = time.perf_counter()
    order_id = card_paid_order(ocore, station)
    project(ocore)
    [(event_id, payload, sent_at)] = outbox(ocore, "station_broadcast", "order_id", str(order_id))
    assert payload == {"order_id": str(order_id), "station_id": str(station)}
    assert event_id == outbox_event_id(order_id, 2)  # Created is version 1, Paid version 2
    assert sent_at is None

    assert relay_now(ocore, broker) >= 1
    [(_, _, sent_at)] = outbox(ocore, "station_broadcast", "order_id", str(order_id))
    assert sent_at is not None
    [message] = [m for m in queued(broker) if m.message_id == str(event_id)]
    assert message.actor_name == "station_broadcast"
    assert message.kwargs == {**payload, "event_id": str(event_id)}

    run_worker(broker)
    elapsed = time.perf_counter() - paid_at
    [(message_id, at_station, text, amount, audio, _)] = messages(ocore, order_id)
    assert (message_id, at_station, amount) == (event_id, station, 12_345)
    assert text == "油卡到账 123.45 元, 92 号 3 号枪"
    assert audio[:4] == b"RIFF" and audio[8:12] == b"WAVE" and len(audio) > 44
    assert [t.text for t in world.sims.tts.texts] == [text]
    print(f"\npayment -> station message (project, relay, worker, TTS): {elapsed * 1000:.0f} ms")

    # the same message delivered twice more: still one message, one voice
    broker.enqueue(outbox_message(event_id, "station_broadcast", payload))
    broker.enqueue(outbox_message(event_id, "station_broadcast", payload))
    run_worker(broker)
    assert len(messages(ocore, order_id)) == 1
    assert len(world.sims.tts.texts) == 1
    assert effects.station_broadcast(world.ctx, event_id=str(event_id), **payload) is False


def test_a_claim_is_exclusive_until_it_is_stale(ocore, world) -> None:
    station = make_station(ocore)
    order_id = card_paid_order(ocore, station, amount=5_000, nozzle=1)
    args = {"order_id": str(order_id), "station_id": str(station)}
    event_id = str(uuid4())
    # before the order is projected: retried later, and the claim is given back
    with pytest.raises(effects.NotYetProjected):
        effects.station_broadcast(world.ctx, event_id=event_id, **args)
    project(ocore)
    with ocore.read_pool.connection() as conn:
        conn.execute(
            "INSERT INTO read.side_effects (event_id, actor) VALUES (%s, 'station_broadcast')",
            (event_id,),
        )
    with pytest.raises(effects.HeldElsewhere):  # in hand: retried later, never dropped
        effects.station_broadcast(world.ctx, event_id=event_id, **args)
    with ocore.read_pool.connection() as conn:
        conn.execute(
            "UPDATE read.side_effects SET started_at = now() - interval '2 minutes' "
            "WHERE event_id = %s",
            (event_id,),
        )
    assert effects.station_broadcast(world.ctx, event_id=event_id, **args) is True  # dead claim
    assert len(messages(ocore, order_id)) == 1


# -- Redis down -----------------------------------------------------------------------------


def test_messages_wait_in_the_outbox_while_redis_is_down(ocore, broker, caplog) -> None:
    station = make_station(ocore)
    orders = [card_paid_order(ocore, station, amount=1_000 + i) for i in range(3)]
    project(ocore)
    dead_url = f"redis://127.0.0.1:{closed_port()}/15"
    dead = build_broker(dead_url)
    with ocore.read_pool.connection() as conn, pytest.raises(redis.ConnectionError):
        relay(conn, dead)
    close_broker(dead)
    assert all(outbox(ocore, "station_broadcast", "order_id", str(o))[0][2] is None for o in orders)

    # the daemon goes on projecting and sealing, and says once that messages wait
    settings = ocore.settings.model_copy(update={"redis_url": dead_url})
    daemon = Daemon(dataclasses.replace(ocore, settings=settings))
    card_paid_order(ocore, station)
    daemon.step()
    daemon.step()
    assert daemon.relay.down_since is not None
    assert sum("relay paused" in r.getMessage() for r in caplog.records) == 1
    assert all(outbox(ocore, "station_broadcast", "order_id", str(o))[0][2] is None for o in orders)
    daemon.relay.close()

    # Redis is back: the daemon sends everything that waited, in log order
    daemon = Daemon(ocore)
    daemon.relay.broker.namespace = broker.namespace  # type: ignore[union-attr]
    daemon.step()
    daemon.relay.close()
    assert all(
        outbox(ocore, "station_broadcast", "order_id", str(o))[0][2] is not None for o in orders
    )
    sent = {m.message_id for m in queued(broker)}
    assert {
        str(outbox(ocore, "station_broadcast", "order_id", str(o))[0][0]) for o in orders
    } <= sent
    actors_sent = {m.actor_name for m in queued(broker)}
    assert {"expire_due", "heartbeat"} <= actors_sent  # the scheduler's first period


def test_relay_rate(ocore, broker) -> None:
    """How fast the relay empties a backlog into Redis (rows are synthetic)."""
    n = 2_000
    while relay_now(ocore, broker):  # what earlier tests left, first
        pass
    rows = [(uuid4(), 10**12 + i, "not_run", "{}") for i in range(n)]
    with ocore.read_pool.connection() as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO read.outbox (event_id, position, actor, payload) VALUES (%s, %s, %s, %s)",
            rows,
        )
    started = time.perf_counter()
    with ocore.read_pool.connection() as conn:
        sent = 0
        while batch := relay(conn, broker):
            sent += batch
    elapsed = time.perf_counter() - started
    print(f"\nrelay: {sent} messages in {elapsed:.2f} s = {sent / elapsed:,.0f}/s")
    assert sent == n
    broker.flush_all()


# -- refunds --------------------------------------------------------------------------------


def test_a_late_wechat_payment_is_refunded_through_the_provider(ocore, world, broker) -> None:
    clock, station, m = Clock(), make_station(ocore), uuid4()
    orders = order_service(ocore, clock)
    order = orders.create(
        member_id=m, key="late", station_id=station, grade="92#", nozzle=1, amount_fen=10_000
    )
    orders.start_provider_payment(order_id=UUID(order["order_id"]), member_id=m, method="wechat")
    world.wechat.jsapi_prepay(order["out_trade_no"], "92# 100.00", 10_000, "openid-late")
    clock.advance(minutes=16)
    orders.expire(order_id=UUID(order["order_id"]))

    [delivery] = world.run(world.sims.wechatpay.pay(order["out_trade_no"]))
    assert delivery.status == 204, delivery.reply  # our API recorded it: a late payment
    project(ocore)
    [(_, payload, _)] = outbox(
        ocore,
        "refund_suspense_payment",
        "payment_id",
        next(iter(_exception_ids(ocore, order["order_id"]))),
    )
    relay_now(ocore, broker)
    run_worker(broker)  # refund_suspense_payment: the Refund is requested

    project(ocore)
    out_refund_no = f"L{UUID(payload['payment_id']).hex[:31]}"
    assert outbox(ocore, "send_provider_refund", "out_refund_no", out_refund_no)
    relay_now(ocore, broker)
    run_worker(broker)  # send_provider_refund: WeChat accepts it, PROCESSING
    sim_refund = world.sims.wechatpay.orders.refunds[out_refund_no]
    assert (sim_refund.refund, sim_refund.status) == (10_000, "PROCESSING")
    assert _refund_state(ocore, out_refund_no) == "pending"

    [note] = world.run(world.sims.wechatpay.settle_refund(out_refund_no))
    assert note.status == 204, note.reply
    project(ocore)
    assert _refund_state(ocore, out_refund_no) == "SUCCESS"
    assert set(journal_sums(ocore).values()) == {0}

    # a redelivery of the refund message asks nothing more of anyone
    [(event_id, refund_payload, _)] = outbox(
        ocore, "send_provider_refund", "out_refund_no", out_refund_no
    )
    assert (
        effects.send_provider_refund(world.ctx, event_id=str(event_id), **refund_payload)
        == "SUCCESS"
    )


def test_an_alipay_refund_is_settled_at_once(ocore, world, broker) -> None:
    station, m = make_station(ocore), uuid4()
    orders = order_service(ocore)
    order = orders.create(
        member_id=m, key="ali", station_id=station, grade="92#", nozzle=2, amount_fen=8_000
    )
    order_id = UUID(order["order_id"])
    orders.start_provider_payment(order_id=order_id, member_id=m, method="alipay")
    world.alipay.trade_create(order["out_trade_no"], 8_000, "92#", "2088000000000077")
    # (our Alipay notify route needs python-multipart, not installed yet: confirm directly)
    world.sims.alipay.configure_delivery(hold=True)
    world.run(world.sims.alipay.pay(order["out_trade_no"]))
    trade = world.sims.alipay.trades.trades[order["out_trade_no"]]
    orders.confirm_provider_payment(
        provider="alipay",
        transaction_id=trade.trade_no,
        out_trade_no=order["out_trade_no"],
        amount_fen=8_000,
    )
    orders.refund(
        order_id=order_id,
        out_refund_no=f"R{m.hex[:20]}",
        amount_fen=3_000,
        reason="fuel not dispensed",
        requested_by="station",
    )
    project(ocore)
    relay_now(ocore, broker)
    run_worker(broker)
    project(ocore)
    assert _refund_state(ocore, f"R{m.hex[:20]}") == "SUCCESS"
    assert world.sims.alipay.trades.trades[order["out_trade_no"]].refunded == 3_000


def test_a_refused_refund_is_abnormal_and_a_busy_provider_is_retried(ocore, world) -> None:
    station, m = make_station(ocore), uuid4()
    orders = order_service(ocore)
    order = orders.create(
        member_id=m, key="refused", station_id=station, grade="92#", nozzle=1, amount_fen=6_000
    )
    order_id = UUID(order["order_id"])
    orders.start_provider_payment(order_id=order_id, member_id=m, method="wechat")
    orders.confirm_provider_payment(
        provider="wechat",
        transaction_id=f"tx-{m}",
        out_trade_no=order["out_trade_no"],
        amount_fen=6_000,
    )
    orders.refund(
        order_id=order_id,
        out_refund_no=f"X{m.hex[:20]}",
        amount_fen=6_000,
        reason="wrong nozzle",
        requested_by="station",
    )
    project(ocore)
    args = {"out_refund_no": f"X{m.hex[:20]}", "event_id": str(uuid4())}
    world.sims.wechatpay.fail_next(500, "SYSTEM_ERROR")
    with pytest.raises(ProviderError):
        effects.send_provider_refund(world.ctx, **args)  # dramatiq retries this
    assert _refund_state(ocore, args["out_refund_no"]) == "pending"
    # the simulator never saw this trade: WeChat's final answer, not worth retrying
    assert effects.send_provider_refund(world.ctx, **args) == "ABNORMAL"
    project(ocore)
    assert _refund_state(ocore, args["out_refund_no"]) == "ABNORMAL"


def _exception_ids(core: Core, order_id: str) -> list[str]:
    with core.read_pool.connection() as conn:
        rows = conn.execute(
            "SELECT payment_id FROM read.payment_exceptions WHERE order_id = %s", (order_id,)
        ).fetchall()
    return [str(r[0]) for r in rows]


def _refund_state(core: Core, out_refund_no: str) -> str:
    with core.read_pool.connection() as conn:
        row = conn.execute(
            "SELECT provider_state FROM read.refunds WHERE out_refund_no = %s", (out_refund_no,)
        ).fetchone()
    return str(row[0]) if row else "missing"


# -- expiry ---------------------------------------------------------------------------------


def test_expire_due_closes_voids_and_confirms(ocore, world) -> None:
    clock, station, m = Clock(), make_station(ocore), uuid4()
    orders = order_service(ocore, clock)
    ocore.wallets.top_up(key=f"{m}-t", member_id=m, amount=5_000)
    held = orders.create(
        member_id=m, key="held", station_id=station, grade="92#", nozzle=1, amount_fen=20_000
    )
    orders.start_provider_payment(
        order_id=UUID(held["order_id"]), member_id=m, method="wechat", card_fen=5_000
    )
    world.wechat.jsapi_prepay(held["out_trade_no"], "92#", 15_000, "openid-held")
    idle = orders.create(
        member_id=m, key="idle", station_id=station, grade="92#", nozzle=1, amount_fen=3_000
    )
    paid = orders.create(
        member_id=m, key="paid", station_id=station, grade="92#", nozzle=1, amount_fen=4_000
    )
    orders.start_provider_payment(order_id=UUID(paid["order_id"]), member_id=m, method="wechat")
    world.wechat.jsapi_prepay(paid["out_trade_no"], "92#", 4_000, "openid-held")
    world.sims.wechatpay.configure_delivery(hold=True)  # paid, but the notification is lost
    world.run(world.sims.wechatpay.pay(paid["out_trade_no"]))
    top_ups = TopUpService(ocore.runner, tiers=(), clock=clock)
    top_up = top_ups.create(member_id=m, key="tu", amount_fen=10_000, method="alipay")
    project(ocore)
    assert read_balances(ocore, f"member:{m}")[(acc.held(acc.member_card(m)), "CNY")] == 5_000

    counts = effects.expire_due(world.ctx)
    assert counts["expired"] >= 3 and counts["paid"] >= 1
    project(ocore)
    status = _statuses(ocore, held["order_id"], idle["order_id"], paid["order_id"])
    assert status == {
        held["order_id"]: "expired",
        idle["order_id"]: "expired",
        paid["order_id"]: "paid",
    }
    assert _top_up_status(ocore, top_up["top_up_id"]) == "expired"
    assert world.sims.wechatpay.orders.orders[held["out_trade_no"]].state == "CLOSED"
    balances = read_balances(ocore, f"member:{m}")
    assert balances[(acc.held(acc.member_card(m)), "CNY")] == 0  # the card hold is void
    assert balances[(acc.member_card(m), "CNY")] == 5_000
    assert effects.expire_due(world.ctx) == {"expired": 0, "paid": 0, "skipped": 0}


def _statuses(core: Core, *order_ids: str) -> dict[str, str]:
    with core.read_pool.connection() as conn:
        rows = conn.execute(
            "SELECT order_id, status FROM read.fuel_orders WHERE order_id = ANY(%s)",
            ([UUID(o) for o in order_ids],),
        ).fetchall()
    return {str(o): s for o, s in rows}


def _top_up_status(core: Core, top_up_id: str) -> str:
    with core.read_pool.connection() as conn:
        row = conn.execute(
            "SELECT status FROM read.top_ups WHERE top_up_id = %s", (UUID(top_up_id),)
        ).fetchone()
    return str(row[0]) if row else "missing"


# -- the station console's feed ---------------------------------------------------------------


def _broadcast(core: Core, ctx: WorkerContext, station: UUID, amount: int) -> UUID:
    order_id = card_paid_order(core, station, amount=amount)
    project(core)
    [(event_id, payload, _)] = outbox(core, "station_broadcast", "order_id", str(order_id))
    assert effects.station_broadcast(ctx, event_id=str(event_id), **payload)
    return order_id


def _events(body: str) -> list[dict[str, str]]:
    out = []
    for block in body.split("\n\n"):
        fields = dict(
            line.split(": ", 1)
            for line in block.splitlines()
            if ": " in line and not line.startswith(":")
        )
        if "data" in fields:
            out.append(fields)
    return out


def test_the_console_feed_streams_payments_to_its_station_only(ocore, world) -> None:
    station, other = make_station(ocore), make_station(ocore)
    first = _broadcast(ocore, world.ctx, station, 20_000)
    [(_, _, _, _, _, first_seq)] = messages(ocore, first)
    token, _ = issue_access_token(ocore.settings, uuid4(), "partner", [f"station:{station}"])
    auth = {"Authorization": f"Bearer {token}"}
    url = f"/v1/partner/stations/{station}/events"

    response = world.api.get(
        url, params={"max_seconds": 1}, headers={**auth, "Last-Event-ID": str(first_seq - 1)}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    [event] = _events(response.text)
    assert (event["id"], event["event"]) == (str(first_seq), "payment")
    assert '"text":"油卡到账 200.00 元, 92 号 3 号枪"' in event["data"]

    # live: a payment made while the console listens arrives on the same stream
    later = threading.Timer(0.5, _broadcast, (ocore, world.ctx, station, 30_000))
    later.start()
    response = world.api.get(
        url, params={"max_seconds": 3}, headers={**auth, "Last-Event-ID": str(first_seq)}
    )
    later.join()
    [event] = _events(response.text)
    assert "30000" in event["data"] and "300.00" in event["data"]
    audio_url = json.loads(event["data"])["audio_url"]
    audio = world.api.get(audio_url, headers=auth)
    assert audio.status_code == 200 and audio.content[:4] == b"RIFF"
    assert audio.headers["content-type"] == "audio/wav"

    # another station's partner is refused, for the feed and for the audio
    stranger, _ = issue_access_token(ocore.settings, uuid4(), "partner", [f"station:{other}"])
    for path in (url, audio_url):
        refused = world.api.get(path, headers={"Authorization": f"Bearer {stranger}"})
        assert refused.status_code == 403
        assert refused.json()["code"] == "forbidden"
    member, _ = issue_access_token(ocore.settings, uuid4(), "member", ["member"])
    assert world.api.get(url, headers={"Authorization": f"Bearer {member}"}).status_code == 403


def test_the_feed_wakes_on_redis_at_once(ocore, world) -> None:
    """Measures the time from the effect's commit and PUBLISH to the event on the wire."""
    station = make_station(ocore)
    done_at: list[float] = []

    def pay_later() -> None:
        time.sleep(0.5)
        _broadcast(ocore, world.ctx, station, 15_000)
        done_at.append(time.perf_counter())

    async def listen() -> float:
        stream = event_stream(ocore.read_pool, ocore.settings.redis_url, station, 0, 5)
        async for chunk in stream:
            if chunk.startswith("id:"):
                received = time.perf_counter()
                await stream.aclose()
                return received
        raise AssertionError("no event")

    thread = threading.Thread(target=pay_later)
    thread.start()
    received = asyncio.run(listen())
    thread.join()
    latency_ms = (received - done_at[0]) * 1000
    print(f"\nstation message committed -> SSE event: {latency_ms:.1f} ms")
    assert latency_ms < 500  # a wake-up, not the 5 s safety-net poll


def test_payment_to_station_message_latency(ocore, world, broker) -> None:
    """What a station waits, with the daemon's step and a running worker (100 ms idle poll):
    from the payment's commit to its message in read.station_messages."""
    station = make_station(ocore)
    project(ocore)
    while relay_now(ocore, broker):  # what earlier tests left: not measured
        pass
    broker.flush_all()
    daemon = Daemon(ocore)
    daemon.relay.broker.namespace = broker.namespace  # type: ignore[union-attr]
    daemon.scheduler.jobs = {}
    daemon.step()
    worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=100)
    worker.start()
    latencies, steps = [], []
    try:
        for i in range(10):
            order_id = card_paid_order(ocore, station, amount=2_000 + i)
            paid_at = time.perf_counter()
            daemon.step()  # woken by NOTIFY in production
            steps.append((time.perf_counter() - paid_at) * 1000)
            while not messages(ocore, order_id):
                assert time.perf_counter() - paid_at < 10, "no station message"
                time.sleep(0.005)
            latencies.append((time.perf_counter() - paid_at) * 1000)
    finally:
        worker.stop()
        daemon.relay.close()
    latencies.sort()
    print(
        f"\npayment -> station message: median {latencies[5]:.0f} ms, "
        f"max {latencies[-1]:.0f} ms (daemon step: median {sorted(steps)[5]:.0f} ms)"
    )
    assert len([t for t in world.sims.tts.texts if t.text.startswith("油卡到账 20.0")]) == 10
