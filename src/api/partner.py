"""The station partner API (P1, P2, P6, P7, P9) under /v1/partner.

A partner signs in with the account the operator issued and gets a token scoped to its
stations ("station:<id>" each); every station path checks that scope (`StationPartner`).
Figures, order lists, habits, withdrawals and the live feed are routers of their own.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError
from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api import partner_shifts
from api.admin_log import AdminLog, client_ip
from api.auth import CurrentPrincipal, RefreshTokensDep, SettingsDep, forbidden, issue_session
from api.errors import ApiError
from api.instants import Instant
from api.permissions import StationPartner, partner_stations
from ledger.domain.fuel_order import FuelOrder
from ledger.errors import Forbidden, NotFound
from ledger.ids import from_key
from ledger.services.partner_accounts import PartnerAccountService
from projections import station_queries

router = APIRouter(prefix="/v1/partner", tags=["partner"])
StationPath = "/stations/{station_id}"
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=64,
        description="Client-chosen key: a retry with the same key is the same request",
    ),
]


class SignInRequest(BaseModel):
    account: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class RefundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount_fen: int = Field(gt=0, le=10_000_000)
    reason: str = Field(min_length=1, max_length=200)


class PriceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    price_fen_per_litre: int = Field(ge=1, le=100_000)


class PromotionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=80)
    description: str = Field(default="", max_length=500)
    discount_fen: int = Field(gt=0, le=100_000)
    min_amount_fen: int = Field(default=0, ge=0, le=10_000_000)
    total_quantity: int = Field(default=1_000, ge=1, le=1_000_000)
    starts_at: Instant
    ends_at: Instant

    @model_validator(mode="after")
    def _window(self) -> PromotionRequest:
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise ValueError("starts_at and ends_at need a time zone")
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if self.min_amount_fen and self.discount_fen >= self.min_amount_fen:
            raise ValueError("the discount must be less than the minimum amount")
        return self


def _core(request: Request) -> Any:
    return request.app.state.core


def partner_accounts(request: Request) -> PartnerAccountService:
    return PartnerAccountService(_core(request).read_pool)


Accounts = Annotated[PartnerAccountService, Depends(partner_accounts)]


def _who(partner: Any) -> str:
    return f"partner:{partner.subject}"


# -- sign-in and profile (P1, P2) ------------------------------------------------------------


@router.post("/auth/sign-in")
def sign_in(
    body: SignInRequest,
    request: Request,
    accounts: Accounts,
    settings: SettingsDep,
    refresh: RefreshTokensDep,
) -> dict[str, Any]:
    """Account and password -> tokens scoped to the account's stations. Five wrong passwords
    in a row lock the account for 15 minutes."""
    result = accounts.sign_in(body.account, body.password)
    AdminLog(_core(request).read_pool).record(
        action="partner.sign_in",
        resource="partner_accounts",
        outcome=result.outcome,
        target=body.account,
        ip=client_ip(request),
    )
    if result.outcome == "locked":
        raise ApiError(
            429,
            "account_locked",
            "Too many wrong passwords; try again later",
            locked_until=result.locked_until.isoformat() if result.locked_until else "",
        )
    if not result.ok or result.account is None:
        raise ApiError(401, "invalid_credentials", "Wrong account or password")
    account = result.account
    scope = [f"station:{s}" for s in account["station_ids"]]
    tokens = issue_session(settings, refresh, account["account_id"], "partner", scope)
    return {**tokens, "account": _account_view(account)}


def _account_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "account_id": str(row["account_id"]),
        "account": row["account"],
        "name": row["name"],
        "station_ids": [str(s) for s in row["station_ids"]],
    }


@router.get("/me")
def me(principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
    """The signed-in account and the stations it may act for."""
    if principal.role != "partner":
        raise forbidden()
    with _core(request).read_pool.connection() as conn:
        rows = conn.execute(
            "SELECT station_id, code, name FROM read.stations WHERE station_id = ANY(%s) "
            "ORDER BY name",
            (partner_stations(principal),),
        ).fetchall()
    return {
        "account_id": principal.subject,
        "stations": [{"station_id": str(s), "code": c, "name": n} for s, c, n in rows],
    }


@router.get(StationPath)
def profile(station_id: UUID, partner: StationPartner, request: Request) -> dict[str, Any]:
    """Name, rating, contact details, grades and prices, from the read model (P2)."""
    with _core(request).read_pool.connection() as conn:
        row = station_queries.station(conn, station_id)
        income = conn.execute(
            "SELECT account, balance FROM read.account_balances WHERE owner = %s AND asset = 'CNY'",
            (f"station:{station_id}",),
        ).fetchall()
    if row is None:
        raise ApiError(404, "not_found", "No such station")
    balances = {account.rsplit(":", 1)[-1]: int(balance) for account, balance in income}
    return {
        **row,
        "rating": f"{row['rating'] // 10}.{row['rating'] % 10}",
        "income_unsettled_fen": balances.get("income", 0),
        "available_fen": balances.get("available", 0),
    }


# -- orders (P6) -----------------------------------------------------------------------------


@router.post(StationPath + "/orders/{order_id}/confirm")
def confirm_order(
    station_id: UUID, order_id: UUID, partner: StationPartner, request: Request
) -> dict[str, Any]:
    """The station confirms the fuel was dispensed."""
    core = _core(request)
    _check_order_station(core, order_id, station_id)
    return core.orders.confirm(order_id=order_id, station_id=station_id)


def _check_order_station(core: Any, order_id: UUID, station_id: UUID) -> None:
    # orders.confirm keys its command by the order alone, so a second station asking would
    # be answered from the first confirmation's receipt: refuse it before it gets there.
    try:
        order = core.app.repository.get(order_id)
    except AggregateNotFoundError:
        raise NotFound(f"no order {order_id}") from None
    if not isinstance(order, FuelOrder):
        raise NotFound(f"no order {order_id}")
    if order.station_id != station_id:
        raise Forbidden("not this station's order")


@router.post(StationPath + "/orders/{order_id}/refunds", status_code=201)
def refund_order(
    station_id: UUID,
    order_id: UUID,
    body: RefundRequest,
    partner: StationPartner,
    request: Request,
    key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Refund all or part of an order (wrong nozzle, fuel not dispensed). With the same
    Idempotency-Key a retry is the same refund."""
    seed = key or uuid4().hex
    out_refund_no = "P" + from_key("partner-refund", f"{station_id}:{order_id}:{seed}").hex
    return _core(request).orders.refund(
        order_id=order_id,
        out_refund_no=out_refund_no,
        amount_fen=body.amount_fen,
        reason=body.reason,
        requested_by=_who(partner),
        station_id=station_id,
    )


