"""The load of the fault proofs: members pay for fuel by card and by WeChat Pay over HTTP,
the WeChat simulator sends the signed notification (sometimes several copies, shuffled),
and every payment the API acknowledged with a 2xx is written down.

A card payment is acknowledged by the 200 of `POST /v1/orders/{id}/pay`; a WeChat payment
by a 2xx to one of its notifications. Requests that fail on the way (connection refused,
a timeout, a 5xx) are retried with the same Idempotency-Key or command, the way a client
does; the 5xx answers seen are counted by their problem `code`.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import httpx

PATIENCE_S = 120.0  # how long one request is retried through a fault
RETRY_PAUSE_S = 0.2
TOP_UP_FEN = 5_000_000
RETRYABLE_CONFLICTS = {"member_not_ready"}


class GaveUp(Exception):
    pass


@dataclass
class Member:
    id: str
    headers: dict[str, str]


@dataclass
class Payment:
    order_id: str
    out_trade_no: str
    method: str
    amount_fen: int


@dataclass
class Tally:
    """What the load saw; shared by its threads under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acknowledged: dict[str, Payment] = field(default_factory=dict)  # order id -> payment
    charged: dict[str, int] = field(default_factory=dict)  # out_trade_no -> fen, by the sim
    notified: dict[str, str] = field(default_factory=dict)  # notification id -> out_trade_no
    by_trade_no: dict[str, Payment] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)  # "503 database_unavailable" ...
    transport_errors: int = 0
    deliveries: int = 0
    unexpected: list[str] = field(default_factory=list)

    def acknowledge(self, payment: Payment) -> None:
        with self.lock:
            self.acknowledged[payment.order_id] = payment

    def record_deliveries(self, deliveries: list[dict[str, Any]]) -> None:
        with self.lock:
            self.deliveries += len(deliveries)
            for d in deliveries:
                trade_no = self.notified.get(d["notification_id"])
                if d["accepted"] and trade_no in self.by_trade_no:
                    payment = self.by_trade_no[trade_no]
                    self.acknowledged[payment.order_id] = payment


@dataclass
class Running:
    stopping: threading.Event
    threads: list[threading.Thread]
    errors: list[BaseException] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    def stop(self) -> None:
        """Let each thread finish the payment it is in, then re-raise what went wrong."""
        self.stopping.set()
        for thread in self.threads:
            thread.join()
        if self.errors:
            raise self.errors[0]


