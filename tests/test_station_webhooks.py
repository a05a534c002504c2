"""Station webhooks end to end: the partner sets one (a Station event, the secret shown once),
a paid order and a refund go event -> outbox -> relay -> dramatiq on a real Redis -> a signed
POST to a real HTTP receiver on a random port, a 500 is retried, every attempt is listed.

A database of this module's own (its outbox must hold only this module's events) and the
test Redis (TEST_REDIS_URL, else 127.0.0.1:6379/15), each test in its own key namespace.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import dramatiq
import httpx
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker
from fastapi.testclient import TestClient

from api.main import create_app
from databases import create_database, drop_database
from infra.bootstrap import Core, build_core
from infra.settings import Settings, get_settings
from ledger.ids import child
from office_support import (
    assert_problem,
    bearer,
    paid_card_order,
    partner_token,
    super_token,
)
from orders_support import make_station
from support import project
from workers import webhook_wire as wire
from workers.broker import build_broker, close_broker
from workers.context import WorkerContext, use_context
from workers.relay import outbox_message, relay

# -- a receiver: a real HTTP server on a random port -------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    seen: list[Received] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # status codes to give first, then 200
    delay_s: float = 0.0

    def signed_by(self, secret: str, hit: Received) -> bool:
        """The documented check, written out here rather than borrowed from our code."""
        timestamp = hit.headers["x-ledger-timestamp"]
        mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + hit.body, hashlib.sha256)
        expected = "sha256=" + mac.hexdigest()
        fresh = abs(time.time() - int(timestamp)) < 300
        return fresh and hmac.compare_digest(expected, hit.headers["x-ledger-signature"])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            me = box["r"]
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            me.seen.append(Received(self.path, headers, body))
            time.sleep(me.delay_s)
            status = me.answers.pop(0) if me.answers else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that timed out and left: expected in the timeout test

    server = Server(("127.0.0.1", 0), Handler)
    box["r"] = Receiver(f"http://127.0.0.1:{server.server_address[1]}/hooks/ledger")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield box["r"]
    server.shutdown()
    server.server_close()


# -- the ledger side ------------------------------------------------------------------------------


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
def wcore(server_url: str, redis_url: str) -> Iterator[Core]:
    url = create_database(server_url, "ledger_webhooks")
    built = build_core(Settings(environment="test", redis_url=redis_url), url)
    yield built
    built.close()
    drop_database(server_url, url)


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
    built = build_broker(redis_url)
    built.namespace = f"ledger-test-{uuid.uuid4().hex[:12]}"
    for actor in actors.broker.actors.values():
        built.declare_actor(actor)
    yield built
    built.flush_all()
    close_broker(built)


@pytest.fixture
def api(wcore: Core) -> Iterator[TestClient]:
    ctx = WorkerContext(
        core=wcore,
        wechat_pay=None,
        alipay=None,
        tts=SimpleNamespace(synthesize=lambda text: b"RIFF"),  # type: ignore[arg-type]
        redis=None,
    )
    previous = use_context(ctx)
    app = create_app(core=wcore, providers=object())  # type: ignore[arg-type]
    with TestClient(app) as client:
        yield client
    use_context(previous)


def deliver_everything(core: Core, broker: RedisBroker) -> None:
    """Project, relay, run the worker until its queue (and retries) are empty; twice, since
    a broadcast queues the webhook's own outbox row."""
    for _ in range(2):
        project(core)
        with core.read_pool.connection() as conn:
            while relay(conn, broker):
                pass
        worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=50)
        worker.start()
        try:
            broker.join("default", timeout=60_000)
            worker.join()
        finally:
            worker.stop()


def set_webhook(api: TestClient, core: Core, station: UUID, url: str) -> str:
    token = partner_token(core, station)
    answer = api.put(
        f"/v1/partner/stations/{station}/webhook", json={"url": url}, headers=bearer(token)
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["secret"])


