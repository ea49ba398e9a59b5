"""The front door: Definitions load for each setting, and the demo command runs the main job."""

import json
import os
import subprocess
import sys
from pathlib import Path

from dagster import AssetKey

from patient_flow_dagster import cli
from patient_flow_dagster.definitions import build_definitions
from patient_flow_dagster.settings import Settings, SparkSettings
from patient_flow_dagster_tests.conftest import Lakehouse
from patient_flow_dagster_tests.leaks import scan_analytics
from patient_flow_devtools import CHECKOUT

LINEAGE = {
    "landing/patient_events": set(),
    "bronze/patient_events": {"landing/patient_events"},
    "silver/patient_events": {"bronze/patient_events"},
    "silver/patient_events_quarantine": {"bronze/patient_events"},
    "gold/dim_patient": {"silver/patient_events"},
    "gold/dim_department": {"silver/patient_events"},
    "gold/dim_hospital": set(),  # from the reference data, not from events
    "gold/dim_date": set(),  # a calendar
    "gold/fact_admissions": {
        "silver/patient_events",
        "gold/dim_patient",
        "gold/dim_department",
        "gold/dim_hospital",
    },
    "gold/fact_patient_movements": {"silver/patient_events", "gold/dim_department"},
    "gold/cube_admissions_gender_department": {
        "gold/fact_admissions",
        "gold/dim_patient",
        "gold/dim_department",
    },
    "gold/cube_admissions_department_hospital": {"gold/fact_admissions", "gold/dim_department"},
    "gold/department_census_hourly": {
        "gold/fact_patient_movements",
        "gold/dim_department",
        "gold/dim_hospital",
        "silver/patient_events",
    },
    "gold/current_occupancy": {"gold/department_census_hourly"},
    "gold/length_of_stay_stats": {
        "gold/fact_admissions",
        "gold/fact_patient_movements",
        "gold/dim_department",
    },
    "gold/daily_flow": {"gold/fact_admissions", "gold/dim_department", "gold/dim_hospital"},
    **{
        f"gold/{name}": {"gold/fact_patient_movements", "gold/dim_department", "gold/dim_hospital"}
        for name in (
            "midnight_census",
            "patient_days",
            "ed_boarding",
            "ed_boarding_daily",
            "discharge_timing",
            "bed_turnover",
        )
    },
    **{
        f"gold/{name}": {"gold/fact_admissions", "gold/dim_patient", "gold/dim_hospital"}
        for name in ("readmissions", "readmission_rates")
    },
}


def test_lineage_landing_to_gold(tmp_path):
    defs = build_definitions(Settings.from_env({"PATIENT_FLOW_LAKE": str(tmp_path)}))
    graph = defs.resolve_asset_graph()
    lineage = {
        key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }
    assert lineage == LINEAGE
    job = defs.resolve_job_def("patient_flow")
    assert job.executor_def.name == "in_process"
    assert AssetKey(["gold", "fact_admissions"]) in graph.get_all_asset_keys()


