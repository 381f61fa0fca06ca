"""The ready-made Flux queries in ``flux/``: listing, safe rendering, and running into Polars.

A query file starts with a header comment: its first paragraph says what the query answers,
and a ``Parameters:`` block declares each parameter, one a line::

    // Parameters:
    //   bucket     string                 raw heartbeat bucket
    //   start      time      = -24h       first instant of the period
    //   window     duration  = 1h         width of each window

as ``name type [= default] description``, the type one of ``string``, ``int``, ``float``,
``bool``, ``time`` and ``duration``; a parameter without a default is required. The body
reads them as ``params.<name>``. Rendering puts a ``params = {...}`` record of typed Flux
literals after the imports: values are never spliced into the query text, strings are
escaped, and durations and times must parse as such (a relative time such as ``-7d`` becomes
an absolute one, so a rendered query means the same when run again). Files without a
``Parameters:`` block (``hourly_stats.flux``, a library of functions the downsampling task
calls) are not queries and are not listed.

:func:`run_bounded_flux` runs an engineer's own Flux within a time limit and a row limit, so
that a query typed on a dashboard cannot hold InfluxDB or the page's memory for long.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Final, Literal, TypeAlias, get_args

import polars as pl
from influxdb_client.client.flux_table import FluxRecord, FluxTable
from influxdb_client.client.influxdb_client import InfluxDBClient
from urllib3.exceptions import ReadTimeoutError

from fleetwatch.settings import InfluxSettings
from stores.influx.client import api_errors, make_client

__all__ = [
    "FLUX_DIR",
    "FluxLibraryError",
    "FluxParam",
    "FluxQuery",
    "FluxResult",
    "FluxTimeoutError",
    "ParamType",
    "ParamValue",
    "flux_duration",
    "flux_string",
    "flux_time",
    "list_queries",
    "load_query",
    "run_bounded_flux",
    "run_flux",
    "tables_to_frame",
]

FLUX_DIR: Final = Path(__file__).with_name("flux")

ParamType: TypeAlias = Literal["string", "int", "float", "bool", "time", "duration"]
ParamValue: TypeAlias = str | int | float | bool | datetime | date | timedelta
"""What a caller may pass: the Python value, or its text as typed on a command line."""

_TYPES: Final = frozenset(get_args(ParamType))
_NAME: Final = re.compile(r"^[a-z][a-z0-9_]*$")
_PARAM_LINE: Final = re.compile(
    r"^//\s+(?P<name>[a-z][a-z0-9_]*)\s+(?P<type>[a-z]+)\s+"
    r"(?:=\s*(?P<default>\"(?:[^\"\\]|\\.)*\"|\S+)\s+)?(?P<doc>\S.*)$"
)
_CONTINUATION: Final = re.compile(r"^//\s{8,}(?P<doc>\S.*)$")
_USED: Final = re.compile(r"\bparams\.([A-Za-z_][A-Za-z0-9_]*)")
_IMPORT: Final = re.compile(r"^import\s+\"")
# A Flux duration literal: one or more magnitude-unit pairs (1h30m, 10m, 1mo).
_DURATION: Final = re.compile(r"^(?:\d+(?:ns|us|µs|ms|s|m|h|d|w|mo|y))+$")
# A relative time as typed on a command line: -24h, -7d, -90m (w, d, h, m, s).
_RELATIVE: Final = re.compile(r"^-(?P<amount>\d+)(?P<unit>[wdhms])$")
_RELATIVE_UNITS: Final = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_TRUE: Final = frozenset({"true", "yes", "1", "on"})
_FALSE: Final = frozenset({"false", "no", "0", "off"})
_INT64: Final = 2**63


class FluxLibraryError(ValueError):
    """An unknown query, a malformed query file, a parameter value that does not fit, or an
    engineer's query past its limits."""


class FluxTimeoutError(FluxLibraryError):
    """An engineer's query ran past its time limit and was cancelled.

    Attributes:
        timeout_s: the limit, in seconds.
    """

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"the query ran past {timeout_s:g} s; narrow its range")
        self.timeout_s = timeout_s


@dataclass(frozen=True, slots=True)
class FluxResult:
    """What :func:`run_bounded_flux` read of a query's answer.

    Attributes:
        frame: the rows read, in the order InfluxDB sent them.
        truncated: True when the answer had more rows than the limit, which were not read.
    """

    frame: pl.DataFrame
    truncated: bool


