"""A real browser looks at the Dagster UI: the silver asset's Checks tab lists every rule, and its
overview every column with its description."""
import html
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from patient_flow_dagster.model.rules import RULES
from patient_flow_dagster.model.tables import SILVER_EVENTS
from patient_flow_dagster_tests.services import free_port
from patient_flow_devtools.processes import stop_process_group

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"  # git-ignored
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1000", "--virtual-time-budget=20000",
]


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    """dagster-webserver on loopback, in its own process group, stopped with the group."""
    home = tmp_path_factory.mktemp("dagster_home")
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "PATIENT_FLOW_LAKE": str(home / "lake")}
    webserver_bin = Path(sys.executable).with_name("dagster-webserver")
    process = subprocess.Popen(
        [str(webserver_bin), "-h", "127.0.0.1", "-p", str(port), "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
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
                    raise RuntimeError("dagster-webserver did not start")
                time.sleep(1)
        yield url
    finally:
        stop_process_group(process)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Debian's chromium package is required for the UI test (apt-get install chromium)"
    return found


def test_checks_tab_lists_every_quality_rule(webserver, tmp_path):
    page = f"{webserver}/assets/silver/patient_events?view=checks"
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "silver_checks.png"
    browser = [chromium(), *CHROMIUM_FLAGS]
    dom = subprocess.run(
        [*browser, f"--user-data-dir={tmp_path / 'dom'}", "--dump-dom", page],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    subprocess.run(
        [*browser, f"--user-data-dir={tmp_path / 'shot'}", f"--screenshot={screenshot}", page],
        capture_output=True, timeout=120, check=True,
    )
    assert screenshot.stat().st_size > 10_000
    assert "Checks (" in dom
    for name in [rule.name for rule in RULES] + ["silver_reconciles_with_bronze"]:
        assert name in dom, f"check {name} not listed on {page}"


def test_the_overview_shows_every_column_with_its_description(webserver, tmp_path):
    page = f"{webserver}/assets/silver/patient_events?view=overview"
    dom = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'dom'}", "--dump-dom", page],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    for column in SILVER_EVENTS.columns:
        assert column.name in dom, f"column {column.name} not shown on {page}"
        assert html.escape(column.description, quote=False) in dom, column.name
