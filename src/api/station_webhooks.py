"""A station's webhook (M6, P-features): where its paid orders and refunds are POSTed.

The partner sets it under /v1/partner/stations/{id}/webhook, an admin under
/v1/admin/stations/{id}/webhook (stations:view / stations:change, logged). Setting it makes
a new signing secret, shown in that answer only; it is kept sealed with SECRETS_KEY. The
deliveries themselves are workers.webhooks; each attempt is listed at .../webhook/deliveries.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.admin_log import ChangeLog
from api.errors import ApiError
from api.permissions import StationPartner, require_permission
from infra.secrets import SecretBox, SecretsUnreadable, mask
from ledger.domain.station import WEBHOOK_URL_MAX, validate_webhook_url
from ledger.services.stations import StationWebhookService
from workers import webhook_wire as wire
from workers import webhooks

SIGNATURE_DOC = """
Each delivery is a POST of JSON `{"id", "type", "created_at", "station_id", "data"}` with
`type` one of `order.paid`, `order.refunded`, `webhook.test`, and the headers

- `X-Ledger-Event-Id`: the event's id, the same on every retry: ignore one you have seen;
- `X-Ledger-Timestamp`: unix seconds when this attempt was signed;
- `X-Ledger-Signature`: `sha256=` + hex HMAC-SHA256 of `"<timestamp>.<raw body>"` keyed
  by the signing secret.