def test_the_demo_prints_a_line_per_step_and_logs_the_rest_to_a_file(
    tmp_path, monkeypatch, capfd, spark
):
    """`patient-flow demo`: one progress line per step and the summary on the terminal (file
    descriptors 1 and 2, as a user's terminal sees them); the Dagster event log in the file the
    summary names."""
    monkeypatch.setenv("PATIENT_FLOW_LAKE", str(tmp_path / "lake"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("PATIENT_FLOW_PSEUDONYM_KEY", raising=False)  # the demo key
    assert cli.main(["demo", "--events", "400", "--seed", "11", "--span-days", "20"]) == 0
    terminal = capfd.readouterr()
    lines = terminal.out.splitlines()
    defs = build_definitions(Settings.from_env())
    steps = [  # a batch, then the clock's run with the day's figures
        n.name
        for job in ("patient_flow", "patient_flow_clock")
        for n in defs.resolve_job_def(job).graph.nodes
    ]
    progress = [line for line in lines if line.startswith("  ") and " done " in line]
    assert sorted(line.split()[0] for line in progress) == sorted(steps)
    assert "gold/midnight_census" in terminal.out and "gold/readmission_rates" in terminal.out
    assert len(lines) < 80 and terminal.err == ""
    assert any("SUCCESS" in line for line in lines) and f"lake:    {tmp_path / 'lake'}" in lines
    [log_line] = [line for line in lines if line.startswith("log:")]
    log = Path(log_line.split(maxsplit=1)[1]).read_text()
    assert "STEP_SUCCESS" in log and "RUN_SUCCESS" in log
    fact_rows = spark.read.format("delta").load(str(tmp_path / "lake/gold/fact_admissions")).count()
    silver_rows = (
        spark.read.format("delta").load(str(tmp_path / "lake/silver/patient_events")).count()
    )
    assert 0 < fact_rows < silver_rows  # lifecycles: several events make one encounter
    assert f"gold/fact_admissions {fact_rows:>10}".split() in [line.split() for line in lines]
    [encounters] = [lines[i + 1] for i, line in enumerate(lines) if line.startswith("encounters")]
    assert encounters.split()[0] == str(fact_rows) and "waiting for their admission" in encounters
    assert "built-in demo key" in log  # the demo's pseudonyms: said so in its log
    found = scan_analytics(Lakehouse(tmp_path, spark))  # the demo's lake: nothing identifying
    found.pop("_columns_scanned")
    assert found == {}


def test_lake_writing_runs_are_serialized_by_the_run_queue(tmp_path):
    """A sensor run queued behind a running one waits: both jobs carry the tag the instance's
    run queue limits to one, and the queue is polled every second (file-to-gold latency)."""
    import shutil
    from pathlib import Path

    from dagster import DagsterInstance

    from patient_flow_dagster.definitions import WRITES_LAKE

    shutil.copy(Path(__file__).parents[1] / "config/dagster.yaml", tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.tag_concurrency_limits == [{**_as_limit(WRITES_LAKE), "limit": 1}]
        assert instance.run_coordinator.dequeue_interval_seconds == 1
    defs = build_definitions(Settings.from_env({"PATIENT_FLOW_LAKE": str(tmp_path)}))
    for name in ("patient_flow", "patient_flow_full_refresh"):
        assert defs.resolve_job_def(name).tags.items() >= WRITES_LAKE.items()


def _as_limit(tags: dict) -> dict:
    ((key, value),) = tags.items()
    return {"key": key, "value": value}


def test_jvm_class_archive_options(tmp_path, monkeypatch):
    """The Spark driver maps the class archive only when it exists; "off" switches it off."""
    from patient_flow_dagster.resources import jvm_archive
    from patient_flow_dagster.resources.spark import local_spark_config

    archive = tmp_path / "classes.jsa"
    monkeypatch.delenv("PATIENT_FLOW_JVM_DUMP", raising=False)
    monkeypatch.setenv(jvm_archive.ARCHIVE_ENV, str(archive))
    assert (
        local_spark_config(SparkSettings.from_env())["spark.driver.extraJavaOptions"]
        == "-Duser.timezone=UTC"
    )
    archive.write_bytes(b"not built by this JDK: the JVM ignores it (-Xshare:auto)")
    options = local_spark_config(SparkSettings.from_env())["spark.driver.extraJavaOptions"]
    assert options.startswith("-Duser.timezone=UTC ")
    assert f"-XX:SharedArchiveFile={archive} -Xshare:auto" in options
    monkeypatch.setenv(jvm_archive.ARCHIVE_ENV, "off")
    assert jvm_archive.archive_path(SparkSettings.from_env()) is None
    assert jvm_archive.java_options(SparkSettings.from_env()) == ""
    monkeypatch.delenv(jvm_archive.ARCHIVE_ENV)
    default = jvm_archive.archive_path(SparkSettings.from_env())
    assert default.name.startswith("spark-classes-") and default.suffix == ".jsa"


def test_jvm_starts_with_a_foreign_class_archive(tmp_path):
    """A stale or foreign archive never stops Spark's JVM from starting: it is only a speed-up."""
    import subprocess

    archive = tmp_path / "stale.jsa"
    archive.write_bytes(b"\0" * 4096)
    from patient_flow_dagster.resources import jvm_archive

    options = ["java", *jvm_archive.java_options_for(archive).split(), "-version"]
    done = subprocess.run(options, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "version" in done.stderr


def test_dg_lists_the_definitions_dagster_loads(tmp_path):
    """`dg` (Dagster's CLI) recognises the checkout as a project ([tool.dg] in pyproject.toml)
    and finds the same assets, checks, jobs, schedules and sensors as the code location."""
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    listed = subprocess.run(
        [str(Path(sys.executable).with_name("dg")), "list", "defs", "--json"],
        cwd=CHECKOUT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
    found = json.loads(listed.stdout)
    defs = build_definitions(Settings.from_env({}))
    repository = defs.get_repository_def()
    assert {a["asset_key"] for a in found["assets"]} == set(LINEAGE)
    assert {c["key"] for c in found["asset_checks"]} == {
        f"{key.asset_key.to_user_string()}:{key.name}"
        for key in repository.asset_graph.asset_check_keys
    }
    assert {j["name"] for j in found["jobs"]} == {
        job.name for job in repository.get_all_jobs() if not job.name.startswith("__")
    }
    assert {s["name"] for s in found["schedules"]} == {"census_clock", "nightly_audit"}
    assert {s["name"] for s in found["sensors"]} == {s.name for s in repository.sensor_defs}