@dataclass(frozen=True, slots=True)
class FluxParam:
    """One declared parameter of a query file.

    Attributes:
        name: the name the body reads as ``params.<name>``.
        type: the Flux type its value is rendered as.
        default: the default as written in the header (parsed like a caller's text), or
            None when the parameter is required.
        description: what it means.
    """

    name: str
    type: ParamType
    default: str | None
    description: str

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise FluxLibraryError(f"bad parameter name {self.name!r}")
        if self.type not in _TYPES:
            raise FluxLibraryError(
                f"parameter {self.name}: unknown type {self.type!r} (one of {sorted(_TYPES)})"
            )

    @property
    def required(self) -> bool:
        """True when the caller must give a value."""
        return self.default is None

    def literal(self, value: ParamValue, now: datetime) -> str:
        """``value`` as a Flux literal of this parameter's type; FluxLibraryError if it is not
        one. ``now`` anchors relative times (``-24h``, ``now``)."""
        try:
            return _literal(self.type, value, now)
        except (ValueError, TypeError, OverflowError) as exc:
            raise FluxLibraryError(f"parameter {self.name} ({self.type}): {exc}") from exc


@dataclass(frozen=True, slots=True)
class FluxQuery:
    """A parameterised query file of the library.

    Attributes:
        name: the file name without ``.flux``.
        description: the first paragraph of its header: what it answers.
        params: its declared parameters, in header order.
        source: the file's text, without ``params``.
    """

    name: str
    description: str
    params: tuple[FluxParam, ...]
    source: str

    def param(self, name: str) -> FluxParam:
        """The parameter called ``name``; FluxLibraryError naming the valid ones if none."""
        for param in self.params:
            if param.name == name:
                return param
        known = ", ".join(p.name for p in self.params)
        raise FluxLibraryError(f"{self.name} has no parameter {name!r} (it has: {known})")

    def render(self, values: Mapping[str, ParamValue], *, now: datetime | None = None) -> str:
        """The runnable Flux: the file with a ``params`` record of typed literals.

        ``values`` override the defaults; every required parameter needs one. Relative times
        are resolved against ``now`` (the current time when None). Raises FluxLibraryError
        for an unknown or missing parameter and for a value its type cannot take.
        """
        moment = _aware("now", now) if now is not None else datetime.now(UTC)
        for name in values:
            self.param(name)
        missing = [p.name for p in self.params if p.required and p.name not in values]
        if missing:
            raise FluxLibraryError(f"{self.name} needs a value for: {', '.join(missing)}")
        fields = []
        for param in self.params:
            value = values.get(param.name, param.default)
            assert value is not None  # required ones were checked above
            fields.append(f"    {param.name}: {param.literal(value, moment)},\n")
        record = "params = {\n" + "".join(fields) + "}\n"
        return _insert_after_imports(self.source, record)


def list_queries(folder: Path = FLUX_DIR) -> list[FluxQuery]:
    """Every query file in ``folder``, by name; files without a ``Parameters:`` block are
    function libraries, not queries, and are left out."""
    queries = []
    for path in sorted(folder.glob("*.flux")):
        query = _parse(path.stem, path.read_text(encoding="utf-8"))
        if query is not None:
            queries.append(query)
    return queries


def load_query(name: str, folder: Path = FLUX_DIR) -> FluxQuery:
    """The query ``name``; FluxLibraryError naming the available ones if there is none."""
    if _NAME.match(name):
        path = folder / f"{name}.flux"
        if path.is_file():
            query = _parse(name, path.read_text(encoding="utf-8"))
            if query is not None:
                return query
    known = ", ".join(q.name for q in list_queries(folder)) or "none"
    raise FluxLibraryError(f"no Flux query {name!r} (available: {known})")


def run_flux(client: InfluxDBClient, query: str, *, org: str | None = None) -> pl.DataFrame:
    """Run ``query`` and return every table it yields as one Polars frame.

    Columns are typed from the annotated CSV (times as UTC datetimes, ``long`` as Int64,
    ``double`` as Float64, ...); tables with different columns are stacked with nulls where a
    column is missing; ``result`` and ``table`` are dropped. Raises StoreError (with the
    server's reason for bad Flux) or StoreUnavailableError.
    """
    with api_errors(client, "running a Flux query"):
        tables = client.query_api().query(query, org=org or client.org)
    return tables_to_frame(tables)


