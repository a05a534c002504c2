"""Alipay open-platform simulator: one gateway that verifies our RSA2-signed calls,
signs its answers, sends RSA2-signed form notifications and serves statement zips.

Sign-in: `mint_auth_code` (POST /sim/auth-codes) stands in for the mini-program's
my.getAuthCode(); alipay.system.oauth.token exchanges the code once, within 5 minutes.

The public async methods are the same controls the `/sim/...` endpoints expose.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from providers.alipay_protocol import (
    NOTIFY_EXCLUDED,
    beijing_time,
    render_response,
    response_key,
    sign_params,
    verify_params,
)
from providers.amounts import fen_to_yuan
from providers.crypto import nonce_str
from providers.keys import DevKeys, load_private_key, load_public_key
from providers.sim.alipay_bill import render_statement_zip
from providers.sim.alipay_routes import build_app
from providers.sim.alipay_trades import AlipayRefund, Trade, TradeBook
from providers.sim.clock import beijing_date
from providers.sim.errors import SimError
from providers.sim.notifier import Deliver, Delivery, DeliveryPolicy, Notifier, Outgoing

BILL_URL_TTL_S = 30
AUTH_CODE_TTL_S = 300
OAUTH_TOKEN = "alipay.system.oauth.token"
_MESSAGES = {
    "10000": "Success",
    "20000": "Service Currently Unavailable",
    "40002": "Invalid Arguments",
    "40004": "Business Failed",
}


def _alipay_accepts(status: int, reply: bytes) -> bool:
    return status == 200 and reply.strip() == b"success"


@dataclass
class AuthCode:
    user_id: str | None
    open_id: str | None
    expires_at: float
    used: bool = False


class AlipaySim:
    def __init__(
        self,
        *,
        app_id: str,
        app_public_key_pem: bytes,
        alipay_private_key_pem: bytes,
        deliver: Deliver | None = None,
        clock: Callable[[], float] = time.time,
        pid: str = "2088000000000001",
        notify_refunds: bool = False,
    ) -> None:
        self.app_id, self.pid, self.clock = app_id, pid, clock
        self.notify_refunds = notify_refunds  # unconfirmed whether trade.refund notifies
        self._app_key = load_public_key(app_public_key_pem)
        self._key = load_private_key(alipay_private_key_pem)
        self.trades = TradeBook(clock)
        self.notifier = Notifier(deliver, _alipay_accepts, clock)
        self._failures: list[SimError] = []
        self._bill_urls: dict[str, tuple[str, float]] = {}
        self._followups: list[Coroutine[Any, Any, list[Delivery]]] = []
        self._auth_codes: dict[str, AuthCode] = {}
        self.app = build_app(self)

    @classmethod
    def from_keys(
        cls,
        keys: DevKeys,
        *,
        app_id: str,
        deliver: Deliver | None = None,
        clock: Callable[[], float] = time.time,
    ) -> AlipaySim:
        return cls(
            app_id=app_id,
            app_public_key_pem=keys.alipay_app.public_pem,
            alipay_private_key_pem=keys.alipay_platform.private_pem,
            deliver=deliver,
            clock=clock,
        )

    # --- gateway --------------------------------------------------------------------------
    async def gateway(self, params: dict[str, str], own_base_url: str) -> str:
        """Answer one gateway call with the JSON text Alipay would send.

        Notifications a call causes go out after the reply (`take_followups`)."""
        method = params.get("method", "")
        name = response_key(method) if method else "error_response"
        if params.get("app_id") != self.app_id:
            return render_response(
                None,
                "error_response",
                _error(SimError(40002, "isv.invalid-app-id", "无效的AppID参数")),
            )
        if params.get("sign_type") != "RSA2" or not verify_params(self._app_key, params):
            # Alipay cannot sign for a caller it could not authenticate: unsigned error.
            return render_response(
                None, "error_response", _error(SimError(40002, "isv.invalid-signature", "验签出错"))
            )
        try:
            failure = self._failures.pop(0) if self._failures else None
            if failure is not None:
                raise failure
            biz = json.loads(params.get("biz_content") or "{}")
            payload = await self._dispatch(method, biz, params, own_base_url)
        except SimError as exc:
            payload = _error(exc)
            if method == OAUTH_TOKEN:  # this one method answers its errors as error_response
                name = "error_response"
        except ValueError:
            payload = _error(SimError(40002, "isv.invalid-parameter", "biz_content is not JSON"))
        return render_response(self._key, name, payload)

    async def _dispatch(
        self, method: str, biz: dict[str, Any], params: Mapping[str, str], own_base_url: str
    ) -> dict[str, Any]:
        ok = {"code": "10000", "msg": "Success"}
        if method == OAUTH_TOKEN:
            return self._oauth_token(params)
        if method == "alipay.trade.create":
            trade = self.trades.create(biz, params.get("notify_url", ""))
            return ok | {"out_trade_no": trade.out_trade_no, "trade_no": trade.trade_no}
        if method == "alipay.trade.query":
            return ok | self.trades.query(self.trades.get(str(biz.get("out_trade_no", ""))))
        if method == "alipay.trade.refund":
            trade, refund, changed = self.trades.refund(biz)
            if changed and self.notify_refunds:
                self._followups.append(self._notify_refund(trade, refund))
            return ok | {
                "trade_no": trade.trade_no,
                "out_trade_no": trade.out_trade_no,
                "buyer_logon_id": "138******00",
                "fund_change": "Y" if changed else "N",
                "refund_fee": fen_to_yuan(trade.refunded),
                "gmt_refund_pay": beijing_time(refund.at),
            }
        if method == "alipay.trade.fastpay.refund.query":
            trade = self.trades.get(str(biz.get("out_trade_no", "")))
            found = trade.refunds.get(str(biz.get("out_request_no", "")))
            if found is None:  # Alipay answers success with no refund fields
                return ok | {"out_trade_no": trade.out_trade_no, "trade_no": trade.trade_no}
            return ok | {
                "out_trade_no": trade.out_trade_no,
                "trade_no": trade.trade_no,
                "out_request_no": found.out_request_no,
                "refund_status": "REFUND_SUCCESS",
                "total_amount": fen_to_yuan(trade.total),
                "refund_amount": fen_to_yuan(found.amount),
            }
        if method == "alipay.data.dataservice.bill.downloadurl.query":
            return ok | {"bill_download_url": self._bill_url(biz, own_base_url)}
        raise SimError(40004, "isv.invalid-method", f"unknown method {method}")

    def _oauth_token(self, params: Mapping[str, str]) -> dict[str, Any]:
        """Success comes without code/msg, as Alipay answers this method."""
        if params.get("grant_type") != "authorization_code":
            raise SimError(40002, "isv.grant-type-invalid", "不支持的grantType")
        found = self._auth_codes.get(params.get("code", ""))
        if found is None or found.used or found.expires_at <= self.clock():
            raise SimError(40002, "isv.code-invalid", "授权码code无效")
        found.used = True
        now = self.clock()
        answer: dict[str, Any] = {
            "access_token": "authusrB" + secrets.token_hex(16),
            "expires_in": 1_296_000,
            "refresh_token": "authusrB" + secrets.token_hex(16),
            "re_expires_in": 2_592_000,
            "auth_start": beijing_time(now),
        }
        if found.user_id:
            answer["user_id"] = found.user_id
        if found.open_id:
            answer["open_id"] = found.open_id
        return answer

    def take_followups(self) -> list[Coroutine[Any, Any, list[Delivery]]]:
        taken, self._followups = self._followups, []
        return taken

    def _bill_url(self, biz: dict[str, Any], own_base_url: str) -> str:
        bill_date = str(biz.get("bill_date", ""))
        if biz.get("bill_type") != "trade" or len(bill_date) != 10:
            raise SimError(40002, "isv.invalid-parameter", "bill_type=trade, bill_date=YYYY-MM-DD")
        if bill_date > beijing_date(self.clock()):
            raise SimError(40004, "isp.bill_not_exist", "账单不存在")
        token = secrets.token_urlsafe(16)
        self._bill_urls[token] = (bill_date, self.clock() + BILL_URL_TTL_S)
        return f"{own_base_url}/bill/{token}"

    def statement(self, token: str) -> bytes:
        bill_date, expires = self._bill_urls.get(token, ("", 0.0))
        if not bill_date or self.clock() > expires:
            raise SimError(404, "not_found", "the download URL is unknown or expired")
        return render_statement_zip(
            self.trades.bill_records(bill_date), self.pid, bill_date, self.clock()
        )

    # --- notifications --------------------------------------------------------------------
    def _notification(
        self,
        trade: Trade,
        status: str,
        policy: DeliveryPolicy,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        total = trade.total if policy.amount_override is None else policy.amount_override
        params = {
            "notify_type": "trade_status_sync",
            "notify_id": nonce_str(34).lower(),
            "app_id": self.app_id,
            "auth_app_id": self.app_id,
            "charset": "utf-8",
            "version": "1.0",
            "sign_type": "RSA2",
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            trade.buyer_field: trade.buyer,
            "seller_id": self.pid,
            "trade_status": status,
            "subject": trade.subject,
            "total_amount": fen_to_yuan(total),
            "receipt_amount": fen_to_yuan(total),
            "buyer_pay_amount": fen_to_yuan(total),
            "invoice_amount": fen_to_yuan(total),
            "point_amount": "0.00",
            "gmt_create": beijing_time(trade.created_at),
            "fund_bill_list": json.dumps(
                [{"amount": fen_to_yuan(total), "fundChannel": "ALIPAYACCOUNT"}]
            ),
        }
        if trade.paid_at is not None:
            params["gmt_payment"] = beijing_time(trade.paid_at)
        if trade.closed_at is not None and status in ("TRADE_FINISHED", "TRADE_CLOSED"):
            params["gmt_close"] = beijing_time(trade.closed_at)
        return params | dict(extra or {})

    def _outgoing(
        self,
        trade: Trade,
        status: str,
        overrides: Mapping[str, Any],
        extra: Mapping[str, str] | None = None,
    ) -> Outgoing:
        policy = self.notifier.policy.merged(overrides)
        params = self._notification(trade, status, policy, extra)

        def render(policy: DeliveryPolicy) -> tuple[dict[str, str], bytes]:
            now = self.clock() - (600 if policy.old_timestamp else 0)
            signed = params | {"notify_time": beijing_time(now)}
            signed["sign"] = sign_params(self._key, signed, NOTIFY_EXCLUDED)
            if policy.bad_signature:
                signed["sign"] = sign_params(self._key, {"forged": "yes"})
            headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
            return headers, urlencode(signed).encode()

        return Outgoing(trade.notify_url, status, params["notify_id"], render, policy)

    async def _notify_refund(self, trade: Trade, refund: AlipayRefund) -> list[Delivery]:
        extra = {
            "refund_fee": fen_to_yuan(trade.refunded),
            "out_biz_no": refund.out_request_no,
            "gmt_refund": beijing_time(refund.at),
        }
        return await self.notifier.dispatch([self._outgoing(trade, trade.status, {}, extra)])

    # --- controls (also served under /sim/...) --------------------------------------------
    def mint_auth_code(
        self, user_id: str | None = None, open_id: str | None = None
    ) -> dict[str, str | None]:
        """What my.getAuthCode() gives the mini-program; a new 2088... user without ids."""
        if not user_id and not open_id:
            user_id = "2088" + "".join(secrets.choice("0123456789") for _ in range(12))
        code = secrets.token_hex(16)
        self._auth_codes[code] = AuthCode(user_id, open_id, self.clock() + AUTH_CODE_TTL_S)
        return {"code": code, "user_id": user_id, "open_id": open_id}

    async def pay(
        self, out_trade_no: str, finish: bool = False, **overrides: Any
    ) -> list[Delivery]:
        """The buyer paid: TRADE_SUCCESS; with finish=True also TRADE_FINISHED (both arrive)."""
        trade = self.trades.pay(out_trade_no)
        items = [self._outgoing(trade, "TRADE_SUCCESS", overrides)]
        if finish:
            self.trades.finish(out_trade_no)
            items.append(self._outgoing(trade, "TRADE_FINISHED", overrides))
        return await self.notifier.dispatch(items)

    async def finish(self, out_trade_no: str, **overrides: Any) -> list[Delivery]:
        trade = self.trades.finish(out_trade_no)
        return await self.notifier.dispatch([self._outgoing(trade, "TRADE_FINISHED", overrides)])

    def configure_delivery(self, **options: Any) -> DeliveryPolicy:
        return self.notifier.configure(**options)

    async def release(self, shuffle: bool = False, seed: int | None = None) -> list[Delivery]:
        return await self.notifier.release(shuffle, seed)

    async def retry_failed(self) -> list[Delivery]:
        return await self.notifier.retry_failed()

    def fail_next(
        self,
        code: int = 20000,
        sub_code: str = "isp.unknow-error",
        message: str = "服务暂不可用",
        times: int = 1,
    ) -> None:
        self._failures.extend(SimError(code, sub_code, message) for _ in range(times))

    @property
    def deliveries(self) -> list[Delivery]:
        return self.notifier.deliveries


def _error(exc: SimError) -> dict[str, Any]:
    code = str(exc.status)
    return {
        "code": code,
        "msg": _MESSAGES.get(code, "Business Failed"),
        "sub_code": exc.code,
        "sub_msg": exc.message,
    }
