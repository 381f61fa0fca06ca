"""A report as a PDF: a title, the period, and each section as a table."""

from __future__ import annotations

from decimal import Decimal

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from reports.content import Report

__all__ = ["render"]

_MARGIN = 15


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, Decimal | float):
        return f"{value:,.1f}" if value % 1 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    # The core fonts speak Latin-1: a character beyond it is shown as "?".
    return str(value).encode("latin-1", "replace").decode("latin-1")


def render(report: Report) -> bytes:
    """The PDF of ``report``."""
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=_MARGIN)
    pdf.set_margins(_MARGIN, _MARGIN)
    pdf.set_title(report.title)
    pdf.set_creator("fleetwatch")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, _cell(report.title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 9)
    pdf.cell(
        0, 6,
        f"Period {report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC; made "
        f"{report.made_at:%Y-%m-%d %H:%M} UTC",
        new_x=XPos.LMARGIN, new_y=YPos.NEXT,
    )  # fmt: skip
    for section in report.sections:
        pdf.ln(4)
        pdf.set_font("Helvetica", "B", 12)
        pdf.cell(0, 8, _cell(section.title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("Helvetica", "", 9)
        if not section.rows:
            pdf.cell(0, 6, "Nothing in this period.", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        else:
            with pdf.table(text_align="LEFT", line_height=5) as table:
                table.row([_cell(c) for c in section.columns])
                for row in section.rows:
                    table.row([_cell(v) for v in row])
        if section.note:
            pdf.set_font("Helvetica", "I", 8)
            pdf.multi_cell(0, 4, _cell(section.note), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())
