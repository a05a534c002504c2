"""bench/RESULTS.md: every goal of the issues beside what this run measured, and whether it
was met; then every row of the run. Written by `make bench` from this run's rows only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.report import Report

RESULTS_MD = Path(__file__).with_name("RESULTS.md")


@dataclass(frozen=True)
class Goal:
    figure: str
    goal: str
    needs: tuple[str, ...]  # rows (or ratios) that must be in this run
    judge: Callable[[Report], tuple[str, bool | None]]  # (measured, met)


def _row(r: Report, name: str) -> dict[str, Any]:
    return r.results.get(name) or r.ratios[name]


def _v(r: Report, name: str) -> float:
    return float(_row(r, name)["value"])


def _times(r: Report, ratio: str, of: str, vs: str, goal: float) -> tuple[str, bool]:
    value = _v(r, ratio)
    return f"{_v(r, of):,.0f}/s vs {_v(r, vs):,.0f}/s = {value:.2f}x", value >= goal


def _p99(r: Report, name: str, goal_ms: float, key: str = "p99_ms") -> tuple[str, bool]:
    row = _row(r, name)
    return f"p50 {row.get('p50_ms', 0):.1f} ms, p99 {row[key]:.1f} ms", row[key] <= goal_ms


def _lag(r: Report) -> tuple[str, bool]:
    row = _row(r, "projection_lag_p99_ms")
    reached = row["achieved_per_s"] >= 0.95 * row["offered_per_s"]
    text = (
        f"p50 {row['p50_ms']:.0f} ms, p99 {row['value']:.0f} ms at "
        f"{row['achieved_per_s']:,.0f} payments/s (of {row['offered_per_s']:,.0f} offered)"
    )
    if not reached:
        text += ", rate not reached"
    half = r.results.get("projection_lag_p99_ms.half_rate")
    if half:
        text += (
            f"; at {half['achieved_per_s']:,.0f}/s: p50 {half['p50_ms']:.0f} ms,"
            f" p99 {half['value']:.0f} ms"
        )
    return text, reached and row["value"] <= 100.0


def _csv(r: Report) -> tuple[str, bool]:
    row = _row(r, "export.csv")
    text = (
        f"{row['value']:,.0f} rows/s over {row['rows']:,} rows; traced peak "
        f"{row['traced_peak_mib']:.2f} MiB (a tenth of the rows: "
        f"{row['traced_peak_tenth_mib']:.2f} MiB), RSS +{row['rss_growth_mib']:.1f} MiB"
    )
    return text, row["value"] >= 100_000 and bool(row["memory_flat"])


def _rss(r: Report, name: str) -> tuple[str, bool]:
    row = _row(r, name)
    text = f"{row['value']:.0f} MB a process ({row['tree_total_mb']:.0f} MB all processes)"
    return text, row["value"] <= 300


def _rebuild(r: Report) -> tuple[str, bool]:
    row = _row(r, "rebuild.all_read_models")
    seconds_per_million = 1_000_000 / row["value"] if row["value"] else float("inf")
    text = (
        f"{row['events']:,} events in {row['seconds']:.1f} s = {row['value']:,.0f} events/s "
        f"({seconds_per_million:.1f} s a million)"
    )
    if "rebuild.all_read_models/naive" in r.ratios:
        text += f", {_v(r, 'rebuild.all_read_models/naive'):.0f}x the naive runner"
    return text, seconds_per_million <= 20


def _audit(r: Report) -> tuple[str, bool]:
    row = _row(r, "audit.verify")
    seconds_per_million = 1_000_000 / row["value"] if row["value"] else float("inf")
    text = (
        f"{row['checked']:,} events in {row['seconds']:.1f} s = {row['value']:,.0f} events/s "
        f"({seconds_per_million:.0f} s a million)"
    )
    return text, seconds_per_million <= 30 and bool(row.get("ok", True))


NAIVE = "naive.8_threads"
GOALS: tuple[Goal, ...] = (
    Goal(
        "In-process card payments/s, 8 threads, vs naive (same run)",
        ">= 5x",
        (f"ours.8_threads/{NAIVE}",),
        lambda r: _times(r, f"ours.8_threads/{NAIVE}", "ours.8_threads", NAIVE, 5.0),
    ),
    *(
        goal
        for suffix, label in (("", "1 uvicorn worker"), (".2_workers", "2 uvicorn workers"))
        for goal in (
            Goal(
                f"HTTP card payments/s vs empty POST, 32 connections, {label}",
                ">= 0.45x",
                (f"http.card_payment_vs_empty_post{suffix}",),
                lambda r, s=suffix: _times(
                    r,
                    f"http.card_payment_vs_empty_post{s}",
                    f"http.card_payment{s}",
                    f"http.empty_post{s}",
                    0.45,
                ),
            ),
            Goal(
                f"HTTP card payment latency, 32 connections, {label}",
                "p99 <= 50 ms",
                (f"http.card_payment{suffix}",),
                lambda r, s=suffix: _p99(r, f"http.card_payment{s}", 50.0),
            ),
            Goal(
                f"API resident memory under load, {label}",
                "<= 300 MB",
                (f"http.api_rss_peak{suffix}",),
                lambda r, s=suffix: _rss(r, f"http.api_rss_peak{s}"),
            ),
        )
    ),
    Goal(
        "Projection lag, all read models, steady card payments",
        "p99 <= 100 ms at 1,000/s",
        ("projection_lag_p99_ms",),
        _lag,
    ),
    *(
        Goal(
            f"{label} at 200 requests/s (open loop)",
            "p99 <= 20 ms",
            (f"read.{name}_p99_ms",),
            lambda r, n=name: _p99(r, f"read.{n}_p99_ms", 20.0),
        )
        for name, label in (
            ("member_orders", "GET /v1/orders (member)"),
            ("stations_nearby", "GET /v1/stations/nearby"),
            ("partner_station_orders", "GET /v1/partner/stations/{id}/orders"),
        )
    ),
    Goal("CSV export", ">= 100,000 rows/s, memory flat", ("export.csv",), _csv),
    Goal(
        "Rebuild of every read model",
        "1M events in <= 20 s",
        ("rebuild.all_read_models",),
        _rebuild,
    ),
    Goal("Audit verify of the hash chain", "1M events in <= 30 s", ("audit.verify",), _audit),
)


def table(report: Report) -> str:
    lines = ["| figure | goal | measured | met |", "|---|---|---|---|"]
    for goal in GOALS:
        if all(n in report.results or n in report.ratios for n in goal.needs):
            measured, met = goal.judge(report)
            verdict = "—" if met is None else ("yes" if met else "**no**")
        else:
            measured, verdict = "not measured in this run", "—"
        lines.append(f"| {goal.figure} | {goal.goal} | {measured} | {verdict} |")
    return "\n".join(lines)


def write(report: Report, baseline: str, took_s: float, path: Path = RESULTS_MD) -> Path:
    m = report.machine
    head = [
        "# `make bench` results",
        "",
        f"Measured from {min((row['at'] for row in report.results.values()), default='')}"
        f" in {took_s / 60:.1f} min, BENCH_SCALE={m.get('bench_scale')}; {m.get('nproc')} cores"
        f" ({m.get('cpu_model', '')}), PostgreSQL {m.get('pg_version', '?')} "
        f"({m.get('server', '?')}), Python {m.get('python', '?')}; load average (1 min) "
        f"{m.get('loadavg_1m_at_start')} at the start, {m.get('loadavg_1m_at_end')} at the end.",
        "Each figure is read beside its baseline measured in the same run; on a busy machine",
        "the ratios hold better than the absolute numbers.",
        "",
        table(report),
        "",
    ]
    if report.skipped:
        head += ["Skipped:", ""] + [f"- {k}: {why}" for k, why in report.skipped.items()] + [""]
    head += ["## Every row of this run", "", report.markdown(baseline), ""]
    path.write_text("\n".join(head))
    return path
