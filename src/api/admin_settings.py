"""SMS, WeChat and payment settings (A9, A10): plain values in office.settings, secrets sealed
with SECRETS_KEY (infra.secrets) and only ever answered masked; SMS templates with
enable/disable and a test send through the configured provider (the simulator in dev)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field

from api.admin_log import ChangeLog
from api.errors import ApiError
from api.permissions import require_permission
from infra.secrets import SecretBox, SecretsUnreadable, mask
from providers.errors import ProviderError
from providers.sms import SmsClient

router = APIRouter(tags=["admin: settings"])

# group -> (plain fields, secret fields)
GROUPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sms": (("enabled", "base_url", "access_key_id", "sign_name"), ("access_key_secret",)),
    "wechat": (
        ("appid", "mchid", "pay_serial_no", "notify_url"),
        ("app_secret", "pay_api_v3_key", "pay_private_key_pem"),
    ),
    "alipay": (("app_id", "gateway_url", "notify_url"), ("app_private_key_pem",)),
}
Group = Annotated[str, Path(pattern="^(" + "|".join(GROUPS) + ")$")]


class SettingsStore:
    def __init__(self, pool: Any, box: SecretBox) -> None:
        self.pool = pool
        self.box = box

    def raw(self, group: str) -> tuple[dict[str, Any], dict[str, str]]:
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT value, secrets FROM office.settings WHERE key = %s", (group,)
            ).fetchone()
        if row is None:
            return {}, {}
        try:
            return dict(row[0]), self.box.open(row[1])
        except SecretsUnreadable as exc:
            raise ApiError(500, "secrets_unreadable", str(exc)) from None

    def masked(self, group: str) -> dict[str, Any]:
        plain_fields, secret_fields = GROUPS[group]
        value, secrets = self.raw(group)
        out: dict[str, Any] = {f: value.get(f) for f in plain_fields}
        for name in secret_fields:
            out[name] = {"set": name in secrets, "masked": mask(secrets.get(name))}
        return out

    def put(self, group: str, changes: dict[str, Any], by: str) -> None:
        plain_fields, secret_fields = GROUPS[group]
        value, secrets = self.raw(group)
        for name, new in changes.items():
            if name in secret_fields:
                if new == "":
                    secrets.pop(name, None)
                else:
                    secrets[name] = str(new)
            else:
                value[name] = new
        with self.pool.connection() as conn:
            conn.execute(
                "INSERT INTO office.settings (key, value, secrets, updated_by) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, "
                "secrets = EXCLUDED.secrets, updated_by = EXCLUDED.updated_by, updated_at = now()",
                (group, Jsonb(value), self.box.seal(secrets) if secrets else None, by),
            )


def settings_store(request: Request) -> SettingsStore:
    core = request.app.state.core
    return SettingsStore(core.read_pool, SecretBox.from_settings(core.settings))


Store = Annotated[SettingsStore, Depends(settings_store)]


class SettingsPatch(BaseModel):
    """Any of a group's fields; a secret given as "" is removed, one left out is kept."""

    model_config = ConfigDict(extra="allow")


