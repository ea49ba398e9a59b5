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
defs = build_definitions(Settings.from_env({}))


def tick(instance, landing_dir, cursor=None):
    context = build_sensor_context(
        instance=instance,
        cursor=cursor,
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
    settings = Settings.from_env(
        {
            "PATIENT_FLOW_LAKE": str(lakehouse.root / "lake"),
            "PATIENT_FLOW_LANDING": str(lakehouse.landing_dir),
        }
    )
    defs = build_definitions(settings)
    sim = simulate(500, seed=31, now=recent_now(), span_days=20)
    write_landing_file(events_table(sim.events), lakehouse.landing_dir)
    instance = DagsterInstance.ephemeral()

    sensor_def = defs.resolve_sensor_def("landing_sensor")
    landing = {"landing": LocalLandingZone(path=settings.landing)}
    result = sensor_def.evaluate_tick(
        build_sensor_context(instance=instance, definitions=defs, resources=landing)
    )
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
    again = sensor_def.evaluate_tick(
        build_sensor_context(
            instance=instance, definitions=defs, cursor=result.cursor, resources=landing
        )
    )
    assert again.run_requests == []
    assert again.skip_message == f"no new files in {Path(settings.landing).resolve()}"


def queue_run(instance, job, tags=None):
    """A run of `job` waiting in the instance's run queue (as the daemon holds it behind a
    running lake writer)."""
    from dagster import DagsterRunStatus

    # Test-only: a queued run must name the code location that will launch it.
    from dagster._core.remote_origin import (
        InProcessCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    location = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="patient_flow_dagster.definitions")
    )
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), job.name)
    return instance.create_run_for_job(
        job,
        tags={**job.tags, **(tags or {})},
        status=DagsterRunStatus.QUEUED,
        remote_job_origin=origin,
    )


def test_runs_never_pile_up_behind_a_queued_run(tmp_path):
    """With the project's instance (run queue, one lake writer): while a pipeline run is queued
    or starting, new files wait and the skip says why; once it has started, the next request
    carries every file landed meanwhile."""
    from dagster import DagsterEvent, DagsterEventType, DagsterRunStatus

    from patient_flow_dagster_tests.conftest import project_instance

    instance = project_instance(tmp_path / "home")
    job = defs.resolve_job_def("patient_flow")
    landing = tmp_path / "landing"
    landing.mkdir()
    drop_files(landing, ["a.parquet"])
    first = tick(instance, landing)
    [request] = first.run_requests
    run = queue_run(instance, job, request.tags)

    drop_files(landing, ["b.parquet"])
    waiting = tick(instance, landing, cursor=first.cursor)
    assert waiting.run_requests == []
    assert waiting.skip_message == (
        f"1 new landing files wait for run {run.run_id}, which is "
        "queued or starting and will ingest them"
    )
    assert waiting.cursor == first.cursor  # it stays where it was: b waits, it is not dropped

    drop_files(landing, ["c.parquet"])
    instance.report_dagster_event(
        DagsterEvent(DagsterEventType.RUN_START.value, job_name=job.name), run.run_id
    )
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED
    # The queued run has started (it executes; the run queue holds the next one behind it).
    # A queued run of the clock's job does not hold the landing files back.
    clock = defs.resolve_job_def("patient_flow_clock")
    queue_run(instance, clock)
    after = tick(instance, landing, cursor=first.cursor)
    [next_request] = after.run_requests
    assert next_request.tags["patient_flow/files"] == "b.parquet, c.parquet"
    assert tick(instance, landing, cursor=after.cursor).run_requests == []


def test_the_census_clock_runs_on_the_hour_unless_its_last_run_still_waits(tmp_path):
    """The hourly schedule asks for a run of the census and the day's figures, also while a
    pipeline run waits (a batch's run leaves the day's figures to the clock); an earlier clock
    run still waiting to start does the same, so the clock skips that hour and says why."""
    from dagster import build_schedule_context

    from patient_flow_dagster.assets.daily import DAY_KPIS
    from patient_flow_dagster_tests.conftest import project_instance

    instance = project_instance(tmp_path / "home")
    clock = defs.resolve_schedule_def("census_clock")
    assert clock.cron_schedule == "0 * * * *"
    job = defs.resolve_job_def(clock.job_name)
    assert set(job.asset_layer.selected_asset_keys) == {
        t.DEPARTMENT_CENSUS_HOURLY.key,
        t.CURRENT_OCCUPANCY.key,
        *DAY_KPIS,
    }
    assert not set(DAY_KPIS) & set(
        defs.resolve_job_def("patient_flow").asset_layer.selected_asset_keys
    )
    assert job.tags["patient_flow/writes"] == "lake"  # one lake writer at a time

    queue_run(instance, defs.resolve_job_def("patient_flow"))
    [request] = clock.evaluate_tick(build_schedule_context(instance=instance)).run_requests
    assert request.job_name in (None, "patient_flow_clock")
    run = queue_run(instance, job)
    skipped = clock.evaluate_tick(build_schedule_context(instance=instance))
    assert skipped.run_requests == []
    assert skipped.skip_message == f"the clock's run {run.run_id} is queued or starting"