class LoadClient:
    def __init__(self, api_url: str, sim_url: str, stations: list[UUID], seed: int = 8) -> None:
        self.api_url, self.sim_url = api_url, sim_url
        self.stations = [str(s) for s in stations]
        self.tally = Tally()
        self.rng = random.Random(seed)
        self.members: list[Member] = []

    def client(self) -> httpx.Client:
        return httpx.Client(timeout=10.0, trust_env=False)

    # -- one request, retried through faults ------------------------------------------------

    def call(self, http: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
        deadline = time.monotonic() + PATIENCE_S
        while True:
            try:
                response = http.request(method, url, **kwargs)
            except httpx.TransportError:
                with self.tally.lock:
                    self.tally.transport_errors += 1
            else:
                if response.status_code < 400:
                    return response
                if not self._retryable(response):
                    raise AssertionError(f"{method} {url}: {response.status_code} {response.text}")
            if time.monotonic() > deadline:
                raise GaveUp(f"{method} {url} did not succeed in {PATIENCE_S:.0f} s")
            time.sleep(RETRY_PAUSE_S)

    def _retryable(self, response: httpx.Response) -> bool:
        code = problem_code(response)
        with self.tally.lock:
            self.tally.statuses[f"{response.status_code} {code}"] += 1
            if response.status_code >= 500 and not code:
                self.tally.unexpected.append(f"{response.status_code} without a problem code")
            if response.status_code == 500:
                self.tally.unexpected.append(f"500 {code}: {response.text[:200]}")
        return response.status_code >= 500 or code in RETRYABLE_CONFLICTS

    # -- setting up ----------------------------------------------------------------------------

    def sign_up(self, count: int) -> None:
        with self.client() as http:
            for _ in range(count):
                minted = self.call(
                    http, "POST", self.sim_url + "/wechat/sim/codes", json={"openid": uuid4().hex}
                ).json()
                tokens = self.call(
                    http, "POST", self.api_url + "/v1/auth/wechat-login", json=minted
                ).json()
                auth = {"Authorization": f"Bearer {tokens['access_token']}"}
                self.members.append(Member(tokens["member"]["id"], auth))

    def fund_cards(self) -> None:
        """A WeChat top-up per member, so that card payments have a balance to spend."""
        with self.client() as http:
            for member in self.members:
                created = self.call(
                    http,
                    "POST",
                    self.api_url + "/v1/card/top-ups",
                    json={"amount_fen": TOP_UP_FEN, "method": "wechat"},
                    headers={**member.headers, "Idempotency-Key": uuid4().hex},
                ).json()
                trade_no = created["top_up"]["out_trade_no"]
                self.simulate_payment(http, trade_no, TOP_UP_FEN, times=1)

    # -- paying --------------------------------------------------------------------------------

    def pay_once(self, http: httpx.Client, member: Member, rng: random.Random) -> Payment:
        body = {
            "station_id": rng.choice(self.stations),
            "grade": "92#",
            "nozzle": rng.randint(1, 3),
            "amount_fen": rng.randint(1_000, 20_000),
        }
        headers = {**member.headers, "Idempotency-Key": uuid4().hex}
        order = self.call(http, "POST", self.api_url + "/v1/orders", json=body, headers=headers)
        view = order.json()
        method = rng.choice(("card", "wechat"))
        payment = Payment(view["order_id"], view["out_trade_no"], method, view["payable_fen"])
        pay_url = f"{self.api_url}/v1/orders/{payment.order_id}/pay"
        paid = self.call(http, "POST", pay_url, json={"method": method}, headers=member.headers)
        if method == "card":
            self.tally.acknowledge(payment)
            return payment
        with self.tally.lock:
            self.tally.by_trade_no[payment.out_trade_no] = payment
        amount = int(paid.json()["payment"]["amount_fen"])
        copies = rng.choice((1, 1, 2, 3))  # duplicate notifications, now and then
        self.simulate_payment(http, payment.out_trade_no, amount, times=copies)
        return payment

    def simulate_payment(self, http: httpx.Client, trade_no: str, amount: int, times: int) -> None:
        """The member pays at WeChat: the simulator takes the money and notifies the API."""
        url = f"{self.sim_url}/wechatpay/sim/orders/{trade_no}/pay"
        answer = http.post(url, json={"times": times, "shuffle": times > 1}, timeout=120.0)
        if answer.status_code != 200:
            raise AssertionError(f"the simulator refused to pay {trade_no}: {answer.text}")
        deliveries = answer.json()["deliveries"]
        with self.tally.lock:
            self.tally.charged[trade_no] = amount
            for d in deliveries:
                self.tally.notified[d["notification_id"]] = trade_no
        self.tally.record_deliveries(deliveries)

    def start(self, threads: int) -> Running:
        """Pay from `threads` threads (each with its own members) until stopped."""
        if len(self.members) < threads:
            raise ValueError(f"{threads} threads need at least as many members")
        running = Running(threading.Event(), [])
        for index in range(threads):
            seed = self.rng.random()
            thread = threading.Thread(target=self._work, args=(index, threads, seed, running))
            thread.daemon = True
            running.threads.append(thread)
            thread.start()
        return running

    def _work(self, index: int, threads: int, seed: float, running: Running) -> None:
        rng = random.Random(seed)
        mine = self.members[index::threads]
        try:
            with self.client() as http:
                while not running.stopping.is_set():
                    self.pay_once(http, rng.choice(mine), rng)
        except BaseException as exc:  # noqa: BLE001 - re-raised by Running.stop
            running.errors.append(exc)

    def acknowledged_count(self) -> int:
        with self.tally.lock:
            return len(self.tally.acknowledged)

    # -- after the faults ----------------------------------------------------------------------

    def redeliver_failed(self, rounds: int = 30) -> int:
        """Play WeChat's retries: resend every notification no attempt of which was accepted,
        until none is left. Returns how many were resent."""
        resent = 0
        with self.client() as http:
            for _ in range(rounds):
                answer = self.call(http, "POST", self.sim_url + "/wechatpay/sim/retry-failed")
                deliveries = answer.json()["deliveries"]
                self.tally.record_deliveries(deliveries)
                resent += len(deliveries)
                if all(d["accepted"] for d in deliveries):
                    return resent
                time.sleep(1.0)
        raise AssertionError("notifications were still refused after the faults were over")


def problem_code(response: httpx.Response) -> str:
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return ""
    try:
        return str(response.json().get("code", ""))
    except ValueError:
        return ""
