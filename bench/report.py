"""Benchmark results: rows keyed by name, ratios between rows, and the machine they ran on.

`bench/results.json` keeps one shape so that later benches can add rows to it:

    {"schema": 1, "updated_at": ..., "machine": {...},
     "results": {name: {"value": v, "unit": u, "at": ..., **extra}},
     "ratios": {name: {"value": r, "of": row, "vs": row}}}

Writing merges into the file that is there: rows and ratios of the same name are replaced,
others are kept (each row says when it was measured).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("results.json")
SCHEMA = 1
WRITE_PATH = ("naive", "ours", "raw")  # the rows the baseline column compares


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Report:
    def __init__(self, path: Path = RESULTS) -> None:
        self.path = path
        self.machine: dict[str, Any] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self.ratios: dict[str, dict[str, Any]] = {}
        self.skipped: dict[str, str] = {}  # section -> why it did not run

    def add(self, name: str, value: float, unit: str, **extra: Any) -> None:
        self.results[name] = {"value": value, "unit": unit, "at": _now(), **extra}

    def skip(self, section: str, why: str) -> None:
        self.skipped[section] = why

    def ratio(self, name: str, of: str, vs: str) -> float | None:
        """value(of) / value(vs), recorded under `name`; None if either row is missing."""
        if of not in self.results or vs not in self.results or not self.results[vs]["value"]:
            return None
        value = round(self.results[of]["value"] / self.results[vs]["value"], 2)
        self.ratios[name] = {"value": value, "of": of, "vs": vs}
        return value

    def write(self) -> Path:
        data: dict[str, Any] = {"schema": SCHEMA, "machine": {}, "results": {}, "ratios": {}}
        if self.path.exists():
            try:
                old = json.loads(self.path.read_text())
            except ValueError:
                old = {}
            if isinstance(old, dict) and old.get("schema") == SCHEMA:
                for key in ("machine", "results", "ratios"):
                    data[key].update(old.get(key) or {})
        data["updated_at"] = _now()
        data["machine"].update(self.machine)
        data["results"].update(self.results)
        data["ratios"].update(self.ratios)
        self.path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        return self.path

    def markdown(self, baseline: str) -> str:
        """One line per row of this run, with its ratio to `baseline` for the write-path rows
        (a naive command writes one event row, so commands/s and rows/s compare)."""
        base = self.results.get(baseline)
        lines = [
            "| benchmark | value | unit | p50 ms | p99 ms | avg batch | py cores | pg cores"
            f" | vs {baseline} |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, row in self.results.items():
            vs = ""
            if base and base["value"] and name.split(".")[0] in WRITE_PATH:
                vs = f"{row['value'] / base['value']:.2f}x"
            lines.append(
                f"| {name} | {row['value']:,.0f} | {row['unit']} | {_cell(row.get('p50_ms'))}"
                f" | {_cell(row.get('p99_ms'))} | {_cell(row.get('avg_batch'), 1)}"
                f" | {_cell(row.get('py_cpu_cores'))} | {_cell(row.get('pg_cpu_cores'))} | {vs} |"
            )
        return "\n".join(lines)


def _cell(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


_default = Report()


def add(name: str, value: float, unit: str, **extra: Any) -> None:
    """Add a row to the default report (what later benches import)."""
    _default.add(name, value, unit, **extra)


def write() -> Path:
    return _default.write()


def default() -> Report:
    return _default
