"""Kill bronze ingestion with SIGKILL in the middle, run again: every event exactly once."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from patient_flow_dagster.assets.bronze import BRONZE_TXN_APP, bronze_patient_events
from patient_flow_dagster.ingestion.landing_writer import write_events
from patient_flow_dagster.ingestion.simulator import simulate
from patient_flow_dagster.model import tables as t

pytestmark = pytest.mark.faults

FILES, ROWS_PER_FILE = 30, 200


def _batch_commits(delta_log: Path) -> list[int]:
    """Bronze batches whose Delta commit landed: the txn action each batch's commit carries."""
    batches = []
    for commit in sorted(delta_log.glob("*.json")):
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if action.get("txn", {}).get("appId") == BRONZE_TXN_APP:
                batches.append(action["txn"]["version"])
    return batches


def test_sigkill_between_bronze_commits_and_the_ledger_loses_and_duplicates_nothing(lakehouse):
    sim = simulate(FILES * ROWS_PER_FILE, seed=41, dirty_rates={"duplicate": 0})
    write_events(sim.events, lakehouse.landing_dir, events_per_file=ROWS_PER_FILE)
    lake_root = lakehouse.root / "lake"
    delta_log = lake_root / t.BRONZE_EVENTS.layer / t.BRONZE_EVENTS.name / "_delta_log"
    home = lakehouse.root / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PATIENT_FLOW_LAKE": str(lake_root),
        "PATIENT_FLOW_LANDING": str(lakehouse.landing_dir),
        "PATIENT_FLOW_MAX_FILES_PER_TRIGGER": "2",  # 15 batches, each its own bronze commit
    }
    dagster = Path(sys.executable).with_name("dagster")
    process = subprocess.Popen(
        [
            str(dagster),
            "asset",
            "materialize",
            "-m",
            "patient_flow_dagster.definitions",
            "--select",
            "bronze/patient_events",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while not (delta_log.is_dir() and len(_batch_commits(delta_log)) >= 2):
        assert process.poll() is None, "the ingestion finished or died before it could be killed"
        assert time.monotonic() < deadline, "no bronze batch committed in time"
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()

    # Where the kill landed: after at least two bronze batch commits and before the last, so
    # before the ledger's commit that marks the versions ingested, which comes after all
    # batches: every version is still pending, while bronze holds exactly the committed batches.
    committed = _batch_commits(delta_log)
    batches, rows_per_batch = FILES // 2, 2 * ROWS_PER_FILE
    assert committed == list(range(1, len(committed) + 1))
    assert 2 <= len(committed) < batches, "the kill did not land mid-ingestion"
    ledger = lakehouse.table(t.LANDING_FILES)
    assert ledger.count() == FILES
    assert {r.status for r in ledger.collect()} == {"pending"}
    assert lakehouse.count(t.BRONZE_EVENTS) == len(committed) * rows_per_batch

    assert lakehouse.materialize([bronze_patient_events], checks=False).success
    # The replay skipped the committed batches (Delta's txn) and wrote the rest once each.
    assert _batch_commits(delta_log) == list(range(1, batches + 1))
    bronze = lakehouse.table(t.BRONZE_EVENTS)
    assert bronze.count() == len(sim.events)
    assert bronze.select("event_id").distinct().count() == len(sim.events)
    per_file = bronze.groupBy("source_file").count()
    assert per_file.count() == FILES
    assert per_file.filter(F.col("count") != ROWS_PER_FILE).count() == 0
    ledger = lakehouse.table(t.LANDING_FILES).collect()
    assert len(ledger) == FILES and {r.status for r in ledger} == {"ingested"}
