"""The warm Spark driver of `./run dev`: runs (separate processes, as the daemon launches them)
attach to one long-lived driver JVM instead of starting their own, and still produce the lake."""

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from patient_flow_dagster.ingestion.landing_writer import write_events
from patient_flow_dagster.ingestion.simulator import simulate
from patient_flow_dagster.model import tables as t
from patient_flow_dagster.resources import warm_driver
from patient_flow_dagster.resources.lake import DeltaLake
from patient_flow_dagster_tests.conftest import recent_now
from patient_flow_devtools.processes import stop_process_group
from patient_flow_devtools.warm_driver import start as start_driver

BIN = Path(sys.executable).parent
ATTACHED = re.compile(r"attached to the warm Spark driver (\S+)")


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    folder = tmp_path_factory.mktemp("warm_driver")
    connection = folder / "driver.json"
    process = start_driver(connection, {**os.environ, "TZ": "UTC"}, warm=False, timeout=180)
    yield folder, connection, process
    stop_process_group(process)


def _materialize(selection: str, folder: Path, connection: Path) -> str:
    """`dagster asset materialize` in its own process, as a run launched by `dagster dev` is."""
    env = {
        **os.environ,
        "PATIENT_FLOW_SPARK_DRIVER": str(connection),
        "PATIENT_FLOW_LAKE": str(folder / "lake"),
        "PATIENT_FLOW_LANDING": str(folder / "landing"),
        "DAGSTER_HOME": str(folder / "home"),
    }
    (folder / "home").mkdir(exist_ok=True)
    done = subprocess.run(
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "patient_flow_dagster.definitions",
            "--select",
            selection,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "RUN_SUCCESS" in output
    return output


def test_runs_attach_to_one_warm_driver_and_fill_the_lake(driver, spark):
    """Two runs, each its own process: bronze, then silver. Both attach to the same driver JVM
    (the second waits for nothing: the first freed the driver's lock when it exited)."""
    folder, connection, process = driver
    assert stat.S_IMODE(connection.stat().st_mode) == 0o600  # it holds the gateway secret
    details = json.loads(connection.read_text())
    assert details["pid"] == process.pid

    batch = simulate(600, seed=31, now=recent_now(), span_days=10)
    write_events(batch.events, folder / "landing", events_per_file=300)
    first = _materialize("bronze/patient_events", folder, connection)
    second = _materialize(
        "silver/patient_events,silver/patient_events_quarantine", folder, connection
    )
    [app_first] = set(ATTACHED.findall(first))
    [app_second] = set(ATTACHED.findall(second))
    assert app_first == app_second  # the same driver JVM served both runs
    assert app_first != spark.sparkContext.applicationId

    lake = DeltaLake(root=str(folder / "lake"))
    count = {
        table: lake.read(spark, table).count()
        for table in (t.BRONZE_EVENTS, t.SILVER_EVENTS, t.QUARANTINE)
    }
    distinct = lake.read(spark, t.BRONZE_EVENTS).select("event_id").distinct().count()
    assert count[t.BRONZE_EVENTS] == 600
    assert count[t.SILVER_EVENTS] + count[t.QUARANTINE] == distinct
    assert count[t.SILVER_EVENTS] > 0


def test_no_driver_behind_the_connection_means_no_attach(tmp_path):
    assert warm_driver.attach(str(tmp_path / "missing.json")) is None
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps({"port": 1, "secret": "x", "pid": int(gone)}))
    assert warm_driver.attach(str(stale)) is None  # the run then starts its own session