def run_bounded_flux(
    settings: InfluxSettings, query: str, *, timeout_s: float, max_rows: int
) -> FluxResult:
    """Run an engineer's ``query`` within limits: the first ``max_rows`` rows, or
    FluxTimeoutError once it has run ``timeout_s`` seconds.

    The query runs on a client of its own (``settings``' URL, token and org) whose requests
    time out after ``timeout_s``, so a query that computes for longer before answering is cut
    off; one that keeps sending rows is stopped by the clock. Rows are read one at a time and
    the response is closed after ``max_rows`` (InfluxDB cancels a query whose client has
    gone), so neither the page's memory nor the server's work grows with the answer.

    Columns are typed from the values as :func:`run_flux` types them (``unsignedLong`` reads
    as Int64, and a column without any value as Null). Raises FluxLibraryError for a limit
    that is not positive, FluxTimeoutError, or StoreError and StoreUnavailableError as
    :func:`run_flux` does.
    """
    if not (math.isfinite(timeout_s) and timeout_s > 0) or max_rows < 1:
        raise FluxLibraryError(
            f"limits must be positive, got timeout_s={timeout_s}, max_rows={max_rows}"
        )
    deadline = time.monotonic() + timeout_s
    timeout_ms = max(1, math.ceil(timeout_s * 1000))
    with (
        make_client(settings, timeout_ms=timeout_ms) as client,
        api_errors(client, "running a Flux query"),
    ):
        try:
            records = client.query_api().query_stream(query, org=settings.influx_org)
            try:
                rows = _read(records, max_rows + 1, deadline)
            finally:
                records.close()  # closes the response: InfluxDB stops the query
        except ReadTimeoutError as exc:
            raise FluxTimeoutError(timeout_s) from exc
        if rows is None:
            raise FluxTimeoutError(timeout_s)
    return FluxResult(_records_frame(rows[:max_rows]), truncated=len(rows) > max_rows)


def _read(records: Iterator[FluxRecord], limit: int, deadline: float) -> list[FluxRecord] | None:
    """Up to ``limit`` records, or None when the clock passes ``deadline`` first."""
    rows = []
    for record in itertools.islice(records, limit):
        if time.monotonic() > deadline:
            return None
        rows.append(record)
    return rows


def _records_frame(records: Sequence[FluxRecord]) -> pl.DataFrame:
    """Streamed records as one frame, typed from their values; ``result`` and ``table``
    dropped, tables of different columns stacked with nulls where a column is missing."""
    frames = []
    # Consecutive records with the same columns come from tables of one shape.
    for _, group in itertools.groupby(records, key=lambda record: tuple(record.values)):
        rows = list(group)
        columns = [c for c in rows[0].values if c not in ("result", "table")]
        frames.append(
            pl.DataFrame({c: [row.values[c] for row in rows] for c in columns}, strict=False)
        )
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames, how="diagonal_relaxed")


def tables_to_frame(tables: Sequence[FluxTable]) -> pl.DataFrame:
    """Flux tables as one Polars frame (see :func:`run_flux`)."""
    frames = []
    for table in tables:
        columns = [c for c in table.columns if c.label not in ("result", "table")]
        schema = {c.label: _FLUX_TYPES.get(c.data_type, pl.String) for c in columns}
        data = {
            c.label: [_cell(record.values.get(c.label), c.data_type) for record in table.records]
            for c in columns
        }
        frames.append(pl.DataFrame(data, schema=schema))
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames, how="diagonal_relaxed")


