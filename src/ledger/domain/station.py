"""A fuel station: its profile, the grades it sells on which nozzles, and their prices.

Coordinates are integer micro-degrees (GCJ-02, what the map apps of the mini-program expect),
the rating is in tenths of a star, prices are in fen per litre and the platform's settlement
rate in basis points: only integers enter an event.

Rules are checked in the public methods, before any event exists; the event methods only
record, so tightening a rule later never stops an old log from replaying.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain import copying
from ledger.errors import InvalidPrice, InvalidStation, UnknownGrade, UnknownNozzle
from ledger.ids import from_key

GRADES = ("89#", "92#", "95#", "98#", "101#", "E92#", "E95#", "0#", "-10#", "-20#", "-35#")
OPEN, CLOSED = "open", "closed"
MIN_PRICE, MAX_PRICE = 1, 100_000  # fen per litre
MAX_RATE_BPS = 3_000
MAX_RATING_TENTHS = 50
MAX_NOZZLE = 999
LAT_E6_LIMIT, LNG_E6_LIMIT = 90_000_000, 180_000_000
TEXT_FIELDS = ("name", "address", "phone")
INT_FIELDS = ("lat_e6", "lng_e6", "rating", "settlement_rate_bps")
EDITABLE = (*TEXT_FIELDS, *INT_FIELDS, "status")
WEBHOOK_URL_MAX = 2048
_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f]")


class InvalidWebhookUrl(InvalidStation):
    code = "invalid_webhook_url"


def _within(field: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidStation(f"{field} must be an integer in {low}..{high}", field=field)
    return value


def validate_profile(fields: dict[str, Any]) -> dict[str, Any]:
    """Check the profile fields given (any subset of EDITABLE); return them normalised."""
    unknown = sorted(set(fields) - set(EDITABLE))
    if unknown:
        raise InvalidStation(f"not a station field: {', '.join(unknown)}", field=unknown[0])
    out: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        if name in fields:
            value = fields[name]
            if not isinstance(value, str) or (name == "name" and not value.strip()):
                raise InvalidStation(f"{name} must be text", field=name)
            out[name] = value.strip()
    limits = {
        "lat_e6": (-LAT_E6_LIMIT, LAT_E6_LIMIT),
        "lng_e6": (-LNG_E6_LIMIT, LNG_E6_LIMIT),
        "rating": (0, MAX_RATING_TENTHS),
        "settlement_rate_bps": (0, MAX_RATE_BPS),
    }
    for name, (low, high) in limits.items():
        if name in fields:
            out[name] = _within(name, fields[name], low, high)
    if "status" in fields:
        if fields["status"] not in (OPEN, CLOSED):
            raise InvalidStation("status must be open or closed", field="status")
        out["status"] = fields["status"]
    return out


def validate_webhook_url(url: object) -> str:
    """An absolute http(s) URL with a host and no credentials in it. Where it may point
    (no private ranges in production) needs DNS, so the API checks that, not the domain."""
    if not isinstance(url, str) or not url or len(url) > WEBHOOK_URL_MAX or _URL_UNSAFE.search(url):
        raise InvalidWebhookUrl(f"a webhook URL is 1 to {WEBHOOK_URL_MAX} characters", field="url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise InvalidWebhookUrl("the webhook URL does not parse", field="url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidWebhookUrl("a webhook URL is http:// or https:// with a host", field="url")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhookUrl("a webhook URL must not carry credentials", field="url")
    return url


def validate_price(price: object) -> int:
    if isinstance(price, bool) or not isinstance(price, int) or not MIN_PRICE <= price <= MAX_PRICE:
        raise InvalidPrice(
            f"a price must be an integer in {MIN_PRICE}..{MAX_PRICE} fen per litre",
            price_fen_per_litre=str(price),
        )
    return price


class Station(Aggregate):
    # Stations registered before webhooks existed replay without these (class defaults).
    webhook_url: str | None = None
    # The signing secret sealed with SECRETS_KEY (infra.secrets): never plain in an event.
    webhook_secret_sealed: str | None = None

    @staticmethod
    def create_id(code: str) -> UUID:
        return from_key("station", code)

    @classmethod
    def register(
        cls,
        *,
        code: str,
        name: str,
        address: str,
        phone: str,
        lat_e6: int,
        lng_e6: int,
        settlement_rate_bps: int,
        rating: int = 0,
    ) -> Station:
        if not isinstance(code, str) or not code.strip() or code != code.strip():
            raise InvalidStation("a station code must be non-empty text", field="code")
        profile = validate_profile(
            {
                "name": name,
                "address": address,
                "phone": phone,
                "lat_e6": lat_e6,
                "lng_e6": lng_e6,
                "rating": rating,
                "settlement_rate_bps": settlement_rate_bps,
            }
        )
        return cls(code=code, **profile)

    @event("Registered")
    def __init__(
        self,
        code: str,
        name: str,
        address: str,
        phone: str,
        lat_e6: int,
        lng_e6: int,
        rating: int,
        settlement_rate_bps: int,
    ) -> None:
        self.code = code
        self.name = name
        self.address = address
        self.phone = phone
        self.lat_e6 = lat_e6
        self.lng_e6 = lng_e6
        self.rating = rating
        self.settlement_rate_bps = settlement_rate_bps
        self.status = OPEN
        # grade -> {"price_fen_per_litre": int | None, "nozzles": [int, ...]}
        self.grades: dict[str, dict[str, Any]] = {}

    def __deepcopy__(self, memo: dict[int, Any]) -> Station:
        # The repository copies cached aggregates for every command; keep that cheap.
        clone = copying.clone(self)
        clone.grades = {g: {**v, "nozzles": list(v["nozzles"])} for g, v in self.grades.items()}
        return clone

    # -- what the fuel orders ask ---------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.status == OPEN

    def price_of(self, grade: str) -> int:
        price = self._grade(grade)["price_fen_per_litre"]
        if price is None:
            raise UnknownGrade(f"{grade} has no price at this station yet", grade=grade)
        return int(price)

    def check_nozzle(self, grade: str, nozzle: int) -> None:
        if nozzle not in self._grade(grade)["nozzles"]:
            raise UnknownNozzle(f"nozzle {nozzle} does not dispense {grade}", nozzle=nozzle)

    def _grade(self, grade: str) -> dict[str, Any]:
        try:
            return self.grades[grade]
        except (KeyError, TypeError):
            raise UnknownGrade(f"this station does not sell {grade}", grade=str(grade)) from None

    # -- commands -------------------------------------------------------------------------

    def edit(self, **fields: Any) -> dict[str, Any]:
        """Change profile fields; only those that differ are recorded. Returns the changes."""
        changes = {k: v for k, v in validate_profile(fields).items() if getattr(self, k) != v}
        if changes:
            self._profile_edited(changes=changes)
        return changes

    def configure_grade(self, grade: str, nozzles: list[int]) -> bool:
        """Say which nozzles dispense `grade`; False when that is already so."""
        if grade not in GRADES:
            raise UnknownGrade(f"{grade} is not a fuel grade", grade=str(grade))
        if not isinstance(nozzles, (list, tuple)) or not nozzles:
            raise InvalidStation("a grade needs at least one nozzle", field="nozzles")
        for n in nozzles:
            _within("nozzles", n, 1, MAX_NOZZLE)
        wanted = sorted(set(nozzles))
        if len(wanted) != len(nozzles):
            raise InvalidStation("a nozzle is listed twice", field="nozzles")
        for other, config in self.grades.items():
            taken = set(wanted) & set(config["nozzles"])
            if other != grade and taken:
                raise InvalidStation(
                    f"nozzle {min(taken)} already dispenses {other}", field="nozzles"
                )
        if grade in self.grades and self.grades[grade]["nozzles"] == wanted:
            return False
        self._grade_configured(grade=grade, nozzles=wanted)
        return True

    def change_price(self, grade: str, price_fen_per_litre: int, changed_by: str) -> bool:
        """Set a grade's price; False (and no event) when it already is that price."""
        price = validate_price(price_fen_per_litre)
        previous = self._grade(grade)["price_fen_per_litre"]
        if previous == price:
            return False
        self._price_changed(
            grade=grade,
            price_fen_per_litre=price,
            previous_fen_per_litre=previous,
            changed_by=changed_by,
        )
        return True

    def configure_webhook(self, url: str, secret_sealed: str, configured_by: str) -> None:
        """Point the station's webhook at `url` with a new signing secret (every call
        rotates it: the caller shows the secret once, and only then)."""
        url = validate_webhook_url(url)
        if not isinstance(secret_sealed, str) or not secret_sealed:
            raise InvalidStation("a webhook needs its sealed signing secret", field="secret")
        self._webhook_configured(url=url, secret_sealed=secret_sealed, configured_by=configured_by)

    def remove_webhook(self, removed_by: str) -> bool:
        """Stop webhook deliveries; False when there is no webhook."""
        if self.webhook_url is None:
            return False
        self._webhook_removed(removed_by=removed_by)
        return True

    # -- events ---------------------------------------------------------------------------

    @event("ProfileEdited")
    def _profile_edited(self, changes: dict[str, Any]) -> None:
        for name, value in changes.items():
            setattr(self, name, value)

    @event("GradeConfigured")
    def _grade_configured(self, grade: str, nozzles: list[int]) -> None:
        slot = self.grades.setdefault(grade, {"price_fen_per_litre": None, "nozzles": []})
        slot["nozzles"] = list(nozzles)

    @event("PriceChanged")
    def _price_changed(
        self,
        grade: str,
        price_fen_per_litre: int,
        previous_fen_per_litre: int | None,
        changed_by: str,
    ) -> None:
        self.grades[grade]["price_fen_per_litre"] = price_fen_per_litre

    @event("WebhookConfigured")
    def _webhook_configured(self, url: str, secret_sealed: str, configured_by: str) -> None:
        self.webhook_url = url
        self.webhook_secret_sealed = secret_sealed

    @event("WebhookRemoved")
    def _webhook_removed(self, removed_by: str) -> None:
        self.webhook_url = None
        self.webhook_secret_sealed = None