Recompute the HMAC over the raw body bytes, compare in constant time, refuse timestamps
more than five minutes off. Answer 2xx within 5 seconds: anything else, or no answer, is
retried with exponential backoff (at most 10 attempts, over 17 to 34 minutes).
"""

SET_DOC = (
    "Point the station's webhook at `url` (http or https; in production not a loopback or "
    "private address) with a new signing secret, answered this once.\n" + SIGNATURE_DOC
)
TEST_DOC = "Send one signed `webhook.test` delivery now and answer how it went (not retried).\n"
TEST_DOC += SIGNATURE_DOC

partner_router = APIRouter(prefix="/v1/partner/stations", tags=["partner"])
admin_router = APIRouter(prefix="/v1/admin/stations", tags=["admin"])
Limit = Annotated[int, Query(ge=1, le=200)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=64,
        description="A retry with the same key is the same request (and shows the same secret)",
    ),
]


class WebhookRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(
        min_length=1, max_length=WEBHOOK_URL_MAX, examples=["https://pos.example/hook"]
    )


def _core(request: Request) -> Any:
    return request.app.state.core


def _box(request: Request) -> SecretBox:
    return SecretBox.from_settings(_core(request).settings)


# -- what both audiences do --------------------------------------------------------------------


def configure(
    request: Request, station_id: UUID, url: str, by: str, key: str | None
) -> dict[str, Any]:
    core = _core(request)
    validate_webhook_url(url)  # the domain's rule first: invalid_webhook_url
    refusal = wire.url_refusal(url, allow_private=wire.private_allowed(core.settings))
    if refusal:
        raise ApiError(422, "webhook_url_not_allowed", refusal, field="url")
    box = _box(request)
    sealed = wire.seal_secret(box, wire.new_secret())
    done = StationWebhookService(core.runner).configure(
        station_id, url=url, secret_sealed=sealed, by=by, key=key
    )
    # A retry with the same key answers from the first receipt: the first secret, again.
    return {
        "station_id": done["station_id"],
        "url": done["url"],
        "secret": wire.open_secret(box, done["secret_sealed"]),
        "note": "The signing secret is shown this once: store it now.",
    }


def remove(request: Request, station_id: UUID, by: str, key: str | None) -> bool:
    return bool(
        StationWebhookService(_core(request).runner).remove(station_id, by=by, key=key)["removed"]
    )


def current(request: Request, station_id: UUID) -> dict[str, Any]:
    """The webhook as the read model has it; the secret only masked."""
    with _core(request).read_pool.connection() as conn:
        row = conn.execute(
            "SELECT url, secret_sealed, configured_by, configured_at "
            "FROM read.station_webhooks WHERE station_id = %s",
            (station_id,),
        ).fetchone()
    if row is None:
        raise ApiError(404, "webhook_not_configured", "This station has no webhook")
    url, sealed, configured_by, configured_at = row
    try:
        masked = mask(wire.open_secret(_box(request), sealed))
    except SecretsUnreadable:
        masked = None  # SECRETS_KEY changed: set the webhook again
    return {
        "station_id": str(station_id),
        "url": url,
        "secret_masked": masked,
        "configured_by": configured_by,
        "configured_at": configured_at,
    }


def send_test(request: Request, station_id: UUID) -> dict[str, Any]:
    core = _core(request)
    hook = StationWebhookService(core.runner).get(station_id)
    if not hook["url"]:
        raise ApiError(409, "webhook_not_configured", "This station has no webhook")
    return webhooks.send_test(
        core.read_pool, core.settings, station_id, hook["url"], hook["secret_sealed"]
    )


def deliveries(request: Request, station_id: UUID, limit: int) -> dict[str, Any]:
    return {"items": webhooks.deliveries(_core(request).read_pool, station_id, limit)}


# -- the partner -------------------------------------------------------------------------------


@partner_router.get("/{station_id}/webhook")
def partner_webhook(station_id: UUID, partner: StationPartner, request: Request) -> dict[str, Any]:
    return current(request, station_id)


@partner_router.put("/{station_id}/webhook", description=SET_DOC)
def partner_set_webhook(
    station_id: UUID,
    body: WebhookRequest,
    partner: StationPartner,
    request: Request,
    key: IdempotencyKey = None,
) -> dict[str, Any]:
    return configure(request, station_id, body.url, f"partner:{partner.subject}", key)


@partner_router.delete("/{station_id}/webhook", status_code=204)
def partner_remove_webhook(
    station_id: UUID, partner: StationPartner, request: Request, key: IdempotencyKey = None
) -> Response:
    if not remove(request, station_id, f"partner:{partner.subject}", key):
        raise ApiError(404, "webhook_not_configured", "This station has no webhook")
    return Response(status_code=204)


@partner_router.post("/{station_id}/webhook/test", description=TEST_DOC)
def partner_test_webhook(
    station_id: UUID, partner: StationPartner, request: Request
) -> dict[str, Any]:
    return send_test(request, station_id)


@partner_router.get("/{station_id}/webhook/deliveries")
def partner_deliveries(
    station_id: UUID, partner: StationPartner, request: Request, limit: Limit = 50
) -> dict[str, Any]:
    """The latest delivery attempts, newest first."""
    return deliveries(request, station_id, limit)


# -- the back office ---------------------------------------------------------------------------


@admin_router.get("/{station_id}/webhook")
def admin_webhook(
    station_id: UUID, request: Request, _: Any = Depends(require_permission("stations", "view"))
) -> dict[str, Any]:
    return current(request, station_id)


@admin_router.put("/{station_id}/webhook", description=SET_DOC)
def admin_set_webhook(
    station_id: UUID,
    body: WebhookRequest,
    request: Request,
    log: ChangeLog,
    key: IdempotencyKey = None,
    _: Any = Depends(require_permission("stations", "change")),
) -> dict[str, Any]:
    done = configure(request, station_id, body.url, log.actor, key)
    log.change("stations", "webhook_set", target=str(station_id), after={"url": done["url"]})
    return done


@admin_router.delete("/{station_id}/webhook", status_code=204)
def admin_remove_webhook(
    station_id: UUID,
    request: Request,
    log: ChangeLog,
    key: IdempotencyKey = None,
    _: Any = Depends(require_permission("stations", "change")),
) -> Response:
    if not remove(request, station_id, log.actor, key):
        raise ApiError(404, "webhook_not_configured", "This station has no webhook")
    log.change("stations", "webhook_remove", target=str(station_id))
    return Response(status_code=204)


@admin_router.post("/{station_id}/webhook/test", description=TEST_DOC)
def admin_test_webhook(
    station_id: UUID,
    request: Request,
    log: ChangeLog,
    _: Any = Depends(require_permission("stations", "change")),
) -> dict[str, Any]:
    result = send_test(request, station_id)
    log.change("stations", "webhook_test", target=str(station_id), detail=result)
    return result


@admin_router.get("/{station_id}/webhook/deliveries")
def admin_deliveries(
    station_id: UUID,
    request: Request,
    limit: Limit = 50,
    _: Any = Depends(require_permission("stations", "view")),
) -> dict[str, Any]:
    return deliveries(request, station_id, limit)