def delivery_rows(api: TestClient, core: Core, station: UUID) -> list[dict[str, Any]]:
    answer = api.get(
        f"/v1/partner/stations/{station}/webhook/deliveries",
        headers=bearer(partner_token(core, station)),
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


# -- configuring -------------------------------------------------------------------------------


def test_the_partner_sets_the_webhook_and_sees_the_secret_once(wcore, api) -> None:
    station = make_station(wcore)
    auth = bearer(partner_token(wcore, station))
    path = f"/v1/partner/stations/{station}/webhook"
    assert_problem(api.get(path, headers=auth), 404, "webhook_not_configured")

    keyed = {**auth, "Idempotency-Key": "set-webhook-1"}
    first = api.put(path, json={"url": "https://pos.example/hook"}, headers=keyed)
    assert first.status_code == 200, first.text
    secret = first.json()["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    # a retry of the same request is the same configuration, with the same secret
    again = api.put(path, json={"url": "https://pos.example/hook"}, headers=keyed)
    assert again.json()["secret"] == secret

    project(wcore)
    shown = api.get(path, headers=auth).json()
    assert shown["url"] == "https://pos.example/hook"
    assert shown["secret_masked"] == "****" + secret[-4:]
    assert shown["configured_by"].startswith("partner:")
    with wcore.read_pool.connection() as conn:
        [(sealed,)] = conn.execute(
            "SELECT secret_sealed FROM read.station_webhooks WHERE station_id = %s", (station,)
        ).fetchall()
        events = conn.execute(
            "SELECT convert_from(state, 'UTF8') FROM public.ledger_events WHERE originator_id = %s",
            (station,),
        ).fetchall()
        receipts = conn.execute("SELECT result::text FROM public.ledger_receipts").fetchall()
    assert secret not in sealed  # stored sealed, in the event and in the read model alike
    assert not any(secret in text for (text,) in [*events, *receipts])

    # a new configuration rotates the secret; removing it ends the webhook
    rotated = api.put(path, json={"url": "https://pos.example/v2"}, headers=auth).json()
    assert rotated["secret"] != secret
    assert api.delete(path, headers=auth).status_code == 204
    assert_problem(api.delete(path, headers=auth), 404, "webhook_not_configured")
    project(wcore)
    assert_problem(api.get(path, headers=auth), 404, "webhook_not_configured")


def test_only_http_urls_and_only_public_ones_in_production(wcore, api) -> None:
    station = make_station(wcore)
    auth = bearer(partner_token(wcore, station))
    path = f"/v1/partner/stations/{station}/webhook"
    for url in ("ftp://pos.example/hook", "https://user:pw@pos.example/", "not a url"):
        assert_problem(api.put(path, json={"url": url}, headers=auth), 422, "invalid_webhook_url")
    other = bearer(partner_token(wcore, uuid4()))
    assert_problem(
        api.put(path, json={"url": "https://a.example"}, headers=other), 403, "forbidden"
    )

    def resolving(address: str) -> Any:
        return lambda host, port, **_: [(2, 1, 6, "", (address, port))]

    refused = dict(allow_private=False)
    for url in ("http://127.0.0.1:8080/", "http://10.1.2.3/", "http://[::1]/", "http://0.0.0.0/"):
        assert wire.url_refusal(url, **refused), url
    assert wire.url_refusal("http://[::ffff:192.168.0.1]/", **refused)
    assert wire.url_refusal("https://x.example/", resolve=resolving("169.254.169.254"), **refused)
    assert (
        wire.url_refusal("https://pos.example/", resolve=resolving("93.184.215.14"), **refused)
        == ""
    )
    assert wire.url_refusal("http://127.0.0.1:8080/", allow_private=True) == ""

    production = wcore.settings.model_copy(update={"environment": "production"})
    app = create_app(core=dataclasses.replace(wcore, settings=production), providers=object())  # type: ignore[arg-type]
    with TestClient(app) as client:
        local = client.put(path, json={"url": "http://127.0.0.1:9/hook"}, headers=auth)
    assert_problem(local, 422, "webhook_url_not_allowed")


def test_an_admin_sets_it_too_and_the_change_is_logged(wcore, api, receiver) -> None:
    station = make_station(wcore)
    auth = bearer(super_token(wcore))
    path = f"/v1/admin/stations/{station}/webhook"
    answer = api.put(path, json={"url": receiver.url}, headers=auth)
    assert answer.status_code == 200, answer.text
    tested = api.post(path + "/test", headers=auth).json()
    assert tested["delivered"] and tested["status_code"] == 200
    [hit] = receiver.seen
    assert receiver.signed_by(answer.json()["secret"], hit)
    assert json.loads(hit.body)["type"] == "webhook.test"
    with wcore.read_pool.connection() as conn:
        logged = conn.execute(
            "SELECT action, after FROM office.admin_log WHERE target = %s ORDER BY log_id",
            (str(station),),
        ).fetchall()
    assert [a for a, _ in logged] == ["stations.webhook_set", "stations.webhook_test"]
    assert logged[0][1] == {"url": receiver.url}  # never the secret
    assert_problem(
        api.post(f"/v1/admin/stations/{uuid4()}/webhook/test", headers=auth), 404, "not_found"
    )


# -- delivering -------------------------------------------------------------------------------


def test_a_paid_order_is_delivered_once_and_signed(wcore, api, broker, receiver) -> None:
    station = make_station(wcore)
    secret = set_webhook(api, wcore, station, receiver.url)
    order = paid_card_order(wcore, station, amount_fen=12_345)
    deliver_everything(wcore, broker)

    [hit] = receiver.seen
    assert hit.path == "/hooks/ledger" and receiver.signed_by(secret, hit)
    assert not receiver.signed_by("whsec_someone-else", hit)
    assert hit.headers["content-type"].startswith("application/json")
    body = json.loads(hit.body)
    assert body["id"] == hit.headers["x-ledger-event-id"]
    assert (body["type"], body["station_id"]) == ("order.paid", str(station))
    assert body["data"]["order_id"] == order["order_id"]
    assert (body["data"]["amount_fen"], body["data"]["amount_yuan"]) == (12_345, "123.45")
    assert body["data"]["method"] == "card" and body["data"]["nozzle"] == 1

    # the same message again (a redelivery) and the broadcast again: nothing more is sent
    event_id = UUID(body["id"])
    payload = {"order_id": order["order_id"], "event_type": "order.paid"}
    broker.enqueue(outbox_message(event_id, "station_webhook", payload))
    deliver_everything(wcore, broker)
    assert len(receiver.seen) == 1
    [row] = delivery_rows(api, wcore, station)
    assert (row["outcome"], row["status_code"], row["attempt"]) == ("delivered", 200, 1)
    assert row["event_id"] == str(event_id) and row["event_type"] == "order.paid"


def test_a_500_is_retried_with_backoff_then_delivered(wcore, api, broker, receiver) -> None:
    station = make_station(wcore)
    secret = set_webhook(api, wcore, station, receiver.url)
    receiver.answers = [500]
    started = time.monotonic()
    paid_card_order(wcore, station, amount_fen=5_000)
    deliver_everything(wcore, broker)

    first, second = receiver.seen
    assert first.headers["x-ledger-event-id"] == second.headers["x-ledger-event-id"]
    assert receiver.signed_by(secret, first) and receiver.signed_by(secret, second)
    assert json.loads(first.body) == json.loads(second.body)  # the same facts every time
    rows = delivery_rows(api, wcore, station)
    assert [(r["attempt"], r["outcome"], r["status_code"]) for r in rows] == [
        (2, "delivered", 200),
        (1, "failed", 500),
    ]
    print(f"\nwebhook: failed once, delivered on retry after {time.monotonic() - started:.1f} s")


def test_a_refund_is_delivered_and_a_station_without_webhook_gets_nothing(
    wcore, api, broker, receiver
) -> None:
    hooked, plain = make_station(wcore), make_station(wcore)
    secret = set_webhook(api, wcore, hooked, receiver.url)
    quiet = paid_card_order(wcore, plain, amount_fen=7_000)
    order = paid_card_order(wcore, hooked, amount_fen=9_000)
    wcore.orders.refund(
        order_id=UUID(order["order_id"]),
        out_refund_no=f"R{uuid4().hex[:20]}",
        amount_fen=2_500,
        reason="fuel not dispensed",
        requested_by="station",
    )
    wcore.orders.refund(
        order_id=UUID(quiet["order_id"]),
        out_refund_no=f"R{uuid4().hex[:20]}",
        amount_fen=1_000,
        reason="wrong nozzle",
        requested_by="station",
    )
    deliver_everything(wcore, broker)

    kinds = sorted(json.loads(hit.body)["type"] for hit in receiver.seen)
    assert kinds == ["order.paid", "order.refunded"]
    assert all(receiver.signed_by(secret, hit) for hit in receiver.seen)
    [refund] = [json.loads(h.body) for h in receiver.seen if b"order.refunded" in h.body]
    assert refund["data"]["order_id"] == order["order_id"]
    assert refund["data"]["refund"]["refund_fen"] == 2_500
    assert refund["data"]["refund"]["reason"] == "fuel not dispensed"
    assert delivery_rows(api, wcore, plain) == []
    with wcore.read_pool.connection() as conn:
        queued = conn.execute(
            "SELECT count(*) FROM read.outbox WHERE event_id = %s",
            (child(webhook_source(wcore, UUID(quiet["order_id"])), "station_webhook"),),
        ).fetchone()
    assert queued == (0,)  # a paid order at a station without a webhook queues nothing


def webhook_source(core: Core, order_id: UUID) -> UUID:
    with core.read_pool.connection() as conn:
        row = conn.execute(
            "SELECT message_id FROM read.station_messages WHERE order_id = %s", (order_id,)
        ).fetchone()
    assert row is not None
    return UUID(str(row[0]))


def test_a_slow_receiver_times_out_and_an_unreachable_one_is_an_error(receiver) -> None:
    receiver.delay_s = 1.0
    quick = httpx.Client(timeout=httpx.Timeout(0.2))
    result = wire.post(receiver.url, "whsec_x", str(uuid4()), b"{}", client=quick)
    assert result.outcome == "timeout" and not result.final
    quick.close()
    unreachable = wire.post("http://127.0.0.1:9/", "whsec_x", str(uuid4()), b"{}")
    assert unreachable.outcome == "error" and not unreachable.final


def test_the_signature_helpers_agree_with_the_documented_scheme() -> None:
    body, stamp = b'{"id":"e"}', str(int(time.time()))
    signature = wire.sign("whsec_k", stamp, body)
    expected = hmac.new(b"whsec_k", stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert signature == "sha256=" + expected
    assert wire.verify("whsec_k", stamp, signature, body)
    assert not wire.verify("whsec_k", stamp, signature, body + b" ")
    assert not wire.verify("whsec_k", str(int(stamp) - 600), signature, body)
