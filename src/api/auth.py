"""Bearer tokens for every audience, and the FastAPI dependencies that check them.

Access tokens are short-lived HS256 JWTs (`sub`, `role`, `scope`, `iat`, `exp`, `iss`,
`aud`, `jti`). Refresh tokens are opaque and single-use (see `api.refresh_tokens`). Nothing
here knows what a member, partner or admin is: routers name the roles they accept.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from uuid import UUID

import jwt
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError, problem
from api.refresh_tokens import RefreshTokens
from infra.settings import Settings

Role = Literal["member", "partner", "admin", "finance"]
ROLES: tuple[str, ...] = ("member", "partner", "admin", "finance")
ALGORITHM = "HS256"
LEEWAY_S = 5
MEMBER_SCOPE = ("member",)

_bearer = HTTPBearer(auto_error=False, description="An access token from a sign-in endpoint")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the verified claims of an access token."""

    subject: str
    role: str
    scope: tuple[str, ...]
    token_id: str
    expires_at: int

    @property
    def id(self) -> UUID:
        """The subject as a UUID (members, partners' accounts and admins all have one)."""
        return UUID(self.subject)

    def has_scope(self, *wanted: str) -> bool:
        return all(s in self.scope for s in wanted)


class AuthError(ApiError):
    """401 or 403, answered with WWW-Authenticate: Bearer (RFC 6750)."""

    def __init__(self, status: int, code: str, title: str, *, error: str = "", **extra: Any):
        super().__init__(status, code, title, **extra)
        challenge = 'Bearer realm="fuel-ledger"'
        self.challenge = challenge + (f', error="{error}"' if error else "")


def unauthenticated(title: str = "Sign in first", error: str = "invalid_token") -> AuthError:
    return AuthError(401, "unauthenticated", title, error=error)


def forbidden(title: str = "Not allowed for this account") -> AuthError:
    return AuthError(403, "forbidden", title, error="insufficient_scope")


def install(app: FastAPI) -> None:
    @app.exception_handler(AuthError)
    async def _auth(_: Request, exc: AuthError) -> JSONResponse:
        response = problem(exc.status, exc.code, exc.title, **exc.extra)
        response.headers["WWW-Authenticate"] = exc.challenge
        return response


# -- access tokens ---------------------------------------------------------------------------


def issue_access_token(
    settings: Settings,
    subject: str | UUID,
    role: str,
    scope: Sequence[str] = (),
    *,
    now: float | None = None,
) -> tuple[str, int]:
    """A signed access token and its lifetime in seconds."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    issued = int(time.time() if now is None else now)
    lifetime = settings.access_token_minutes * 60
    claims = {
        "sub": str(subject),
        "role": role,
        "scope": list(scope),
        "iat": issued,
        "exp": issued + lifetime,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)
    return token, lifetime


# Verified tokens, so that a member's next requests skip PyJWT (about a tenth of a card
# payment's CPU): keyed by the secret too, the expiry checked again on every use. A token
# string can only ever verify to the same claims, so a hit is exactly what decoding gives.
_VERIFIED: dict[tuple[str, str], Principal] = {}
_VERIFIED_MAX = 20_000


def decode_access_token(settings: Settings, token: str) -> Principal:
    key = (settings.jwt_secret.get_secret_value(), token)
    known = _VERIFIED.get(key)
    if known is not None:
        if known.expires_at + LEEWAY_S <= time.time():
            raise unauthenticated("The access token has expired")
        return known
    principal = _verify(settings, token)
    if len(_VERIFIED) >= _VERIFIED_MAX:  # the oldest goes first (a dict keeps that order)
        _VERIFIED.pop(next(iter(_VERIFIED)), None)
    _VERIFIED[key] = principal
    return principal


def _verify(settings: Settings, token: str) -> Principal:
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=LEEWAY_S,
            options={"require": ["sub", "role", "exp", "iat", "iss", "aud", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise unauthenticated("The access token has expired") from None
    except jwt.InvalidTokenError:
        raise unauthenticated("The access token is not valid") from None
    scope = claims.get("scope") or []
    if claims["role"] not in ROLES or not isinstance(scope, list):
        raise unauthenticated("The access token is not valid")
    return Principal(
        subject=str(claims["sub"]),
        role=str(claims["role"]),
        scope=tuple(str(s) for s in scope),
        token_id=str(claims["jti"]),
        expires_at=int(claims["exp"]),
    )


def issue_session(
    settings: Settings,
    refresh: RefreshTokens,
    subject: str | UUID,
    role: str,
    scope: Sequence[str] = (),
) -> dict[str, Any]:
    """What a sign-in endpoint answers: an access token and a new refresh-token family."""
    access, lifetime = issue_access_token(settings, subject, role, scope)
    return {
        "access_token": access,
        "refresh_token": refresh.issue(str(subject), role, scope),
        "token_type": "Bearer",
        "expires_in": lifetime,
    }


def refreshed_session(settings: Settings, refresh: RefreshTokens, token: str) -> dict[str, Any]:
    """Rotate a refresh token; raises AuthError when it is unknown, expired or reused."""
    grant = refresh.rotate(token)
    access, lifetime = issue_access_token(settings, grant.owner, grant.role, grant.scope)
    return {
        "access_token": access,
        "refresh_token": grant.token,
        "token_type": "Bearer",
        "expires_in": lifetime,
    }


# -- dependencies ----------------------------------------------------------------------------


def settings_of(request: Request) -> Settings:
    return request.app.state.core.settings  # type: ignore[no-any-return]


def refresh_tokens(request: Request) -> RefreshTokens:
    core = request.app.state.core
    return RefreshTokens(core.read_pool, days=core.settings.refresh_token_days)


# The token checks below are `async def` on purpose: they only verify an HMAC and read
# claims, and FastAPI runs a plain `def` dependency in its thread pool, one hand-off per
# dependency per request (about 40 us of the event loop's time each, measured). The role
# and scope checks read the token themselves rather than through `current_principal`: one
# level of dependency fewer on every authenticated request.
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _principal(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    if credentials is None:
        raise unauthenticated(error="")
    return decode_access_token(settings_of(request), credentials.credentials)


async def current_principal(request: Request, credentials: Credentials) -> Principal:
    return _principal(request, credentials)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
Check = Callable[[Request, HTTPAuthorizationCredentials | None], Awaitable[Principal]]


def require_role(*roles: str) -> Check:
    """A dependency that admits only these roles: `Depends(require_role("admin"))`."""
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    async def check(request: Request, credentials: Credentials) -> Principal:
        principal = _principal(request, credentials)
        if principal.role not in roles:
            raise forbidden()
        return principal

    return check


def require_scope(*scopes: str) -> Check:
    """A dependency that admits tokens carrying every one of these scopes."""

    async def check(request: Request, credentials: Credentials) -> Principal:
        principal = _principal(request, credentials)
        if not principal.has_scope(*scopes):
            raise forbidden("The access token lacks a required scope")
        return principal

    return check


CurrentMember = Annotated[Principal, Depends(require_role("member"))]
RefreshTokensDep = Annotated[RefreshTokens, Depends(refresh_tokens)]
SettingsDep = Annotated[Settings, Depends(settings_of)]
