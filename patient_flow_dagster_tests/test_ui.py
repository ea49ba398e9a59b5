"""A real browser looks at the Dagster UI: the silver asset's Checks tab lists every rule, its
overview every column with its description, and the charts in the census's and silver's metadata
are shown as images."""

import html
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from dagster import AssetMaterialization, DagsterInstance

from patient_flow_dagster.assets.charts import line_chart
from patient_flow_dagster.model.rules import RULES
from patient_flow_dagster.model.tables import DEPARTMENT_CENSUS_HOURLY, SILVER_EVENTS
from patient_flow_dagster_tests.services import free_port
from patient_flow_devtools.processes import stop_process_group

ROOT = Path(__file__).resolve().parents[1]
SMTP_PASSWORD = "ui-test-password"  # a value the UI must never show
RESOURCE_QUERY = """
query ($selector: ResourceSelector!) {
  topLevelResourceDetailsOrError(resourceSelector: $selector) {
    __typename
    ... on ResourceDetails {
      configFields { name description }
      configuredValues { key value type }
    }
  }
}
"""
ARTIFACTS = ROOT / "artifacts"  # git-ignored
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
    "--virtual-time-budget=20000",
]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("dagster_home")


@pytest.fixture(scope="module")
def webserver(home):
    """dagster-webserver on loopback, in its own process group, stopped with the group."""
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PATIENT_FLOW_LAKE": str(home / "lake"),
        "PATIENT_FLOW_SMTP_PASSWORD": SMTP_PASSWORD,
    }
    webserver_bin = Path(sys.executable).with_name("dagster-webserver")
    process = subprocess.Popen(
        [
            str(webserver_bin),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            str(ROOT / "workspace.yaml"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # own process group; default signal handlers
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/server_info", timeout=2)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("dagster-webserver did not start") from None
                time.sleep(1)
        yield url
    finally:
        stop_process_group(process)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Debian's chromium package is required for the UI test (apt-get install chromium)"
    return found


def rendered(page: str, tmp_path) -> str:
    """The page's DOM after headless Chromium ran its scripts."""
    return subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'dom'}", "--dump-dom", page],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout


def resource_details(webserver: str, resource: str) -> dict:
    """What the UI's resource page shows, from the webserver's GraphQL API."""
    selector = {
        "repositoryLocationName": "patient_flow_dagster.definitions",
        "repositoryName": "__repository__",
        "resourceName": resource,
    }
    request = urllib.request.Request(
        f"{webserver}/graphql",
        data=json.dumps({"query": RESOURCE_QUERY, "variables": {"selector": selector}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        details = json.load(response)["data"]["topLevelResourceDetailsOrError"]
    assert details["__typename"] == "ResourceDetails", details
    return details


def test_the_resource_pages_name_the_variable_behind_each_setting(webserver, tmp_path):
    lake = resource_details(webserver, "lake")
    values = {v["key"]: (v["type"], v["value"]) for v in lake["configuredValues"]}
    assert values["root"] == ("ENV_VAR", "PATIENT_FLOW_LAKE")
    descriptions = {f["name"]: f["description"] for f in lake["configFields"]}
    assert descriptions["root"].endswith("(set by PATIENT_FLOW_LAKE)")
    assert descriptions["catalog"].endswith("(set by PATIENT_FLOW_CATALOG)")
    alerts = resource_details(webserver, "alerts")
    values = {v["key"]: (v["type"], v["value"]) for v in alerts["configuredValues"]}
    assert values["smtp_password"] == ("ENV_VAR", "PATIENT_FLOW_SMTP_PASSWORD")
    assert values["ui_url"] == ("VALUE", '"http://127.0.0.1:3000"')  # the default
    assert SMTP_PASSWORD not in json.dumps(alerts)
    page = f"{webserver}/locations/patient_flow_dagster.definitions/resources/lake"
    dom = rendered(page, tmp_path)
    assert "PATIENT_FLOW_LAKE" in dom


def test_checks_tab_lists_every_quality_rule(webserver, tmp_path):
    page = f"{webserver}/assets/silver/patient_events?view=checks"
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "silver_checks.png"
    browser = [chromium(), *CHROMIUM_FLAGS]
    dom = subprocess.run(
        [*browser, f"--user-data-dir={tmp_path / 'dom'}", "--dump-dom", page],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    subprocess.run(
        [*browser, f"--user-data-dir={tmp_path / 'shot'}", f"--screenshot={screenshot}", page],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert screenshot.stat().st_size > 10_000
    assert "Checks (" in dom
    for name in [rule.name for rule in RULES] + ["silver_reconciles_with_bronze"]:
        assert name in dom, f"check {name} not listed on {page}"


def test_the_overview_shows_every_column_with_its_description(webserver, tmp_path):
    page = f"{webserver}/assets/silver/patient_events?view=overview"
    dom = rendered(page, tmp_path)
    for column in SILVER_EVENTS.columns:
        assert column.name in dom, f"column {column.name} not shown on {page}"
        assert html.escape(column.description, quote=False) in dom, column.name


def chart_shown(page: str, entry: str, screenshot: Path) -> dict:
    """Open `page` in headless Chromium (puppeteer-core), open the Markdown of the metadata
    `entry`, and return the image it shows: alt text, natural and shown width."""
    script = Path(__file__).with_name("chart_in_browser.cjs")
    done = subprocess.run(
        ["node", str(script), chromium(), page, entry, str(screenshot)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "NODE_PATH": str(ROOT / "tools" / "node_modules")},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_charts_in_metadata_are_shown_as_images(webserver, home):
    """The latest materialization's charts, as the census and silver steps render them."""
    instance = DagsterInstance.from_config(str(home))
    end = datetime(2026, 3, 2, 12, tzinfo=timezone.utc)
    occupancy = [
        (department, end - timedelta(hours=h), share * (1 + (h % 12) / 24))
        for department, share in (("ICU", 0.6), ("Surgery", 0.4))
        for h in range(48)
    ]
    rates = [
        (rule.name, end - timedelta(hours=run), 0.002 * (i + 1))
        for i, rule in enumerate(RULES)
        for run in range(20)
        if rule.quarantines
    ]
    charts = {
        DEPARTMENT_CENSUS_HOURLY: (
            "occupancy_trend",
            line_chart("Occupancy per department, last 48 hours (UTC)", occupancy, "occupancy"),
        ),
        SILVER_EVENTS: (
            "quarantine_rate_trend",
            line_chart("Quarantine rate per rule, last 20 runs", rates, "rows quarantined"),
        ),
    }
    for table, (entry, chart) in charts.items():
        instance.report_runless_asset_event(
            AssetMaterialization(asset_key=table.key, metadata={entry: chart})
        )
    ARTIFACTS.mkdir(exist_ok=True)
    for table, (entry, chart) in charts.items():
        page = f"{webserver}/assets/{table.layer}/{table.name}?view=overview"
        shown = chart_shown(page, entry, ARTIFACTS / f"{entry}.png")
        assert shown["alt"] == chart.value[2 : chart.value.index("]")]
        assert (shown["width"], shown["height"]) == (640, 288)  # 8 x 3.6 inches at 80 dpi
        assert shown["shownWidth"] > 300, shown
