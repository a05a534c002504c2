"""Shared fixtures for the in-process proofs: a database of each module's own
(`proof_core`), the provider simulators wired to the API in-process (`proof_world`), a
caller of every role (`callers`), members who order and pay over the API (`shop`), and
effects counted from the raw event log (`effects`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.auth import issue_access_token
from api.main import create_app
from api.providers_wiring import ProviderClients, build_provider_clients
from distribution_support import own_core
from infra.bootstrap import Core
from ledger.journal import JournalEntry
from office_support import member_token, partner_token, super_token
from orders_support import make_station
from payout_world import dev_keys
from providers.sim.app import Simulators, build_simulators
from providers.sim.asgi_client import asgi_http_client
from providers.sim.notifier import asgi_deliver


@pytest.fixture(scope="module")
def proof_core(server_url: str, settings: Any) -> Iterator[Core]:
    """A database of the module's own: proofs count whole-log figures."""
    yield from own_core(server_url, settings)


@dataclass
class ProofWorld:
    """The API and the provider simulators, talking to each other in-process."""

    core: Core
    sims: Simulators
    http: httpx.Client
    providers: ProviderClients
    app: FastAPI
    api: TestClient

    def run(self, coroutine: Any) -> Any:
        """Run a simulator control (`sims.wechatpay.pay(...)`) on the simulators' loop."""
        return self.http._transport.run(coroutine)  # type: ignore[attr-defined]


def open_proof_world(core: Core) -> Iterator[ProofWorld]:
    """The simulators deliver their notifications to this API; the API calls them back."""
    app_ref: list[FastAPI] = []

    async def deliver(url: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        return await asgi_deliver(app_ref[0])(url, headers, body)

    s = core.settings
    sims = build_simulators(
        dev_keys(),
        merchant_id=s.wechat_pay_mchid,
        appid=s.wechat_appid,
        alipay_app_id=s.alipay_app_id,
        login_secret=s.wechat_app_secret.get_secret_value(),
        deliver=deliver,
    )
    http = asgi_http_client(sims.asgi)
    providers = build_provider_clients(s, http, dev_keys())
    app = create_app(core=core, providers=providers)
    app_ref.append(app)
    with TestClient(app) as api:
        yield ProofWorld(core, sims, http, providers, app, api)
    http.close()


@pytest.fixture(scope="module")
def proof_world(proof_core: Core) -> Iterator[ProofWorld]:
    yield from open_proof_world(proof_core)


@dataclass(frozen=True)
class Callers:
    """A real member, a partner of a real station, a super-admin and finance, each with a
    bearer header; `station` and `member` are the ids they act on."""

    member: UUID
    station: UUID
    headers: dict[str, dict[str, str]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def callers_of(core: Core) -> Callers:
    member = UUID(core.members.sign_in(f"proof-{uuid4().hex}", None)["member_id"])
    core.wallets.top_up(key=f"{member}-proof", member_id=member, amount=100_000)
    station = make_station(core)
    finance = issue_access_token(core.settings, uuid4(), "finance", ())[0]
    headers = {
        "member": bearer(member_token(core, member)),
        "partner": bearer(partner_token(core, station)),
        "admin": bearer(super_token(core)),
        "finance": bearer(finance),
    }
    return Callers(member, station, headers)


@pytest.fixture(scope="module")
def callers(proof_core: Core) -> Callers:
    return callers_of(proof_core)


@dataclass(frozen=True)
class StoredEffects:
    """What the event store holds, counted straight from the raw log (not a read model)."""

    entries_by_transaction: Counter[str]  # journal entries naming a provider transaction
    entries_by_id: Counter[UUID]  # a journal entry id seen twice would be a double effect
    events_by_topic: Counter[tuple[UUID, str]]  # (aggregate, event class) -> how many


def stored_effects(core: Core) -> StoredEffects:
    by_transaction: Counter[str] = Counter()
    by_id: Counter[UUID] = Counter()
    by_topic: Counter[tuple[UUID, str]] = Counter()
    position = 0
    while True:
        page = core.app.recorder.select_notifications(
            start=position, limit=1_000, inclusive_of_start=False
        )
        if not page:
            return StoredEffects(by_transaction, by_id, by_topic)
        for notification in page:
            event = core.app.mapper.to_domain_event(notification)
            by_topic[(notification.originator_id, notification.topic.rsplit(".", 1)[-1])] += 1
            entry = getattr(event, "entry", None)
            if isinstance(entry, JournalEntry):
                by_id[entry.id] += 1
                if "transaction_id" in entry.memo:
                    by_transaction[str(entry.memo["transaction_id"])] += 1
        position = page[-1].id


@pytest.fixture
def effects() -> Callable[[Core], StoredEffects]:
    return stored_effects


@dataclass(frozen=True)
class PayingOrder:
    order_id: str
    out_trade_no: str
    method: str
    payable_fen: int
    auth: dict[str, str]


class Shop:
    """Members who order fuel over the API and hand the payment to a provider."""

    def __init__(self, world: ProofWorld) -> None:
        self.w = world

    def member_auth(self, method: str) -> dict[str, str]:
        """A member who can pay this way: Alipay wants one signed in with Alipay."""
        if method == "alipay":
            code = self.w.sims.alipay.mint_auth_code()["code"]
            signed = self.w.api.post("/v1/auth/alipay-login", json={"auth_code": code})
            assert signed.status_code == 200, signed.text
            return bearer(signed.json()["access_token"])
        core = self.w.core
        member = UUID(core.members.sign_in(f"proof-{uuid4().hex}", None)["member_id"])
        return bearer(member_token(core, member))

    def paying_order(
        self, station: UUID, method: str, amount_fen: int, auth: dict[str, str]
    ) -> PayingOrder:
        """An order placed over the API and handed to the provider (status `paying`)."""
        api = self.w.api
        body = {"station_id": str(station), "grade": "92#", "nozzle": 1, "amount_fen": amount_fen}
        made = api.post("/v1/orders", json=body, headers=auth | {"Idempotency-Key": uuid4().hex})
        assert made.status_code == 201, made.text
        order = made.json()
        paying = api.post(
            f"/v1/orders/{order['order_id']}/pay", json={"method": method}, headers=auth
        )
        assert paying.status_code == 200, paying.text
        return PayingOrder(
            order["order_id"], order["out_trade_no"], method, int(order["payable_fen"]), auth
        )


@pytest.fixture(scope="module")
def shop(proof_world: ProofWorld) -> Shop:
    return Shop(proof_world)
