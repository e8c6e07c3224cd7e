"""PDF rendering of the weekly report (ReportLab).

``render_pdf(report, branding)`` returns the PDF bytes: a cover, the executive summary, one
section per source (uptime, tickets, changes, backups, security, sites) and recommendations.
"""

from __future__ import annotations

from reporting.models import Branding, Report
from reporting.pdf.builder import render


def render_pdf(report: Report, branding: Branding) -> bytes:
    """The report as a PDF document (A4). Same report in, same text out."""
    return render(report, branding)


__all__ = ["render_pdf"]
