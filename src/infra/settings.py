"""One settings class for every process; environment variables override the defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEMO_SECRET = "demo-secret-change-me-in-production-0123456789"
# The simulators' own defaults (providers.sim.app), so `make run` signs in out of the box.
DEV_WECHAT_SECRET = "dev-wechat-secret"
DEV_SMS_SECRET = "dev-sms-secret"
# Fernet key for back-office secrets at rest (infra.secrets); refused in production.
DEV_SECRETS_KEY = "ZGV2LXNlY3JldHMta2V5LW5vdC1mb3ItcHJvZC11c2U="


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    # Unset means: start an embedded PostgreSQL / Redis with data under data_dir.
    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path(".data")

    # The API and workers connect as this role: INSERT and SELECT only on the event store.
    app_db_user: str = "ledger_app"
    app_db_password: SecretStr = SecretStr("")

    jwt_secret: SecretStr = SecretStr(DEMO_SECRET)
    access_token_minutes: int = 15
    refresh_token_days: int = 30
    jwt_issuer: str = "fuel-ledger"
    jwt_audience: str = "fuel-ledger-api"

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    simulator_port: int = 8099

    # Provider gateways: the local simulators by default, the real ones in production.
    wechat_pay_base_url: str = "http://127.0.0.1:8099/wechatpay"
    wechat_api_base_url: str = "http://127.0.0.1:8099/wechat"
    alipay_gateway_url: str = "http://127.0.0.1:8099/alipay/gateway.do"
    sms_base_url: str = "http://127.0.0.1:8099/sms"
    tts_base_url: str = "http://127.0.0.1:8099/tts"
    tts_api_key: SecretStr = SecretStr("")

    # WeChat mini-program (login, phone number) and the SMS account; the defaults are the
    # simulators' (providers.sim.app).
    wechat_appid: str = "wx0000000000000001"
    wechat_app_secret: SecretStr = SecretStr(DEV_WECHAT_SECRET)
    sms_access_key_id: str = "dev-sms-key"
    sms_access_key_secret: SecretStr = SecretStr(DEV_SMS_SECRET)
    sms_sign_name: str = "Fuel Ledger"
    sms_template_verify_code: str = "SMS_VERIFY_CODE"

    # Where providers send notifications: this API as the outside world reaches it.
    public_base_url: str = "http://127.0.0.1:8000"
    # WeChat Pay merchant and Alipay app. Keys: PEM files in provider_keys_dir (generated for
    # the simulators on first start in development; mounted from a secret store in production).
    wechat_pay_mchid: str = "1900000001"
    alipay_app_id: str = "2021000000000001"
    provider_keys_dir: Path | None = None
    # Fuel-card top-up bonus tiers, "threshold_fen:bonus_fen,...": top up 500, get 20.
    top_up_bonus_tiers: str = "50000:2000,100000:5000"
    order_ttl_minutes: int = 15

    group_commit_max_wait_ms: float = 3.0
    group_commit_max_batch: int = 500
    aggregate_cache_size: int = 200_000

    # Back office (issue 7): secrets at rest, backups, exports.
    secrets_key: SecretStr = SecretStr(DEV_SECRETS_KEY)
    backup_dir: Path | None = None  # default data_dir / "backups"
    backup_keep_days: int = 14
    backup_every_hours: int = 24
    export_dir: Path | None = None  # default data_dir / "exports"

    # Coupons and referral (issue 6): templates by id or by creation key, comma-separated.
    # Empty referral templates mean the default one the demo data creates.
    referral_coupon_templates: str = ""
    signup_coupon_templates: str = ""
    # Referral codes are HMAC-signed with this key (empty: derived from jwt_secret).
    referral_secret: SecretStr = SecretStr("")
    # What the referral poster's QR code opens: this prefix followed by the code.
    referral_link_base: str = "https://mp.fuel-ledger.example/join?ref="
    app_name: str = "Fuel Ledger"
    # A TrueType/OpenType font with CJK glyphs for the poster; unset: Pillow's default font,
    # with non-ASCII text replaced.
    poster_font_path: Path | None = None

    # Points, commission, withdrawals (issue 6: items 1, 4, 5). Multipliers are basis points
    # (10000 = x1): "95#:15000,98#:20000"; "<station id>:12000"; campaigns
    # "2026-12-01/2026-12-31:20000" (business days, inclusive; the best one running applies).
    points_lifetime_months: int = 12
    points_grade_multipliers: str = ""
    points_station_multipliers: str = ""
    points_campaigns: str = ""
    commission_rate_bps: int = 100
    commission_station_rates: str = ""  # "<station id>:bps,..." overrides the global rate
    commission_refund_window_days: int = 7
    withdrawal_min_fen: int = 100
    withdrawal_fee_bps: int = 0
    withdrawal_daily_limit_fen: int = 500_000

    @model_validator(mode="after")
    def _refuse_demo_secrets_in_production(self) -> Settings:
        if self.environment == "production":
            if self.jwt_secret.get_secret_value() == DEMO_SECRET:
                raise ValueError("JWT_SECRET must be set in production")
            for name, dev in (
                ("wechat_app_secret", DEV_WECHAT_SECRET),
                ("sms_access_key_secret", DEV_SMS_SECRET),
                ("secrets_key", DEV_SECRETS_KEY),
            ):
                if getattr(self, name).get_secret_value() in (dev, DEMO_SECRET):
                    raise ValueError(f"{name.upper()} must be set in production")
            if not self.database_url or not self.redis_url:
                raise ValueError("DATABASE_URL and REDIS_URL must be set in production")
        return self


def keys_dir(settings: Settings) -> Path:
    return settings.provider_keys_dir or settings.data_dir / "keys"


@lru_cache
def get_settings() -> Settings:
    return Settings()
