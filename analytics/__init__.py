"""Analytics: pure Polars computations over data loaded from the stores.

One concept per module: ``fleet``, ``alarms``, ``commands``, ``storage`` and ``trends`` hold
the reports (functions ``DataFrame -> DataFrame`` that say which question they answer);
``load`` fills their input frames from PostgreSQL and InfluxDB; ``selection`` is what a
report covers. The report modules do no I/O, so each is tested on hand-built frames.
"""

from analytics.selection import AnalyticsError, Period, ReportFilter

__all__ = ["AnalyticsError", "Period", "ReportFilter"]
