"""The dashboard as served, in a real headless Chromium: every page draws the dataset's numbers.

The browser is Debian's Chromium (``scripts/browser.sh`` installs it); Playwright only drives
it. Each page's screenshot is saved under ``test-artifacts/``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import psycopg
import pytest
from playwright.sync_api import Locator, Page, ViewportSize, expect, sync_playwright

from fleetwatch.settings import PostgresSettings
from tests.support.people import password_of
from tests.support.receivers import wait_until

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
    PageCheck("Map", "map", {"On map": "3", "With open alarms": "2"}, chart_text="open alarm"),
    PageCheck("Device", "device", {}, chart_text=None),
)
ADMIN_ONLY: Final = (
    PageCheck("Audit", "audit", {"Refused or failed": "0"}, chart_text=None),
    PageCheck("Users", "users", {}, chart_text=None),
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


def _sign_in(page: Page, base_url: str, username: str, timeout_ms: float) -> float:
    """Sign in through the form; returns the milliseconds from submitting to the first page
    drawn."""
    page.goto(base_url)
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(password_of(username))
    started = time.perf_counter()
    page.get_by_role("button", name="Sign in").click()
    _wait_rendered(page, "Fleet", timeout_ms)
    return (time.perf_counter() - started) * 1000


def _open(page: Page, title: str, timeout_ms: float) -> float:
    """Open a page from the sidebar (in the signed-in session); returns its render time."""
    started = time.perf_counter()
    # Exact: an icon's name is text too (Alarms' bell is "notifications").
    links = page.get_by_test_id("stSidebarNavLink")
    links.filter(has=page.get_by_text(title, exact=True)).click()
    _wait_rendered(page, title, timeout_ms)
    return (time.perf_counter() - started) * 1000


def test_every_page_renders_in_a_browser(dashboard_url: str, browser_page: Page) -> None:
    """Signed in as an admin, each page, opened from the sidebar, shows the dataset's numbers
    without error; the sign-in and render times are printed."""
    page = browser_page
    times = {"sign-in": _sign_in(page, dashboard_url, "ada", FIRST_RENDER_MS)}
    expect(page.get_by_test_id("stSidebarNavLink")).to_have_count(len(PAGES) + len(ADMIN_ONLY))
    for check in (*PAGES, *ADMIN_ONLY):
        try:
            times[check.title] = _open(page, check.title, RENDER_MS)
            _assert_shows(page, check)
        finally:  # also when it fails: the picture says why
            _screenshot(page, check.title.lower())
    sys.stdout.write(
        "render times (ms): " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()) + "\n"
    )


def _form_button(page: Page, name: str) -> Locator:
    return page.get_by_test_id("stFormSubmitButton").get_by_role("button", name=name)


def _acknowledge_the_alarm(page: Page, note: str) -> None:
    """Pick the open panel alarm on Events, write a note and press Acknowledge."""
    _open(page, "Events", RENDER_MS)
    page.get_by_test_id("stSelectbox").filter(has_text="Item").click()
    page.get_by_role("option").filter(has_text="alarm").first.click()
    page.get_by_label("Note").fill(note)
    _form_button(page, "Acknowledge").click()


def test_viewer_reads_and_is_refused_in_a_browser(
    dashboard_url: str, browser_page: Page, pg_settings: PostgresSettings
) -> None:
    """A viewer sees no admin page; pressing Acknowledge is refused with the reason, and
    the refusal is in the audit trail."""
    page = browser_page
    _sign_in(page, dashboard_url, "vic", FIRST_RENDER_MS)
    links = page.get_by_test_id("stSidebarNavLink")
    expect(links).to_have_count(len(PAGES))
    expect(links.filter(has=page.get_by_text("Audit", exact=True))).to_have_count(0)
    _acknowledge_the_alarm(page, "trying")
    expect(page.get_by_text("vic is a viewer and may not acknowledge alarm")).to_be_visible()
    _screenshot(page, "viewer-refused")
    with psycopg.connect(str(pg_settings.database_url)) as conn:
        assert conn.execute(
            "SELECT level, message FROM system_logs WHERE username = 'vic' ORDER BY id DESC"
        ).fetchone() == ("WARNING", f"refused: acknowledge alarm {_open_panic(conn)}")
        assert conn.execute("SELECT count(*) FROM alarm_events WHERE acknowledged").fetchone() == (
            0,
        )


def _open_panic(conn: psycopg.Connection[Any]) -> int:
    """The dataset's open PANIC2 (its TAMPER is listed as the rule event standing for it)."""
    row = conn.execute(
        "SELECT id FROM alarm_events WHERE resolved_at IS NULL AND alarm_type = 'PANIC2'"
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_operator_acknowledges_in_a_browser(
    dashboard_url: str, browser_page: Page, pg_settings: PostgresSettings
) -> None:
    """An operator acknowledges the open panel alarm from Events; it is stored with their
    name and note, and the page says so."""
    page = browser_page
    _sign_in(page, dashboard_url, "ana", FIRST_RENDER_MS)
    expect(page.get_by_test_id("stSidebarNavLink")).to_have_count(len(PAGES))
    _acknowledge_the_alarm(page, "guard on the way")
    expect(page.get_by_text("Acknowledged by ana")).to_be_visible()
    _screenshot(page, "operator-acknowledged")
    with psycopg.connect(str(pg_settings.database_url)) as conn:
        assert conn.execute(
            "SELECT acknowledged_by, notes FROM alarm_events WHERE acknowledged"
        ).fetchone() == ("ana", "guard on the way")


def test_sign_in_failures_lock_out_in_a_browser(
    dashboard_url: str, browser_page: Page, pg_settings: PostgresSettings
) -> None:
    """Wrong passwords say only that; after repeated failures the right one is refused too."""
    page = browser_page
    page.goto(dashboard_url)
    with psycopg.connect(str(pg_settings.database_url), autocommit=True) as conn:
        for attempt in range(4):
            page.get_by_role("textbox", name="Username").fill("bo")
            page.get_by_role("textbox", name="Password").fill(f"wrong-{attempt}-password")
            page.get_by_role("button", name="Sign in").click()
            # Each attempt is recorded before the next is typed: none overtakes another.
            wait_until(lambda n=attempt + 1: _failures(conn, "bo") == n, timeout_s=RENDER_MS / 1000)
            expect(page.get_by_text("wrong username or password")).to_be_visible()
        page.get_by_role("textbox", name="Username").fill("bo")
        page.get_by_role("textbox", name="Password").fill(password_of("bo"))
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text("too many failed sign-ins")).to_be_visible()
    expect(page.get_by_test_id("stSidebarNavLink")).to_have_count(0)


def _failures(conn: psycopg.Connection[Any], username: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM system_logs WHERE username = %s AND message LIKE 'sign-in failed%%'",
        [username],
    ).fetchone()
    return int(row[0]) if row else 0
