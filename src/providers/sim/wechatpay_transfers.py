"""WeChat Pay simulator state for merchant transfer bills (payouts to a user's balance).

User-confirmation mode: a new bill waits in WAIT_USER_CONFIRM until the user
accepts it in the mini-program; it can be cancelled only before that.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from providers.sim.clock import rfc3339
from providers.sim.errors import SimError

FINAL_STATES = {"SUCCESS", "FAIL", "CANCELLED"}
CANCELLABLE = {"ACCEPTED", "PROCESSING", "WAIT_USER_CONFIRM"}
REAL_NAME_FROM_FEN = 200_000  # from 2,000 yuan the payee's real name is required
_OUT_BILL_NO = re.compile(r"^[A-Za-z0-9]{1,32}$")


@dataclass
class Transfer:
    out_bill_no: str
    transfer_bill_no: str
    appid: str
    openid: str
    amount: int
    remark: str
    scene_id: str
    notify_url: str
    created_at: float
    updated_at: float
    state: str = "WAIT_USER_CONFIRM"
    package_info: str = ""
    fail_reason: str = ""
    user_name: str | None = None


class TransferBook:
    def __init__(self, mchid: str, appid: str, clock: Callable[[], float]) -> None:
        self.mchid, self.appid, self.clock = mchid, appid, clock
        self.transfers: dict[str, Transfer] = {}

    def create(self, body: dict[str, Any], user_name: str | None) -> Transfer:
        try:
            out_bill_no, openid = str(body["out_bill_no"]), str(body["openid"])
            amount, remark = body["transfer_amount"], str(body["transfer_remark"])
            scene_id = str(body["transfer_scene_id"])
        except KeyError as exc:
            raise SimError(400, "PARAM_ERROR", f"missing {exc}") from None
        if body.get("appid") != self.appid:
            raise SimError(400, "APPID_MCHID_NOT_MATCH", "appid does not belong to the merchant")
        if not _OUT_BILL_NO.match(out_bill_no):
            raise SimError(400, "PARAM_ERROR", "out_bill_no: up to 32 letters and digits")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise SimError(400, "PARAM_ERROR", "transfer_amount must be a positive integer")
        if len(remark) > 32:
            raise SimError(400, "PARAM_ERROR", "transfer_remark: at most 32 characters")
        if scene_id == "1005":
            kinds = {i.get("info_type") for i in body.get("transfer_scene_report_infos", [])}
            if not {"岗位类型", "报酬说明"} <= kinds:
                raise SimError(400, "PARAM_ERROR", "scene 1005 needs 岗位类型 and 报酬说明")
        if amount >= REAL_NAME_FROM_FEN and not user_name:
            raise SimError(400, "PARAM_ERROR", "user_name is required from 2,000 yuan")
        existing = self.transfers.get(out_bill_no)
        if existing is not None:
            if (existing.openid, existing.amount) != (openid, amount):
                raise SimError(400, "INVALID_REQUEST", "out_bill_no reused with other values")
            return existing
        now = self.clock()
        transfer = Transfer(
            out_bill_no,
            "1330" + secrets.token_hex(14),
            self.appid,
            openid,
            amount,
            remark,
            scene_id,
            str(body.get("notify_url", "")),
            now,
            now,
            package_info="AB" + secrets.token_urlsafe(48),
            user_name=user_name,
        )
        self.transfers[out_bill_no] = transfer
        return transfer

    def get(self, out_bill_no: str) -> Transfer:
        if out_bill_no not in self.transfers:
            raise SimError(404, "NOT_FOUND", "transfer bill does not exist")
        return self.transfers[out_bill_no]

    def cancel(self, out_bill_no: str) -> Transfer:
        transfer = self.get(out_bill_no)
        if transfer.state not in CANCELLABLE:
            raise SimError(400, "INVALID_REQUEST", f"a {transfer.state} bill cannot be cancelled")
        self._move(transfer, "CANCELLED")
        return transfer

    def confirm(self, out_bill_no: str) -> Transfer:
        """The user accepted in the mini-program: money is on its way."""
        transfer = self.get(out_bill_no)
        if transfer.state != "WAIT_USER_CONFIRM":
            raise SimError(400, "INVALID_REQUEST", f"bill is {transfer.state}")
        self._move(transfer, "TRANSFERING")
        return transfer

    def finish(self, out_bill_no: str, success: bool, fail_reason: str = "") -> Transfer:
        transfer = self.get(out_bill_no)
        if transfer.state in FINAL_STATES:
            raise SimError(400, "INVALID_REQUEST", f"bill is already {transfer.state}")
        if success and transfer.state == "WAIT_USER_CONFIRM":
            transfer.state = "TRANSFERING"
        transfer.fail_reason = "" if success else (fail_reason or "OVERDUE_CLOSE")
        self._move(transfer, "SUCCESS" if success else "FAIL")
        return transfer

    def _move(self, transfer: Transfer, state: str) -> None:
        transfer.state, transfer.updated_at = state, self.clock()

    def created(self, transfer: Transfer) -> dict[str, Any]:
        data = {
            "out_bill_no": transfer.out_bill_no,
            "transfer_bill_no": transfer.transfer_bill_no,
            "create_time": rfc3339(transfer.created_at),
            "state": transfer.state,
        }
        if transfer.state == "WAIT_USER_CONFIRM":
            data["package_info"] = transfer.package_info
        return data

    def resource(self, transfer: Transfer) -> dict[str, Any]:
        data = {
            "mch_id": self.mchid,
            "out_bill_no": transfer.out_bill_no,
            "transfer_bill_no": transfer.transfer_bill_no,
            "appid": transfer.appid,
            "state": transfer.state,
            "transfer_amount": transfer.amount,
            "transfer_remark": transfer.remark,
            "openid": transfer.openid,
            "create_time": rfc3339(transfer.created_at),
            "update_time": rfc3339(transfer.updated_at),
        }
        if transfer.fail_reason:
            data["fail_reason"] = transfer.fail_reason
        return data
