"""Builds points rules, commission, withdrawals, points expiry and the mall from settings;
the composition root (infra.bootstrap) calls `build_loyalty` once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial

from psycopg_pool import ConnectionPool

from infra.settings import Settings
from ledger.commands import CommandRunner
from ledger.loyalty import PointsRules, parse_campaigns, parse_multipliers
from ledger.services.commission import CommissionPolicy, CommissionService
from ledger.services.mall import MallService
from ledger.services.points_expiry import PointsExpiryService
from ledger.services.withdrawals import WithdrawalRules, WithdrawalService
from projections import distribution_queries
from projections import mall as mall_queries


def points_rules(settings: Settings) -> PointsRules:
    return PointsRules(
        grade_multipliers_bps=parse_multipliers(settings.points_grade_multipliers),
        station_multipliers_bps=parse_multipliers(settings.points_station_multipliers),
        campaigns=parse_campaigns(settings.points_campaigns),
        lifetime_months=settings.points_lifetime_months,
    )


def commission_policy(settings: Settings) -> CommissionPolicy:
    return CommissionPolicy(
        rate_bps=settings.commission_rate_bps,
        station_rates_bps=parse_multipliers(settings.commission_station_rates),
        refund_window=timedelta(days=settings.commission_refund_window_days),
    )


def withdrawal_rules(settings: Settings) -> WithdrawalRules:
    return WithdrawalRules(
        min_fen=settings.withdrawal_min_fen,
        fee_bps=settings.withdrawal_fee_bps,
        daily_limit_fen=settings.withdrawal_daily_limit_fen,
    )


@dataclass
class Loyalty:
    rules: PointsRules
    commission: CommissionService
    withdrawals: WithdrawalService
    points_expiry: PointsExpiryService
    mall: MallService


def build_loyalty(
    settings: Settings,
    runner: CommandRunner,
    read_pool: ConnectionPool,
    clock: Callable[[], datetime],
    ttl: timedelta,
) -> Loyalty:
    def due_members(today: date) -> list:
        return distribution_queries.points_due_members(read_pool, today)

    return Loyalty(
        rules=points_rules(settings),
        commission=CommissionService(
            runner,
            policy=commission_policy(settings),
            due_referrers=partial(distribution_queries.due_referrers, read_pool),
            clock=clock,
        ),
        withdrawals=WithdrawalService(runner, rules=withdrawal_rules(settings), clock=clock),
        points_expiry=PointsExpiryService(runner, due_members=due_members, clock=clock),
        mall=MallService(
            runner, clock=clock, ttl=ttl, due_orders=partial(mall_queries.due_orders, read_pool)
        ),
    )
