"""Write the desk report as one self-contained HTML file (what `make report` runs).

    python -m bot.gateway.report [--since 2026-11-01] [--until 2026-11-07]
                                 [--out reports/desk-report.html]

Reads the gateway's store at DATABASE_URL (default: the gateway's SQLite file,
as bot/gateway/settings.py says). The file carries its CSS and charts inline:
it can be mailed or archived, and opening it fetches nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import List, Optional

from sqlalchemy.engine import make_url

from bot.brand import PROJECT_ROOT, brand
from bot.gateway.report.data import PeriodError, parse_period
from bot.gateway.report.render import build_html
from bot.gateway.settings import Settings

DEFAULT_OUT = PROJECT_ROOT / "reports" / "desk-report.html"


def _database_url(url: str) -> str:
    """``url``, or an empty in-memory store when its SQLite file does not exist yet
    (opening the file would create it: a report should not)."""
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:" and not Path(path).exists():
            print(f"note: no gateway database at {path} yet: the report is empty")
            return "sqlite://"
    return url


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.gateway.report",
                                     description="Write the desk report as one HTML file.")
    parser.add_argument("--since", help="first day, YYYY-MM-DD (default: 6 days before until)")
    parser.add_argument("--until", help="last day, YYYY-MM-DD (default: today)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    profile = brand()
    zone = profile.opening_hours.zone
    try:
        period = parse_period(args.since, args.until, zone, datetime.now(zone).date())
    except PeriodError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    from bot.gateway.store import Store

    store = Store(_database_url(Settings.from_env().database_url))
    try:
        html = build_html(store.engine, period, dict(profile.sla_minutes), None, time.time())
    finally:
        store.engine.dispose()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(html, encoding="utf-8")
    print(f"desk report {period.since} to {period.until}: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
