"""The composition root of the write side: settings -> database -> application -> services.

The API, the workers, the CLI and the tests all build the same graph here, with other
settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from psycopg_pool import ConnectionPool

from infra.cache_follower import CacheFollower
from infra.db import POOL_TIMEOUT_S, app_conninfo, bound_store_waits, eventsourcing_env
from infra.group_commit import DirectCommitter, GroupCommitter
from infra.loyalty_wiring import build_loyalty
from infra.migrate import upgrade
from infra.recorder import LedgerRecorder
from infra.settings import Settings
from ledger.application import LedgerApplication
from ledger.commands import CommandRunner
from ledger.services.campaigns import CampaignService
from ledger.services.commission import CommissionService
from ledger.services.coupons import CouponService
from ledger.services.fuel_orders import FuelOrderService, utcnow
from ledger.services.mall import MallService
from ledger.services.members import MemberService
from ledger.services.points_expiry import PointsExpiryService
from ledger.services.reconciliation import ReconciliationService
from ledger.services.referrals import DEFAULT_REFERRAL_TEMPLATE_KEY, ReferralService, template_refs
from ledger.services.station_catalog import StationCatalogService
from ledger.services.stations import StationAccountService
from ledger.services.top_ups import TopUpService, parse_tiers
from ledger.services.wallets import WalletService
from ledger.services.withdrawals import WithdrawalService
from projections import coupons as coupon_queries
from projections.reconciliation_queries import ProjectedLedger
from providers.trade_bills import read_statement


@dataclass
class Core:
    settings: Settings
    owner_url: str
    app_url: str
    app: LedgerApplication
    committer: DirectCommitter
    runner: CommandRunner
    wallets: WalletService
    stations: StationAccountService
    members: MemberService
    catalog: StationCatalogService
    orders: FuelOrderService
    top_ups: TopUpService
    coupons: CouponService
    campaigns: CampaignService
    referrals: ReferralService
    commission: CommissionService
    withdrawals: WithdrawalService
    points_expiry: PointsExpiryService
    mall: MallService
    reconciliation: ReconciliationService
    read_pool: ConnectionPool
    extras: dict[str, Any] = field(default_factory=dict)

    def follow_other_writers(self) -> CacheFollower:
        """Evict cached aggregates that other processes change (an API worker beside
        others); closed with the core."""
        recorder = self.app.recorder
        assert isinstance(recorder, LedgerRecorder)
        follower = CacheFollower(self.app, self.app_url, recorder.own_pids).start()
        self.extras["cache_follower"] = follower
        return follower

    def close(self) -> None:
        follower = self.extras.pop("cache_follower", None)
        if follower is not None:
            follower.close()
        self.committer.close()
        self.read_pool.close()
        self.app.close()


def build_core(
    settings: Settings,
    owner_url: str,
    *,
    migrate: bool = True,
    group_commit: bool = True,
    pool_size: int = 8,
    clock: Callable[[], datetime] = utcnow,
) -> Core:
    ttl = timedelta(minutes=settings.order_ttl_minutes)
    if migrate:
        upgrade(owner_url)  # before the Application: it registers the composite type then
    app_url = app_conninfo(owner_url, settings)
    env = eventsourcing_env(app_url, pool_size=pool_size)
    env["AGGREGATE_CACHE_MAXSIZE"] = str(settings.aggregate_cache_size)
    app = LedgerApplication(env=env)
    bound_store_waits(app)
    committer: DirectCommitter
    if group_commit:
        committer = GroupCommitter(
            app,
            max_wait_s=settings.group_commit_max_wait_ms / 1000,
            max_batch=settings.group_commit_max_batch,
        )
    else:
        committer = DirectCommitter(app)
    runner = CommandRunner(app, committer)
    read_pool = ConnectionPool(
        app_url, min_size=1, max_size=pool_size, open=True, timeout=POOL_TIMEOUT_S
    )
    segments = partial(coupon_queries.segment_members, read_pool)
    coupons = CouponService(
        runner, clock=clock, due=partial(coupon_queries.due_coupons, read_pool), segments=segments
    )
    referrals = ReferralService(
        runner,
        secret=(
            settings.referral_secret.get_secret_value() or settings.jwt_secret.get_secret_value()
        ).encode(),
        referral_templates=template_refs(
            settings.referral_coupon_templates, [DEFAULT_REFERRAL_TEMPLATE_KEY]
        ),
        signup_templates=template_refs(settings.signup_coupon_templates),
        clock=clock,
    )
    loyalty = build_loyalty(settings, runner, read_pool, clock, ttl)
    return Core(
        settings=settings,
        owner_url=owner_url,
        app_url=app_url,
        app=app,
        committer=committer,
        runner=runner,
        wallets=WalletService(runner),
        stations=StationAccountService(runner),
        members=MemberService(runner, on_registered=[referrals.on_registered]),
        catalog=StationCatalogService(runner),
        orders=FuelOrderService(
            runner,
            clock=clock,
            ttl=ttl,
            offers=coupons.offers,
            rules=loyalty.rules,
            listeners=[coupons.listener, loyalty.commission.listener],
        ),
        top_ups=TopUpService(
            runner, tiers=parse_tiers(settings.top_up_bonus_tiers), clock=clock, ttl=ttl
        ),
        coupons=coupons,
        campaigns=CampaignService(runner, clock=clock, segments=segments),
        referrals=referrals,
        commission=loyalty.commission,
        withdrawals=loyalty.withdrawals,
        points_expiry=loyalty.points_expiry,
        mall=loyalty.mall,
        reconciliation=ReconciliationService(
            runner, ProjectedLedger(app, read_pool), read_statement
        ),
        read_pool=read_pool,
    )