def flux_string(value: str) -> str:
    """A Flux string literal: backslashes, quotes, interpolation and line breaks escaped."""
    if any(ord(ch) < 0x20 and ch not in "\t\n\r" for ch in value):
        raise ValueError(f"control character in {value!r}")
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("${", "\\${")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def flux_time(moment: datetime) -> str:
    """A Flux time literal (RFC 3339, UTC, microseconds) of an aware datetime."""
    utc = _aware("time", moment).astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def flux_duration(value: timedelta | str) -> str:
    """A positive Flux duration literal from a timedelta or a literal such as ``1h30m``."""
    if isinstance(value, timedelta):
        micros = value // timedelta(microseconds=1)
        if micros <= 0:
            raise ValueError(f"duration must be positive, got {value}")
        for unit, size in (("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000)):
            if micros % size == 0:
                return f"{micros // size}{unit}"
        return f"{micros}us"
    text = value.strip()
    if not _DURATION.match(text):
        raise ValueError(f"{value!r} is not a duration such as 30s, 15m, 1h, 1d")
    if not re.search(r"[1-9]", text):
        raise ValueError(f"duration must be positive, got {value!r}")
    return text


# --- parsing the files -------------------------------------------------------------------


def _parse(name: str, text: str) -> FluxQuery | None:
    """The query in ``text``, or None when it declares no parameters (a function library)."""
    header = []
    for line in text.splitlines():
        if not line.startswith("//"):
            break
        header.append(line)
    paragraphs = "\n".join(line[2:].strip() for line in header).split("\n\n")
    description = " ".join(paragraphs[0].split())
    try:
        start = next(i for i, line in enumerate(header) if line.strip() == "// Parameters:")
    except StopIteration:
        return None
    params: list[FluxParam] = []
    for line in header[start + 1 :]:
        match = _PARAM_LINE.match(line)
        if match and match["type"] in _TYPES:
            params.append(_param(match))
            continue
        more = _CONTINUATION.match(line)
        if more and params:
            last = params[-1]
            params[-1] = FluxParam(
                last.name, last.type, last.default, f"{last.description} {more['doc']}"
            )
            continue
        if line.strip() != "//":
            raise FluxLibraryError(f"{name}.flux: cannot read parameter line {line!r}")
        break
    if not description:
        raise FluxLibraryError(f"{name}.flux: the header must start with what the query answers")
    declared = {p.name for p in params}
    if len(declared) != len(params):
        raise FluxLibraryError(f"{name}.flux: a parameter is declared twice")
    undeclared = sorted(set(_USED.findall(text)) - declared)
    if undeclared:
        raise FluxLibraryError(f"{name}.flux uses undeclared parameters: {undeclared}")
    if re.search(r"^params\s*=", text, re.MULTILINE):
        raise FluxLibraryError(f"{name}.flux must not assign params itself")
    return FluxQuery(name=name, description=description, params=tuple(params), source=text)


def _param(match: re.Match[str]) -> FluxParam:
    default = match["default"]
    if default is not None and default.startswith('"'):
        default = str(json.loads(default))
    kind: ParamType = match["type"]  # type: ignore[assignment]  # checked against _TYPES
    return FluxParam(match["name"], kind, default, match["doc"].strip())


def _insert_after_imports(source: str, record: str) -> str:
    lines = source.splitlines(keepends=True)
    imports = [i for i, line in enumerate(lines) if _IMPORT.match(line)]
    if imports:
        at = imports[-1] + 1
    else:
        at = next((i for i, line in enumerate(lines) if not line.startswith("//")), len(lines))
    return "".join([*lines[:at], "\n", record, *lines[at:]])


# --- typed literals ----------------------------------------------------------------------


def _literal(kind: ParamType, value: ParamValue, now: datetime) -> str:
    if kind == "string":
        if not isinstance(value, str):
            raise TypeError(f"expected text, got {value!r}")
        return flux_string(value)
    if kind == "int":
        number = _int(value)
        if not -_INT64 <= number < _INT64:
            raise OverflowError(f"{number} does not fit a Flux int")
        return str(number)
    if kind == "float":
        return _float_literal(_float(value))
    if kind == "bool":
        return "true" if _bool(value) else "false"
    if kind == "time":
        return flux_time(_time(value, now))
    if isinstance(value, bool | int | float | datetime | date):
        raise TypeError(f"expected a duration, got {value!r}")
    return flux_duration(value)


def _int(value: ParamValue) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"expected an integer, got {value!r}")
    return int(value)


def _float(value: ParamValue) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"expected a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


def _float_literal(number: float) -> str:
    text = repr(number)
    if "e" in text or "E" in text:
        # Flux float literals have no exponent: let Flux parse the text instead.
        return f"float(v: {flux_string(text)})"
    return text if "." in text else f"{text}.0"


def _bool(value: ParamValue) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"expected true or false, got {value!r}")


def _time(value: ParamValue, now: datetime) -> datetime:
    if isinstance(value, datetime):
        return _aware("time", value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if not isinstance(value, str):
        raise TypeError(f"expected a time, got {value!r}")
    text = value.strip()
    if text == "now":
        return now
    relative = _RELATIVE.match(text)
    if relative:
        unit = _RELATIVE_UNITS[relative["unit"]]
        return now - timedelta(**{unit: int(relative["amount"])})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a time: use RFC 3339 (2024-05-01T12:00:00Z), a date "
            "(2024-05-01), now, or a relative time such as -24h or -7d"
        ) from None
    # A time typed without an offset is UTC, like every time fleetwatch stores.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _aware(name: str, moment: datetime) -> datetime:
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment.isoformat()}")
    return moment


_FLUX_TYPES: Final[Mapping[str, pl.DataType]] = {
    "string": pl.String(),
    "double": pl.Float64(),
    "long": pl.Int64(),
    "unsignedLong": pl.UInt64(),
    "boolean": pl.Boolean(),
    "dateTime:RFC3339": pl.Datetime("us", "UTC"),
    "dateTime:RFC3339Nano": pl.Datetime("us", "UTC"),
    "duration": pl.Int64(),
    "base64Binary": pl.Binary(),
}


def _cell(value: object, data_type: str) -> object:
    # influxdb-client leaves durations as their text; keep nanoseconds like Flux's int().
    if data_type == "duration" and isinstance(value, str):
        return int(value)
    return value
