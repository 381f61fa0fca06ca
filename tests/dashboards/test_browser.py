"""The dashboard as served, in a real headless Chromium: every page draws the dataset's numbers.

The browser is Debian's Chromium (``scripts/browser.sh`` installs it); Playwright only drives
it. Each page's screenshot is saved under ``test-artifacts/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest
from playwright.sync_api import Page, ViewportSize, expect, sync_playwright

CHROMIUM: Final = Path("/usr/bin/chromium")
CHROMIUM_ARGS: Final = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium keeps calling Google's services, which the CI network refuses.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
]
ARTIFACTS: Final = Path(__file__).resolve().parents[2] / "test-artifacts"
VIEWPORT: Final = ViewportSize(width=1400, height=1000)
MAX_SCREENSHOT_HEIGHT: Final = 6000
FIRST_RENDER_MS: Final = 30_000  # the first run imports the analytics and opens connections
RENDER_MS: Final = 15_000


@dataclass(frozen=True, slots=True)
class PageCheck:
    """What one page must show.

    Attributes:
        title: the page's title, its heading and the screenshot's name.
        path: the page's URL path.
        metrics: metric label to the value shown.
        chart_text: a label the page's chart draws from the data (axis or legend).
    """

    title: str
    path: str
    metrics: dict[str, str]
    chart_text: str | None  # None for a page without a chart


PAGES: Final = (
    PageCheck(
        "Fleet",
        "",
        {
            "Devices": "7",
            "Online": "6",
            "Offline": "1",
            "Stale (> 1 h)": "1",
            "Not synced": "1",
            "Lowest free heap": "50,000",
        },
        chart_text="OFFLINE",  # the device state of ESG_ALARM_0003
    ),
    PageCheck(
        "Alarms",
        "alarms",
        {
            "Alarms raised": "2",
            "Active now": "2",
            "Critical active": "1",
            "Acknowledge, median": "5.0 s",
            "Resolve, median": "20.0 s",
        },
        chart_text="TAMPER",
    ),
    PageCheck(
        "Commands",
        "commands",
        {
            "Commands": "3",
            "Success rate": "50.0%",
            "Failed or timed out": "1",
            "Sent → completed, p50": "3.0 s",
        },
        chart_text="completed",
    ),
    PageCheck(
        "Trends",
        "trends",
        {"Mean over the period": "22.00", "Source": "Raw points"},
        chart_text="Temperature (°C)",
    ),
    PageCheck(
        "Telemetry",
        "telemetry",
        {"Mean over the period": "3.00", "Devices of the type": "2"},
        chart_text="vibration (mm/s)",
    ),
    PageCheck(
        "Robots",
        "robots",
        {"Robots": "2", "Low battery": "1", "Servos hot": "1", "Job success": "50.0%"},
        chart_text="battery (%)",
    ),
    PageCheck(
        "Storage",
        "storage",
        {"Heartbeats received": "720", "Points written": "50", "Reduction": "93.1%"},
        chart_text="saved",
    ),
    PageCheck(
        "Events",
        "events",
        {"Open critical": "2", "Open warning": "1", "Open info": "0"},
        chart_text=None,
    ),
    PageCheck("Rules", "rules", {}, chart_text=None),
    PageCheck(
        "Notifications",
        "notifications",
        {"Sent": "2", "Pending": "0", "Failed": "1", "Cancelled": "0"},
        chart_text=None,
    ),
    PageCheck("Reports", "reports", {"Reports": "1", "Emailed": "1"}, chart_text=None),
)


@pytest.fixture
def browser_page() -> Iterator[Page]:
    """A fresh page in headless Chromium, closed after the test."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/browser.sh", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(RENDER_MS)  # bounds every look-up that waits
            yield page
        finally:
            browser.close()


def _wait_rendered(page: Page, title: str, timeout_ms: float) -> None:
    """Wait until the page's script has finished and Streamlit shows it as done."""
    expect(page.get_by_role("heading", name=title, level=1)).to_be_visible(timeout=timeout_ms)
    app = page.get_by_test_id("stApp")
    expect(app).to_have_attribute("data-test-script-state", "notRunning", timeout=timeout_ms)
    expect(page.get_by_test_id("stStatusWidget")).to_be_hidden(timeout=timeout_ms)


def _metric_value(page: Page, label: str) -> str:
    metric = page.get_by_test_id("stMetric").filter(
        has=page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    )
    return metric.get_by_test_id("stMetricValue").inner_text()


def _assert_shows(page: Page, check: PageCheck) -> None:
    """The page's metrics and chart carry the dataset's numbers, and nothing failed."""
    failures = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
    expect(failures, f"{check.title}: error shown").to_have_count(0)
    shown = {label: _metric_value(page, label) for label in check.metrics}
    assert shown == check.metrics, check.title
    if check.chart_text is None:
        tables = page.locator('[data-testid="stDataFrame"], [data-testid="stTable"]')
        expect(tables.first, f"{check.title}: a table").to_be_visible()
        return
    chart = page.get_by_test_id("stVegaLiteChart").first
    drawn = chart.get_by_text(check.chart_text, exact=True).first
    expect(drawn, f"{check.title}: chart label {check.chart_text!r}").to_be_visible()


def _screenshot(page: Page, name: str) -> None:
    """Save the whole page: Streamlit scrolls inside its main area, not the document, so
    the viewport grows to the content's height first."""
    height = page.get_by_test_id("stMain").evaluate("main => main.scrollHeight")
    tall = ViewportSize(width=VIEWPORT["width"], height=min(max(height, 1), MAX_SCREENSHOT_HEIGHT))
    page.set_viewport_size(tall)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True, animations="disabled")
    page.set_viewport_size(VIEWPORT)


def test_every_page_renders_in_a_browser(dashboard_url: str, browser_page: Page) -> None:
    """Each of the eleven pages, opened by its URL, shows the dataset's numbers without error."""
    page = browser_page
    timeout_ms = FIRST_RENDER_MS
    for check in PAGES:
        page.goto(f"{dashboard_url}/{check.path}")
        try:
            _wait_rendered(page, check.title, timeout_ms)
            _assert_shows(page, check)
        finally:  # also when it fails: the picture says why
            _screenshot(page, check.title.lower())
        expect(page.get_by_test_id("stSidebarNavLink")).to_have_count(len(PAGES))
        timeout_ms = RENDER_MS
