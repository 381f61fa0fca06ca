"""``fleetwatch flux list|run|query``: engineers' Flux on the heartbeat history."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from fleetwatch.settings import InfluxSettings, RetentionSettings, load

# Parameters whose default is the deployment's own bucket, read from the settings when used.
_BUCKET_DEFAULTS: dict[str, Callable[[], str]] = {
    "bucket": lambda: load(InfluxSettings).influx_bucket,
    "hourly_bucket": lambda: load(RetentionSettings).influx_hourly_bucket,
}


def register(sub: Any) -> None:  # noqa: ANN401 - argparse's private subparsers type
    """Add the ``flux`` subcommand and its actions to the top-level parser."""
    flux = sub.add_parser(
        "flux",
        help="run ready-made or your own Flux on the heartbeat history",
        description=(
            "Ready-made, parameterised Flux queries live in stores/influx/flux/. Their "
            "bucket parameters default to FLEETWATCH_INFLUX_BUCKET and "
            "FLEETWATCH_INFLUX_HOURLY_BUCKET."
        ),
    )
    actions = flux.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="the ready-made queries and their parameters")
    listing.set_defaults(handler=_list)

    run = actions.add_parser("run", help="run a ready-made query and print its table")
    run.add_argument("name", help="query name, as `fleetwatch flux list` shows it")
    run.add_argument(
        "--param",
        "-p",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter (repeatable); times: RFC 3339, a date, now or -24h; durations: 15m",
    )
    run.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    run.add_argument(
        "--show", action="store_true", help="print the rendered Flux instead of running it"
    )
    run.set_defaults(handler=_run)

    query = actions.add_parser("query", help="run your own Flux and print its table")
    query.add_argument("flux", help="the Flux text, or - to read it from standard input")
    query.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    query.set_defaults(handler=_query)


def _list(_: argparse.Namespace) -> int:
    from stores.influx.flux_library import list_queries  # noqa: PLC0415 - keeps --help fast

    for query in list_queries():
        sys.stdout.write(f"{query.name}\n    {query.description}\n")
        for param in query.params:
            shown = param.default or '""'
            default = "required" if param.required else f"default {shown}"
            sys.stdout.write(
                f"      {param.name:<14} {param.type:<9} {param.description} ({default})\n"
            )
    return 0


def _run(args: argparse.Namespace) -> int:
    from stores.influx.flux_library import FluxLibraryError, load_query  # noqa: PLC0415

    try:
        query = load_query(args.name)
        values = dict(_pair(text) for text in args.param)
        for name, default in _BUCKET_DEFAULTS.items():
            if name not in values and any(p.name == name for p in query.params):
                values[name] = default()
        flux = query.render(values)
    except FluxLibraryError as exc:
        sys.stderr.write(f"fleetwatch flux run: {exc}\n")
        return 2
    if args.show:
        sys.stdout.write(flux)
        return 0
    return _execute(flux, csv=args.csv, command="run")


def _query(args: argparse.Namespace) -> int:
    flux = sys.stdin.read() if args.flux == "-" else args.flux
    if not flux.strip():
        sys.stderr.write("fleetwatch flux query: the query is empty\n")
        return 2
    return _execute(flux, csv=args.csv, command="query")


def _pair(text: str) -> tuple[str, str]:
    from stores.influx.flux_library import FluxLibraryError  # noqa: PLC0415

    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise FluxLibraryError(f"--param wants KEY=VALUE, got {text!r}")
    return name.strip(), value


def _execute(flux: str, *, csv: bool, command: str) -> int:
    import polars as pl  # noqa: PLC0415

    from stores import StoreError, influx  # noqa: PLC0415
    from stores.influx.flux_library import run_flux  # noqa: PLC0415

    settings = load(InfluxSettings)
    try:
        with influx.make_client(settings) as client:
            frame = run_flux(client, flux, org=settings.influx_org)
    except StoreError as exc:
        sys.stderr.write(f"fleetwatch flux {command}: {exc}\n")
        return 1
    if csv:
        sys.stdout.write(frame.write_csv())
    elif frame.is_empty():
        sys.stdout.write("(no rows)\n")
    else:
        with pl.Config(
            tbl_rows=-1,
            tbl_cols=-1,
            tbl_width_chars=10_000,
            fmt_str_lengths=80,
            tbl_hide_dataframe_shape=True,
            tbl_hide_column_data_types=True,
        ):
            rows = "row" if frame.height == 1 else "rows"
            sys.stdout.write(f"{frame}\n{frame.height} {rows}\n")
    return 0
