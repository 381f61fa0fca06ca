"""Small Polars building blocks shared by the report modules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import polars as pl

from analytics.selection import AnalyticsError

UTC_TIME: Final = pl.Datetime("us", "UTC")
DEVICE_COLUMNS: Final = ("device_id", "hostname", "zone", "country")
"""The columns naming a device in every report that lists devices."""


def require_columns(frame: pl.DataFrame, schema: Mapping[str, pl.DataType], what: str) -> None:
    """Raise AnalyticsError naming the columns of ``schema`` that ``frame`` lacks."""
    missing = [name for name in schema if name not in frame.columns]
    if missing:
        raise AnalyticsError(f"{what} frame lacks columns {missing}")


def seconds_between(first: str, then: str) -> pl.Expr:
    """Seconds from column ``first`` to column ``then`` (null when either is null)."""
    return (pl.col(then) - pl.col(first)).dt.total_microseconds() / 1_000_000


def share(part: pl.Expr, whole: pl.Expr) -> pl.Expr:
    """``part / whole`` as a fraction, null when ``whole`` is 0."""
    return pl.when(whole > 0).then(part / whole).otherwise(None)


def quantile(column: str | pl.Expr, q: float) -> pl.Expr:
    """The ``q`` quantile of non-null values, linearly interpolated (numpy's default)."""
    expr = pl.col(column) if isinstance(column, str) else column
    return expr.drop_nulls().quantile(q, interpolation="linear")


def count_where(condition: pl.Expr) -> pl.Expr:
    """How many rows satisfy ``condition`` (nulls count as false)."""
    return condition.fill_null(value=False).sum().cast(pl.Int64)
