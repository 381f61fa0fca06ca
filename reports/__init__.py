"""Scheduled reports (seed 004's reports): a daily and a weekly summary of the fleet, its
alarms and events, notifications, commands and storage savings per kind, rendered to PDF,
stored in PostgreSQL and emailed to a notification template's recipients.

``content`` gathers the figures of a period, ``pdf`` renders them (fpdf2: maintained, pure
Python, no system libraries to install, enough for tables), ``schedule`` says which reports
are due and makes them once however many workers run.
"""

from reports.content import Report, Section, gather
from reports.pdf import render

__all__ = ["Report", "Section", "gather", "render"]
