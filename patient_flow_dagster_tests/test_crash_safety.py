"""Kill bronze ingestion with SIGKILL in the middle, run again: every event exactly once."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pyspark.sql import functions as F

from patient_flow_dagster.assets.bronze import bronze_patient_events
from patient_flow_dagster.ingestion.landing_writer import write_events
from patient_flow_dagster.ingestion.simulator import simulate
from patient_flow_dagster.model import tables as t

FILES, ROWS_PER_FILE = 30, 200


def test_sigkill_mid_ingestion_loses_and_duplicates_nothing(lakehouse):
    sim = simulate(FILES * ROWS_PER_FILE, seed=41, dirty_rates={"duplicate": 0})
    write_events(sim.events, lakehouse.landing_dir, events_per_file=ROWS_PER_FILE)
    lake_root = lakehouse.root / "lake"
    checkpoint = lake_root / "_checkpoints" / t.BRONZE_EVENTS.checkpoint
    commits = checkpoint / "commits"
    home = lakehouse.root / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PATIENT_FLOW_LAKE": str(lake_root),
        "PATIENT_FLOW_LANDING": str(lakehouse.landing_dir),
        "PATIENT_FLOW_MAX_FILES_PER_TRIGGER": "2",  # 15 micro-batches, each its own commit
    }
    dagster = Path(sys.executable).with_name("dagster")
    process = subprocess.Popen(
        [str(dagster), "asset", "materialize", "-m", "patient_flow_dagster.definitions",
         "--select", "bronze/patient_events"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while not (commits.is_dir() and len([p for p in commits.iterdir() if p.name.isdigit()]) >= 2):
        assert process.poll() is None, "the ingestion finished or died before it could be killed"
        assert time.monotonic() < deadline, "no streaming batch committed in time"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()

    # Where the kill landed: after at least two micro-batches, before the last, and bronze holds
    # exactly the batches its checkpoint committed, or one more whose Delta commit landed before
    # the checkpoint's (the replay of that batch must then write nothing).
    committed = [p for p in commits.iterdir() if p.name.isdigit()]
    batches, rows_per_batch = FILES // 2, 2 * ROWS_PER_FILE
    assert 2 <= len(committed) < batches, "the kill did not land mid-ingestion"
    partial = lakehouse.count(t.BRONZE_EVENTS)
    assert partial in (len(committed) * rows_per_batch, (len(committed) + 1) * rows_per_batch)

    assert lakehouse.materialize([bronze_patient_events], checks=False).success
    bronze = lakehouse.table(t.BRONZE_EVENTS)
    assert bronze.count() == len(sim.events)
    assert bronze.select("event_id").distinct().count() == len(sim.events)
    per_file = bronze.groupBy("source_file").count()
    assert per_file.count() == FILES
    assert per_file.filter(F.col("count") != ROWS_PER_FILE).count() == 0
