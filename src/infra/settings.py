"""One settings class for every process; environment variables override the defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEMO_SECRET = "demo-secret-change-me-in-production-0123456789"


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

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    simulator_port: int = 8099

    # Provider gateways: the local simulators by default, the real ones in production.
    wechat_pay_base_url: str = "http://127.0.0.1:8099/wechatpay"
    wechat_api_base_url: str = "http://127.0.0.1:8099/wechat"
    alipay_gateway_url: str = "http://127.0.0.1:8099/alipay/gateway.do"
    sms_base_url: str = "http://127.0.0.1:8099/sms"
    tts_base_url: str = "http://127.0.0.1:8099/tts"

    group_commit_max_wait_ms: float = 3.0
    group_commit_max_batch: int = 500
    aggregate_cache_size: int = 200_000

    @model_validator(mode="after")
    def _refuse_demo_secrets_in_production(self) -> Settings:
        if self.environment == "production":
            if self.jwt_secret.get_secret_value() == DEMO_SECRET:
                raise ValueError("JWT_SECRET must be set in production")
            if not self.database_url or not self.redis_url:
                raise ValueError("DATABASE_URL and REDIS_URL must be set in production")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
