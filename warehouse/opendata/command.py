"""The `citycam export` command: arguments and the run (heavy imports only when it runs)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from citycam.config import Settings
from warehouse.opendata.catalog import CC_BY_4
from warehouse.opendata.periods import Period, PeriodKind


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--period",
        choices=["day", "hour"],
        help="UTC day or hour (default: hour if --date names one or --hour is given, else day)",
    )
    parser.add_argument(
        "--date",
        help="2026-11-22 (day), 2026-11-22T14 (hour); default: the last complete period",
    )
    parser.add_argument("--hour", type=int, help="hour of --date for an hour period, 0-23")
    parser.add_argument(
        "--to",
        help="export root: a directory or an fsspec URI (s3://..., memory://...); "
        "default <data_dir>/open-data",
    )
    parser.add_argument(
        "--base-url", help="public URL the root is served at, for download links (default: --to)"
    )
    parser.add_argument("--license", default=CC_BY_4, help="licence URI of the data")
    parser.add_argument("--publisher", default="citycam", help="publisher named in the catalog")


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    from citycam.clickhouse import connect
    from warehouse.opendata.catalog import CatalogInfo
    from warehouse.opendata.export import ensure_open_data_only, export_period
    from warehouse.opendata.publish import open_target
    from warehouse.opendata.validate import ExportRejected, ExportValidator

    period = requested_period(args.period, args.date, args.hour, datetime.now(UTC))
    warehouse = settings.warehouse
    if warehouse.opendata_username in (warehouse.username, warehouse.analyst_username):
        raise ValueError("the open-data user must not be the writer or analyst user")
    client = connect(
        warehouse,
        database="open_data",
        username=warehouse.opendata_username,
        password=warehouse.opendata_password.get_secret_value(),
    )
    ensure_open_data_only(client, warehouse.database)
    target = open_target(args.to or str(settings.data_dir / "open-data"))
    info = CatalogInfo(
        root_url=args.base_url or target.uri, license=args.license, publisher=args.publisher
    )
    try:
        result = export_period(client, period, target, info, ExportValidator())
    except ExportRejected as rejected:
        print(f"citycam export: {rejected}", file=sys.stderr)
        return 2
    for dataset, files in result.files.items():
        print(f"{dataset:24} {result.rows[dataset]:>7} rows  " + ", ".join(f.name for f in files))
    print(f"published {period.label} (version {result.version}): {result.catalog_url}")
    return 0


def requested_period(
    kind: PeriodKind | None, date_text: str | None, hour: int | None, now: datetime
) -> Period:
    """The period the options name; without --date, the last complete one."""
    if kind is None:
        kind = "hour" if hour is not None or (date_text and "T" in date_text) else "day"
    if date_text is None:
        if hour is not None:
            raise ValueError("--hour needs --date")
        return Period.last_complete(kind, now)
    period = Period.parse(kind, date_text, hour)
    if period.start > now:
        raise ValueError(f"{period.label} has not started yet")
    return period