class Template(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    content: str = Field(min_length=1, max_length=500)
    enabled: bool = True


class TestSend(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: str = Field(pattern=r"^\+?\d{6,15}$")
    template_code: str = Field(min_length=2, max_length=64)
    params: dict[str, str] = Field(default_factory=dict, max_length=20)


@router.get("/settings")
def all_settings(store: Store, _: Any = Depends(require_permission("settings", "view"))) -> dict:
    """Every group; secrets only as {set, masked}."""
    return {group: store.masked(group) for group in GROUPS}


@router.get("/settings/{group}")
def get_settings_group(
    group: Group, store: Store, _: Any = Depends(require_permission("settings", "view"))
) -> dict[str, Any]:
    return store.masked(group)


@router.put("/settings/{group}")
def put_settings_group(
    group: Group,
    body: SettingsPatch,
    store: Store,
    log: ChangeLog,
    _: Any = Depends(require_permission("settings", "change")),
) -> dict[str, Any]:
    changes = dict(body.model_extra or {})
    plain_fields, secret_fields = GROUPS[group]
    unknown = sorted(set(changes) - set(plain_fields) - set(secret_fields))
    if unknown:
        raise ApiError(
            422, "invalid_request", f"not a {group} setting: {', '.join(unknown)}", field=unknown[0]
        )
    for name, value in changes.items():
        if name == "enabled" and not isinstance(value, bool):
            raise ApiError(422, "invalid_request", "enabled must be true or false", field=name)
        if name != "enabled" and (not isinstance(value, str) or len(value) > 8192):
            raise ApiError(422, "invalid_request", f"{name} must be text", field=name)
    before = store.masked(group)
    store.put(group, changes, log.actor)
    after = store.masked(group)
    log.change(
        "settings",
        "put",
        target=group,
        before=before,
        after=after,
        detail={"secrets_changed": sorted(set(changes) & set(secret_fields))},
    )
    return after


@router.get("/settings/sms/templates")
def list_templates(request: Request, _: Any = Depends(require_permission("settings", "view"))):
    with request.app.state.core.read_pool.connection() as conn:
        rows = conn.execute(
            "SELECT code, name, content, enabled, updated_at FROM office.sms_templates "
            "ORDER BY code"
        ).fetchall()
    keys = ("code", "name", "content", "enabled", "updated_at")
    return {"items": [dict(zip(keys, row, strict=True)) for row in rows]}


@router.put("/settings/sms/templates/{code}")
def put_template(
    body: Template,
    request: Request,
    log: ChangeLog,
    code: str = Path(pattern=r"^[A-Za-z0-9_]{2,64}$"),
    _: Any = Depends(require_permission("settings", "change")),
) -> dict[str, Any]:
    """Add or change a template; `enabled: false` stops it being sent."""
    with request.app.state.core.read_pool.connection() as conn:
        before = conn.execute(
            "SELECT name, content, enabled FROM office.sms_templates WHERE code = %s", (code,)
        ).fetchone()
        conn.execute(
            "INSERT INTO office.sms_templates (code, name, content, enabled) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, "
            "content = EXCLUDED.content, enabled = EXCLUDED.enabled, updated_at = now()",
            (code, body.name, body.content, body.enabled),
        )
    log.change(
        "settings",
        "put_template",
        target=code,
        before=dict(zip(("name", "content", "enabled"), before, strict=True)) if before else None,
        after=body.model_dump(),
    )
    return {"code": code, **body.model_dump()}


@router.post("/settings/sms/test")
def test_send(
    body: TestSend,
    request: Request,
    store: Store,
    log: ChangeLog,
    _: Any = Depends(require_permission("settings", "change")),
) -> dict[str, Any]:
    """Send one message with the stored account (falling back to the environment's) through
    the configured provider: in development, the simulator."""
    core = request.app.state.core
    with core.read_pool.connection() as conn:
        template = conn.execute(
            "SELECT enabled FROM office.sms_templates WHERE code = %s", (body.template_code,)
        ).fetchone()
    if template is None:
        raise ApiError(404, "not_found", "No such SMS template")
    if not template[0]:
        raise ApiError(409, "template_disabled", "This template is disabled")
    value, secrets = store.raw("sms")
    if value.get("enabled") is False:
        raise ApiError(409, "sms_disabled", "SMS sending is disabled in the settings")
    env = core.settings
    http = getattr(getattr(request.app.state, "providers", None), "http", None)
    client = SmsClient(
        value.get("base_url") or env.sms_base_url,
        value.get("access_key_id") or env.sms_access_key_id,
        secrets.get("access_key_secret") or env.sms_access_key_secret.get_secret_value(),
        value.get("sign_name") or env.sms_sign_name,
        http,
    )
    try:
        message_id = client.send(body.phone, body.template_code, body.params)
    except ProviderError as exc:
        log.change(
            "settings",
            "sms_test",
            target=body.template_code,
            outcome="failed",
            detail={"code": exc.code},
        )
        raise ApiError(
            502, "sms_failed", "The SMS provider refused the message", provider_code=exc.code
        ) from None
    finally:
        if http is None:
            client._http.close()  # noqa: SLF001 - the client made its own
    log.change(
        "settings",
        "sms_test",
        target=body.template_code,
        detail={"phone_tail": body.phone[-4:], "message_id": message_id},
    )
    return {"sent": True, "message_id": message_id}
