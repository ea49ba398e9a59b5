"""The landing sensor against a real ephemeral instance, and a sensor-driven run to gold."""
import json
import os
from pathlib import Path

from dagster import DagsterInstance, build_sensor_context

from patient_flow_dagster.definitions import build_definitions
from patient_flow_dagster.ingestion.landing_writer import (
    events_table,
    write_landing_file,
)
from patient_flow_dagster.ingestion.simulator import simulate
from patient_flow_dagster.model import tables as t
from patient_flow_dagster.resources.landing import LocalLandingZone
from patient_flow_dagster.sensors import build_landing_sensor
from patient_flow_dagster.settings import Settings
from patient_flow_dagster_tests.conftest import recent_now

landing_sensor = build_landing_sensor(Settings.from_env({}).sensor_interval)


def tick(instance, landing_dir, cursor=None):
    context = build_sensor_context(
        instance=instance, cursor=cursor,
        resources={"landing": LocalLandingZone(path=str(landing_dir))},
    )
    return landing_sensor.evaluate_tick(context)


def drop_files(folder, names, rows=5):
    table = events_table(simulate(rows, seed=1).events)
    for name in names:
        write_landing_file(table, folder, name)


def test_sensor_fires_once_per_set_of_new_files(tmp_path):
    instance = DagsterInstance.ephemeral()
    landing = tmp_path / "landing"
    landing.mkdir()

    empty = tick(instance, landing)
    assert not empty.run_requests and "no new files" in empty.skip_message

    drop_files(landing, ["a.parquet", "b.parquet", "c.parquet"])
    (landing / ".d.parquet.tmp").write_bytes(b"half written")  # still being written: ignored
    (landing / "_e.parquet").write_bytes(b"hidden")
    first = tick(instance, landing)
    assert len(first.run_requests) == 1
    request = first.run_requests[0]
    assert request.tags["patient_flow/new_files"] == "3"
    assert request.tags["patient_flow/files"] == "a.parquet, b.parquet, c.parquet"

    # The same tick evaluated again (cursor not yet saved) asks for the very same run.
    replay = tick(instance, landing)
    assert replay.run_requests[0].run_key == request.run_key

    same = tick(instance, landing, cursor=first.cursor)
    assert not same.run_requests and same.skip_message

    drop_files(landing, ["f.parquet", "g.parquet"])
    os.utime(landing / "f.parquet", (1e10, 1e10))  # an mtime far ahead: still a new file
    second = tick(instance, landing, cursor=first.cursor)
    assert len(second.run_requests) == 1
    assert second.run_requests[0].tags["patient_flow/files"] == "f.parquet, g.parquet"
    assert second.run_requests[0].run_key != request.run_key
    assert json.loads(second.cursor)["mtime"] == 1e10

    assert not tick(instance, landing, cursor=second.cursor).run_requests


def test_sensor_tick_runs_the_pipeline_to_gold(lakehouse):
    """Simulator -> landing -> sensor tick -> run of the requested job -> gold, reconciled."""
    settings = Settings.from_env({"PATIENT_FLOW_LAKE": str(lakehouse.root / "lake"), "PATIENT_FLOW_LANDING": str(lakehouse.landing_dir)})
    defs = build_definitions(settings)
    sim = simulate(500, seed=31, now=recent_now(), span_days=20)
    write_landing_file(events_table(sim.events), lakehouse.landing_dir)
    instance = DagsterInstance.ephemeral()

    sensor_def = defs.resolve_sensor_def("landing_sensor")
    landing = {"landing": LocalLandingZone(path=settings.landing)}
    result = sensor_def.evaluate_tick(
        build_sensor_context(instance=instance, definitions=defs, resources=landing))
    [request] = result.run_requests
    job = defs.resolve_job_def(sensor_def.job_name)
    run = job.execute_in_process(instance=instance, tags=request.tags, raise_on_error=False)
    assert run.success

    silver, quarantine = lakehouse.count(t.SILVER_EVENTS), lakehouse.count(t.QUARANTINE)
    assert lakehouse.count(t.BRONZE_EVENTS) == len(sim.events)
    assert silver + quarantine + sim.duplicates == len(sim.events)
    assert quarantine == len(sim.expected_rule)
    assert lakehouse.count(t.FACT_ADMISSIONS) == silver
    # The next tick sees nothing new: no run, and it says why.
    again = sensor_def.evaluate_tick(build_sensor_context(
        instance=instance, definitions=defs, cursor=result.cursor, resources=landing))
    assert again.run_requests == []
    assert again.skip_message == f"no new files in {Path(settings.landing).resolve()}"