# -- prices and promotions (P7) --------------------------------------------------------------


@router.put(StationPath + "/prices/{grade}")
def set_price(
    station_id: UUID,
    grade: str,
    body: PriceRequest,
    partner: StationPartner,
    request: Request,
    key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Set a grade's price in fen per litre (the grade's '#' is sent as %23)."""
    return _core(request).catalog.change_price(
        station_id, grade, body.price_fen_per_litre, _who(partner), key=key or uuid4().hex
    )


@router.get(StationPath + "/promotions")
def promotions(station_id: UUID, partner: StationPartner, request: Request) -> dict[str, Any]:
    with _core(request).read_pool.connection() as conn:
        cur = conn.execute(
            "SELECT promotion_id, title, description, discount_fen, min_amount_fen, starts_at, "
            "ends_at, status, coupon_template_id, created_at FROM office.station_promotions "
            "WHERE station_id = %s "
            "ORDER BY starts_at DESC LIMIT 200",
            (station_id,),
        )
        names = [c.name for c in cur.description or ()]
        return {"items": [dict(zip(names, row, strict=True)) for row in cur.fetchall()]}


@router.post(StationPath + "/promotions", status_code=201)
def add_promotion(
    station_id: UUID,
    body: PromotionRequest,
    partner: StationPartner,
    request: Request,
    key: IdempotencyKey = None,
) -> dict[str, Any]:
    """A station-funded discount (for example 10 yuan off from 200 yuan) for a period: a
    coupon template that the station funds and that is valid at this station only."""
    core = _core(request)
    promotion_id = from_key("station-promotion", f"{station_id}:{key or uuid4().hex}")
    template_id = None
    coupons = getattr(core, "coupons", None)
    if coupons is not None:
        template = coupons.create_template(
            key=f"station-promotion:{promotion_id}",
            title=body.title,
            kind="threshold" if body.min_amount_fen else "fixed",
            total_quantity=body.total_quantity,
            amount_off_fen=body.discount_fen,
            min_amount_fen=body.min_amount_fen,
            station_ids=[station_id],
            funder_station_id=station_id,
            valid_from=body.starts_at,
            valid_until=body.ends_at,
            per_member_limit=1,
        )
        template_id = UUID(str(template["template_id"]))
    with core.read_pool.connection() as conn:
        conn.execute(
            "INSERT INTO office.station_promotions (promotion_id, station_id, title, "
            "description, discount_fen, min_amount_fen, starts_at, ends_at, created_by, "
            "coupon_template_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (promotion_id) DO NOTHING",
            (
                promotion_id,
                station_id,
                body.title,
                body.description,
                body.discount_fen,
                body.min_amount_fen,
                body.starts_at,
                body.ends_at,
                _who(partner),
                template_id,
            ),
        )
    return {
        "promotion_id": str(promotion_id),
        "status": "active",
        "coupon_template_id": str(template_id) if template_id else None,
        **body.model_dump(),
    }


@router.delete(StationPath + "/promotions/{promotion_id}", status_code=200)
def withdraw_promotion(
    station_id: UUID, promotion_id: UUID, partner: StationPartner, request: Request
) -> dict[str, Any]:
    with _core(request).read_pool.connection() as conn:
        row = conn.execute(
            "UPDATE office.station_promotions SET status = 'withdrawn' "
            "WHERE promotion_id = %s AND station_id = %s RETURNING promotion_id",
            (promotion_id, station_id),
        ).fetchone()
    if row is None:
        raise ApiError(404, "not_found", "No such promotion")
    return {"promotion_id": str(promotion_id), "status": "withdrawn"}


router.include_router(partner_shifts.router)
