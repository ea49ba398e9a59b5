"""PATIENT_FLOW_ENV=databricks, end to end and offline: the real `databricks_pyspark_step_launcher`
ships every step to a local emulation of the Databricks REST API, whose job runs execute the
steps in their own Python + Spark processes; the lake must come out as the local one does."""

import base64
import io
import json
import os
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest
from dagster import DagsterInstance
from dagster_databricks.databricks import DatabricksJobRunner
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import DatabricksError
from databricks.sdk.service import jobs

from patient_flow_dagster.definitions import build_definitions
from patient_flow_dagster.ingestion.landing_writer import write_events
from patient_flow_dagster.ingestion.simulator import simulate
from patient_flow_dagster.model import tables as t
from patient_flow_dagster.resources.databricks import (
    DEFAULT_CLUSTER_SPEC,
    RUN_CONFIG_VARIABLE,
    databricks_run_config,
    remote_env_variables,
    step_launcher_config,
)
from patient_flow_dagster.resources.databricks_runtime import (
    RuntimeMismatch,
    check_runtime,
)
from patient_flow_dagster.resources.lake import DeltaLake
from patient_flow_dagster.settings import DatabricksSettings, Settings
from patient_flow_dagster_tests.conftest import recent_now
from patient_flow_dagster_tests.services import free_port
from patient_flow_devtools.databricks_emulation.emulator import (
    DatabricksEmulator,
    Fault,
)

TOKEN = "dapi-emulator-token"  # the emulator's own, not a credential of anything real
PSEUDONYM_KEY = "the emulated deployment's pseudonym key"
# The emulator's service principal (OAuth M2M), what production runs as.
CLIENT_ID, CLIENT_SECRET = "6b1f0e7a-emulated-service-principal", "dose-emulated-oauth-secret"
VENV_BIN = Path(sys.executable).parent

# Columns that name the run or the moment of processing; every other column of every table must
# come out of the emulated Databricks run exactly as out of the local one.
RUN_COLUMNS = {
    "ingest_run_id",
    "silver_run_id",
    "bronze_ingestion_ts",
    "silver_processing_time",
    "audit_run_id",
    "audited_at",
    "check_run_id",
    "evaluated_at",
}


CLUSTER = "1123-000000-emulated"
VOLUME = "patient_flow/staging/dagster"  # <catalog>/<schema>/<volume>


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """One emulated workspace for the module: its all-purpose cluster's JVM starts once."""
    secrets = {
        "patient-flow": {
            "databricks-token": TOKEN,
            "databricks-client-secret": CLIENT_SECRET,
            "pseudonym-key": PSEUDONYM_KEY,
        }
    }
    with DatabricksEmulator(
        tmp_path_factory.mktemp("databricks"),
        TOKEN,
        secrets,
        service_principals={CLIENT_ID: CLIENT_SECRET},
        volumes=(VOLUME,),
    ) as running:
        yield running


def upload(client: WorkspaceClient, path: str, content: bytes) -> None:
    handle = client.dbfs.create(path, overwrite=True).handle
    client.dbfs.add_block(handle, base64.b64encode(content).decode())
    client.dbfs.close(handle)


def wait_for(client: WorkspaceClient, run_id: int, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.jobs.get_run(run_id).state
        if state.life_cycle_state.value in ("TERMINATED", "INTERNAL_ERROR"):
            return state
        time.sleep(0.5)
    raise TimeoutError(run_id)


TASK = b"""
import os, sys
assert spark.range(5).count() == 5 and sc.defaultParallelism > 0
assert dbutils.secrets.get("patient-flow", "databricks-token") == "%s"
leaked = [k for k in os.environ if k.startswith(("PATIENT_FLOW_", "AZURE_"))]
assert not leaked, leaked
import importlib.util
# The cluster's Python: the runtime's libraries and the task's, never the project or the tests.
missing = [m for m in ("pyspark", "delta", "azure.storage.blob") if not importlib.util.find_spec(m)]
present = [m for m in ("patient_flow_dagster", "pytest", "confluent_kafka")
           if importlib.util.find_spec(m)]
assert not missing and not present, (missing, present)
open(sys.argv[1], "w").write(os.environ["DATABRICKS_RUNTIME_VERSION"])
if len(sys.argv) > 2:
    dbutils.secrets.get("patient-flow", "no-such-key")
""" % TOKEN.encode()


def test_python_task_runs_on_a_job_cluster_like_databricks(emulator, monkeypatch):
    monkeypatch.setenv("PATIENT_FLOW_ENV", "must-not-leak")
    client = WorkspaceClient(host=emulator.host, token=TOKEN)
    upload(client, "/tasks/probe.py", TASK)
    cluster = {"spark_version": "17.3.x-scala2.13", "num_workers": 0, "node_type_id": "x"}
    library = {"pypi": {"package": "azure-storage-blob>=12.19,<13"}}
    run_id = client.jobs.submit(
        run_name="probe",
        tasks=[
            jobs.SubmitTask.from_dict(
                {
                    "task_key": "probe",
                    "new_cluster": cluster,
                    "libraries": [library],
                    "spark_python_task": {
                        "python_file": "dbfs:/tasks/probe.py",
                        "parameters": ["/dbfs/tasks/out.txt"],
                    },
                }
            )
        ],
    ).bind()["run_id"]
    state = wait_for(client, run_id)
    assert state.result_state.value == "SUCCESS", state.state_message
    assert base64.b64decode(client.dbfs.read("/tasks/out.txt").data) == b"17.3.x-scala2.13"

    emulator.start_cluster(CLUSTER)
    failing = client.jobs.submit(
        run_name="probe",
        tasks=[
            jobs.SubmitTask.from_dict(
                {
                    "task_key": "probe",
                    "existing_cluster_id": CLUSTER,
                    "libraries": [library],
                    "spark_python_task": {
                        "python_file": "dbfs:/tasks/probe.py",
                        "parameters": ["/dbfs/tasks/out2.txt", "fail"],
                    },
                }
            )
        ],
    ).bind()["run_id"]
    state = wait_for(client, failing)
    assert state.result_state.value == "FAILED" and "no-such-key" in state.state_message
    # A library no index serves: the cluster cannot install it and the task never runs.
    unknown = client.jobs.submit(
        run_name="probe",
        tasks=[
            jobs.SubmitTask.from_dict(
                {
                    "task_key": "probe",
                    "new_cluster": cluster,
                    "libraries": [{"pypi": {"package": "azure-storage-blob==0.0.1"}}],
                    "spark_python_task": {
                        "python_file": "dbfs:/tasks/probe.py",
                        "parameters": ["/dbfs/tasks/out3.txt"],
                    },
                }
            )
        ],
    ).bind()["run_id"]
    state = wait_for(client, unknown)
    assert state.result_state.value == "FAILED"
    assert state.state_message.startswith("Library installation failed")
    assert "azure-storage-blob==0.0.1" in state.state_message
    with pytest.raises(DatabricksError):  # no such cluster
        client.jobs.submit(
            run_name="x",
            tasks=[
                jobs.SubmitTask.from_dict(
                    {
                        "task_key": "x",
                        "existing_cluster_id": "nope",
                        "spark_python_task": {"python_file": "dbfs:/tasks/probe.py"},
                    }
                )
            ],
        )


def test_a_pooled_job_cluster_starts_faster_than_new_vms(emulator):
    """The launcher's run config for each compute mode, submitted as the launcher submits it;
    the emulation's start delays (seconds here, minutes on Azure) show in PENDING time."""
    runner = DatabricksJobRunner(host=emulator.host, token=TOKEN, poll_interval_sec=0.2)
    client = WorkspaceClient(host=emulator.host, token=TOKEN)
    upload(client, "/tasks/probe.py", TASK)
    emulator.start_seconds.update(new=3.0, pool=0.5)
    pending = {}
    try:
        for mode, environ in {
            "new": {},
            "pool": {"PATIENT_FLOW_DATABRICKS_INSTANCE_POOL": "0101-pool"},
        }.items():
            starts = emulator.cold_starts[mode]
            task = {
                "spark_python_task": {
                    "python_file": "dbfs:/tasks/probe.py",
                    "parameters": [f"/dbfs/tasks/{mode}.txt"],
                }
            }
            submitted = time.monotonic()
            run_id = runner.submit_run(
                databricks_run_config(DatabricksSettings.from_env(environ)), task
            )
            while client.jobs.get_run(run_id).state.life_cycle_state.value == "PENDING":
                time.sleep(0.05)
            pending[mode] = time.monotonic() - submitted
            assert wait_for(client, run_id).result_state.value == "SUCCESS"
            assert emulator.cold_starts[mode] == starts + 1
    finally:
        emulator.start_seconds.update(new=0.0, pool=0.0)
    assert pending["new"] >= 3.0 and 0.5 <= pending["pool"] < 3.0, pending
    spec = emulator.runs[run_id].spec["tasks"][0]["new_cluster"]
    assert spec["instance_pool_id"] == "0101-pool"
    assert "node_type_id" not in spec


def test_emulator_rejects_what_databricks_rejects(emulator):
    client = WorkspaceClient(host=emulator.host, token=TOKEN)
    with pytest.raises(DatabricksError) as missing:
        client.dbfs.read("/dagster_staging/nothing/here")
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(DatabricksError) as unknown_run:
        client.jobs.get_run(424242)
    assert "does not exist" in str(unknown_run.value)
    with pytest.raises(DatabricksError):
        WorkspaceClient(host=emulator.host, token="wrong").dbfs.read("/x")
    handle = client.dbfs.create("/a/b/c.txt", overwrite=False).handle
    client.dbfs.add_block(handle, "aGVsbG8=")
    client.dbfs.close(handle)
    assert client.dbfs.read("/a/b/c.txt").data == "aGVsbG8="  # parents created implicitly
    with pytest.raises(DatabricksError) as exists:
        client.dbfs.create("/a/b/c.txt", overwrite=False)
    assert exists.value.error_code == "RESOURCE_ALREADY_EXISTS"
    task = {
        "task_key": "t",
        "existing_cluster_id": CLUSTER,
        "spark_python_task": {"python_file": "dbfs:/a/b/c.txt"},
    }
    for body, field in [
        ({"tasks": [task], "cluster_spec": {}}, "cluster_spec"),
        ({"tasks": [{**task, "notebook_params": {}}]}, "notebook_params"),
        (
            {
                "tasks": [
                    {
                        **task,
                        "existing_cluster_id": None,
                        "new_cluster": {
                            "spark_version": "17.3.x-scala2.13",
                            "node_type_id": "x",
                            "worker_count": 2,
                        },
                    }
                ]
            },
            "worker_count",
        ),
    ]:
        with pytest.raises(DatabricksError) as unknown:
            client.api_client.do("POST", "/api/2.2/jobs/runs/submit", body=body)
        assert unknown.value.error_code == "INVALID_PARAMETER_VALUE" and field in str(unknown.value)


def test_files_api_on_volumes_and_a_workspace_without_dbfs(emulator):
    client = WorkspaceClient(host=emulator.host, token=TOKEN)
    path = f"/Volumes/{VOLUME}/a/b/c.txt"
    client.files.upload(path, io.BytesIO(b"hello"), overwrite=True)  # parents created
    assert client.files.download(path).contents.read() == b"hello"
    assert client.files.get_metadata(path).content_length == 5
    with pytest.raises(DatabricksError) as exists:
        client.files.upload(path, io.BytesIO(b"again"), overwrite=False)
    assert exists.value.error_code == "ALREADY_EXISTS"
    with pytest.raises(DatabricksError) as missing:
        client.files.download(f"/Volumes/{VOLUME}/a/none.txt").contents.read()
    assert missing.value.error_code == "NOT_FOUND"
    with pytest.raises(DatabricksError) as no_volume:
        client.files.upload("/Volumes/patient_flow/staging/other/x", io.BytesIO(b""))
    assert no_volume.value.error_code == "NOT_FOUND"
    emulator.dbfs_enabled = False
    try:
        with pytest.raises(DatabricksError) as refused:
            client.dbfs.read("/a/b/c.txt")
        assert refused.value.error_code == "PERMISSION_DENIED"
    finally:
        emulator.dbfs_enabled = True


def test_oauth_tokens_go_to_registered_service_principals_only(emulator):
    client = WorkspaceClient(host=emulator.host, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    with pytest.raises(DatabricksError) as missing:
        client.jobs.get_run(4242)
    assert missing.value.error_code == "INVALID_PARAMETER_VALUE"  # authenticated, then refused
    assert CLIENT_ID in emulator.issued.values()
    with pytest.raises(ValueError, match="invalid_client"):
        WorkspaceClient(
            host=emulator.host, client_id=CLIENT_ID, client_secret="not-the-secret"
        ).jobs.get_run(4242)
    with pytest.raises(DatabricksError) as forged:
        WorkspaceClient(host=emulator.host, token="eyJ-forged").jobs.get_run(4242)
    assert forged.value.error_code == "UNAUTHENTICATED"


def test_a_service_principal_replaces_the_token_everywhere():
    environ = {
        "PATIENT_FLOW_ENV": "databricks",
        "PATIENT_FLOW_PSEUDONYM_KEY": "a deployment key",
        "DATABRICKS_HOST": "https://adb-1.azuredatabricks.net",
        "DATABRICKS_CLIENT_ID": "app-1",
        "DATABRICKS_CLIENT_SECRET": "s3cr3t-3",
    }
    config = step_launcher_config(DatabricksSettings.from_env(environ))
    assert "databricks_token" not in config and "oauth_credentials" not in config
    assert "s3cr3t" not in json.dumps(config)  # resolved when the resource starts
    assert config["service_principal"] == {
        "client_id": {"env": "DATABRICKS_CLIENT_ID"},
        "client_secret": {"env": "DATABRICKS_CLIENT_SECRET"},
    }
    assert config["secrets_to_env_variables"] == [
        {
            "name": "DATABRICKS_CLIENT_SECRET",
            "scope": "patient-flow",
            "key": "databricks-client-secret",
        },
        {"name": "PATIENT_FLOW_PSEUDONYM_KEY", "scope": "patient-flow", "key": "pseudonym-key"},
    ]
    assert "PATIENT_FLOW_PSEUDONYM_KEY" not in config["env_variables"]  # never forwarded
    assert config["env_variables"]["DATABRICKS_CLIENT_ID"] == "app-1"


def test_remote_step_gets_the_launchers_config_but_no_secret(tmp_path):
    environ = {
        "PATIENT_FLOW_ENV": "databricks",
        "PATIENT_FLOW_PSEUDONYM_KEY": "a deployment key",
        "PATIENT_FLOW_LAKE": "abfss://lake@a.dfs.core.windows.net/x",
        "DATABRICKS_HOST": "https://adb-1.azuredatabricks.net",
        "DATABRICKS_TOKEN": "s3cr3t-1",
        "AZURE_STORAGE_CONNECTION_STRING": "AccountKey=s3cr3t-2",
        "DATABRICKS_CLUSTER_ID": "0101-x",
    }
    databricks = DatabricksSettings.from_env(environ)
    config = step_launcher_config(databricks)
    assert config["run_config"]["cluster"] == {"existing": "0101-x"}
    assert "s3cr3t" not in json.dumps(config)
    assert config["databricks_token"] == {"env": "DATABRICKS_TOKEN"}
    assert {s["name"] for s in config["secrets_to_env_variables"]} == {
        "DATABRICKS_TOKEN",
        "PATIENT_FLOW_PSEUDONYM_KEY",
    }
    forwarded = remote_env_variables(databricks, config["run_config"])
    remote = DatabricksSettings.from_env(forwarded)
    assert databricks_run_config(remote) == config["run_config"]  # the remote rebuilds it
    assert forwarded[RUN_CONFIG_VARIABLE] and forwarded["PATIENT_FLOW_LAKE"].startswith("abfss://")
    new_cluster = databricks_run_config(DatabricksSettings.from_env({}))["cluster"][
        "new"
    ]  # the packaged default
    assert new_cluster["spark_version"].endswith("scala2.13")  # Spark 4 runtimes, like pyspark 4


def unreachable_workspace(tmp_path, monkeypatch, token: str) -> tuple[str, Settings]:
    """Settings of a Databricks deployment whose workspace refuses connections (a loopback
    port nothing listens on), its host and token in the launching process's environment."""
    host = f"https://127.0.0.1:{free_port()}"
    monkeypatch.setenv("DATABRICKS_HOST", host)
    monkeypatch.setenv("DATABRICKS_TOKEN", token)
    return host, Settings.from_env(
        {
            "PATIENT_FLOW_ENV": "databricks",
            "PATIENT_FLOW_PSEUDONYM_KEY": "a deployment key",
            "PATIENT_FLOW_LAKE": str(tmp_path / "lake"),
            "PATIENT_FLOW_LANDING": str(tmp_path / "landing"),
            "PATIENT_FLOW_LANDING_READER": "files",
            "PATIENT_FLOW_MAX_CONCURRENT_STEPS": "1",
            "DATABRICKS_HOST": host,
        }
    )


@pytest.mark.faults
def test_an_unreachable_workspace_fails_the_step_at_once_with_one_line(tmp_path, monkeypatch):
    host, settings = unreachable_workspace(tmp_path, monkeypatch, TOKEN)
    job = build_definitions(settings).resolve_job_def("patient_flow")
    started = time.monotonic()
    result = job.execute_in_process(instance=DagsterInstance.ephemeral(), raise_on_error=False)
    assert time.monotonic() - started < 30
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error = failure.step_failure_data.error
    assert error.cls_name == "WorkspaceUnreachable"
    assert error.message.strip().splitlines() == [
        f"patient_flow_dagster.resources.databricks.WorkspaceUnreachable: Databricks workspace "
        f"{host} is unreachable: Connection refused (tried a TCP connection to 127.0.0.1:"
        f"{host.rsplit(':', 1)[1]} for up to 10 s; check DATABRICKS_HOST)"
    ]
    assert TOKEN not in str(result.all_events)


def test_runtime_versions_are_checked_against_the_launching_process():
    check_runtime("17.3.x-scala2.13", python=(3, 12), pyspark="4.0.1")  # a match: no error
    check_runtime("17.3.x-photon-scala2.13", python=(3, 12), pyspark="4.0.1")
    with pytest.raises(RuntimeMismatch) as python:
        check_runtime("17.3.x-scala2.13", python=(3, 11), pyspark="4.0.1")
    assert str(python.value) == (
        "Databricks runtime 17.3.x-scala2.13 cannot run steps launched from this process "
        "(Python 3.12 there, 3.11 here): launch from a matching environment or choose a "
        "matching runtime in the cluster spec"
    )
    with pytest.raises(RuntimeMismatch, match=r"\(Spark 3 there, PySpark 4.0.1 here\)"):
        check_runtime("15.4.x-scala2.12", python=(3, 11), pyspark="4.0.1")
    with pytest.raises(RuntimeMismatch, match="'custom:my-image' is not one this launcher knows"):
        check_runtime("custom:my-image", python=(3, 11), pyspark="4.0.1")


@pytest.mark.faults
def test_a_cluster_on_another_runtime_is_refused_before_anything_is_submitted(
    tmp_path, emulator, monkeypatch
):
    """A job cluster's runtime comes from the spec, an existing cluster's from the workspace
    (clusters/get); either way a mismatch fails the step in one line, nothing submitted."""
    monkeypatch.setenv("DATABRICKS_HOST", emulator.host)
    monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
    spec = json.loads(DEFAULT_CLUSTER_SPEC.read_text())
    spec["cluster"]["new"]["spark_version"] = "15.4.x-scala2.12"
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    emulator.define_cluster("0202-000000-older", "16.4.x-scala2.12")
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for cluster, runtime, python_there in (
        (
            {"PATIENT_FLOW_DATABRICKS_CLUSTER_SPEC": str(tmp_path / "spec.json")},
            "15.4.x-scala2.12",
            "3.11",
        ),
        ({"DATABRICKS_CLUSTER_ID": "0202-000000-older"}, "16.4.x-scala2.12", "3.12"),
    ):
        settings = Settings.from_env(
            {
                "PATIENT_FLOW_ENV": "databricks",
                "PATIENT_FLOW_PSEUDONYM_KEY": "a deployment key",
                "PATIENT_FLOW_LAKE": str(tmp_path / "lake"),
                "PATIENT_FLOW_LANDING": str(tmp_path / "landing"),
                "PATIENT_FLOW_LANDING_READER": "files",
                "PATIENT_FLOW_MAX_CONCURRENT_STEPS": "1",
                "DATABRICKS_HOST": emulator.host,
                **cluster,
            }
        )
        for name, value in cluster.items():
            monkeypatch.setenv(name, value)  # the launcher reads the cluster from the process
        job = build_definitions(settings).resolve_job_def("patient_flow")
        submitted = len(emulator.runs)
        result = job.execute_in_process(instance=DagsterInstance.ephemeral(), raise_on_error=False)
        assert not result.success and len(emulator.runs) == submitted
        [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        error = failure.step_failure_data.error
        assert error.cls_name == "RuntimeMismatch"
        problems = [f"Python {python_there} there, {here} here"] if python_there != here else []
        problems.append(f"Spark 3 there, PySpark {version('pyspark')} here")
        assert (
            f"Databricks runtime {runtime} cannot run steps launched from this process "
            f"({'; '.join(problems)})" in error.message
        )


def databricks_environment(tmp_path: Path, emulator: DatabricksEmulator, landing: Path) -> dict:
    """The launching process's environment for the emulated workspace: steps on its
    all-purpose cluster, staging on a Unity Catalog volume, as its service principal."""
    emulator.start_cluster(CLUSTER)  # an all-purpose cluster: tasks attach to its warm driver
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "PATIENT_FLOW_ENV": "databricks",
        "PATIENT_FLOW_PSEUDONYM_KEY": PSEUDONYM_KEY,
        "PATIENT_FLOW_LAKE": str(tmp_path / "databricks_lake"),
        "PATIENT_FLOW_LANDING": str(landing),
        "PATIENT_FLOW_LANDING_READER": "files",  # Auto Loader exists only on Databricks runtimes
        "PATIENT_FLOW_DATABRICKS_POLL_SECONDS": "0.5",
        "PATIENT_FLOW_DATABRICKS_RETRY_SECONDS": "1",
        # A workspace without a DBFS root: staging on a Unity Catalog volume.
        "PATIENT_FLOW_DATABRICKS_STAGING": f"/Volumes/{VOLUME}/steps",
        # The production executor: steps launched side by side (the emulated cluster runs one
        # task at a time; the others wait PENDING for it).
        "PATIENT_FLOW_MAX_CONCURRENT_STEPS": "2",
        "DATABRICKS_HOST": emulator.host,
        "DATABRICKS_CLIENT_ID": CLIENT_ID,  # as a service principal, OAuth M2M
        "DATABRICKS_CLIENT_SECRET": CLIENT_SECRET,
        "DATABRICKS_CLUSTER_ID": CLUSTER,
        # The emulation runs its tasks on this machine's Python, which is not the Python of
        # the runtime the cluster reports (no Spark 4 runtime ships Python 3.11).
        "PATIENT_FLOW_DATABRICKS_RUNTIME_CHECK": "off",
    }
    env.pop("DATABRICKS_TOKEN", None)
    return env


@pytest.mark.databricks
def test_a_damaged_code_zip_fails_the_step_on_the_cluster(tmp_path, emulator):
    """The remote step imports the project from the uploaded zip and from nowhere else: cut
    short in storage, the zip fails the step, and nothing reaches the lake."""
    landing = tmp_path / "landing"
    write_events(simulate(40, seed=5, now=recent_now()).events, landing, events_per_file=40)
    env = databricks_environment(tmp_path, emulator, landing)
    submitted_before = len(emulator.runs)
    emulator.damage = r"code\.zip$"
    try:
        run = subprocess.run(
            [
                str(VENV_BIN / "dagster"),
                "asset",
                "materialize",
                "-m",
                "patient_flow_dagster.definitions",
                "--select",
                "bronze/patient_events",
            ],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        emulator.damage = None
    output = run.stdout + run.stderr
    assert run.returncode != 0
    [submission] = list(emulator.runs.values())[submitted_before:]  # not retried: not transient
    assert submission.result == "FAILED"
    assert "zip" in submission.log.read_text().lower(), submission.log.read_text()[-2000:]
    assert "BadZipFile" in output or "not a zip file" in output, output[-4000:]
    assert not (tmp_path / "databricks_lake" / "bronze").exists()


@pytest.mark.databricks
def test_whole_graph_on_emulated_databricks_equals_local(tmp_path, spark, emulator, monkeypatch):
    now = recent_now()
    landing = tmp_path / "landing"
    write_events(
        simulate(1_200, seed=61, now=now, span_days=10).events, landing, events_per_file=400
    )
    as_of = {"ops": {"gold_kpis": {"config": {"as_of": now.isoformat()}}}}

    # The same key here and there: the same pseudonyms in both environments.
    monkeypatch.setenv("PATIENT_FLOW_PSEUDONYM_KEY", PSEUDONYM_KEY)
    local = Settings.from_env(
        {"PATIENT_FLOW_LAKE": str(tmp_path / "local_lake"), "PATIENT_FLOW_LANDING": str(landing)}
    )
    batch_job = build_definitions(local).resolve_job_def("patient_flow")
    local_run = batch_job.execute_in_process(run_config=as_of, instance=DagsterInstance.ephemeral())
    assert local_run.success

    env = databricks_environment(tmp_path, emulator, landing)
    run_config = tmp_path / "as_of.json"  # JSON is YAML
    run_config.write_text(json.dumps(as_of))
    # Each transient fault once: the API throttling a submission (the SDK waits Retry-After), a
    # 500 reading a step's events (dagster-databricks reads them again), a cluster that fails
    # to launch and a 500 while polling a run (the launcher launches the step again).
    faults = [
        Fault("POST", r"/jobs/runs/submit", 429, "REQUEST_LIMIT_EXCEEDED", retry_after=1),
        Fault("GET", r"/fs/files/Volumes/.*events", 500, nth=12),
        Fault("POST", r"/jobs/runs/submit", launch_failure=True, nth=2),
        Fault("GET", r"/jobs/runs/get", 500, nth=6),
    ]
    for fault in faults:
        emulator.inject(fault)
    submitted_before = len(emulator.runs)
    emulator.dbfs_enabled = False
    started = time.perf_counter()
    try:
        run = subprocess.run(
            [
                str(VENV_BIN / "dagster"),
                "job",
                "execute",
                "-m",
                "patient_flow_dagster.definitions",
                "-j",
                "patient_flow",
                "-c",
                str(run_config),
            ],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=1500,
        )
    finally:
        emulator.dbfs_enabled = True
    wall = time.perf_counter() - started
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    submissions = list(emulator.runs.values())[submitted_before:]
    print(
        f"emulated Databricks run: {wall:.1f} s wall, {len(submissions)} job runs; "
        f"faults met: {emulator.faults_met}"
    )
    # Every fault was met; every step (each asset step evaluates its checks) succeeded once,
    # two of them on a second launch after a transient fault.
    assert not emulator.faults and len(emulator.faults_met) == len(faults)
    steps = build_definitions(local).resolve_job_def("patient_flow").graph.node_defs
    assert len(steps) == 5
    outcomes = [submission.result for submission in submissions]
    assert len(submissions) == len(steps) + 2  # one more launch per retried step
    assert outcomes.count("FAILED") == 1  # the cluster that did not launch
    # The runs polled when the API failed completed, or were cancelled by the launcher.
    assert set(outcomes) <= {"SUCCESS", "FAILED", "CANCELED"}
    assert outcomes.count("SUCCESS") >= len(steps)
    assert output.count("transient Databricks fault") == 2
    assert set(emulator.issued.values()) == {CLIENT_ID}  # every call with an issued token
    staged = {p.name for p in (emulator.volumes_root / VOLUME / "steps").rglob("*") if p.is_file()}
    assert {"code.zip", "step_run_ref.pkl", "stdout"} <= staged and "0_events.pkl" in staged
    assert CLIENT_SECRET not in output and TOKEN not in output and PSEUDONYM_KEY not in output

    local_lake = DeltaLake(root=local.lake_root)
    remote_lake = DeltaLake(root=str(tmp_path / "databricks_lake"))
    batch_tables = [  # a batch's job: the day's figures go with the clock's run
        table for table in t.LAKE_TABLES if table.key in batch_job.asset_layer.selected_asset_keys
    ]
    assert t.MIDNIGHT_CENSUS not in batch_tables and t.DIM_DATE in batch_tables
    for table in batch_tables:
        columns = [c for c in table.column_names if c not in RUN_COLUMNS]
        here = local_lake.read(spark, table).select(*columns)
        there = remote_lake.read(spark, table).select(*columns)
        if table is t.CHECK_RESULTS:
            # The history records every evaluation: a step launched again after a transient
            # fault may have evaluated (and committed) once more. Every evaluation agrees.
            columns = [c for c in columns if c != "table_version"]
            here, there = here.select(*columns).distinct(), there.select(*columns).distinct()
        rows = there.count()
        assert here.count() == rows > 0, table
        print(f"  {table}: {rows} rows, {len(columns)} columns alike in both lakes")
        assert here.exceptAll(there).count() == 0 and there.exceptAll(here).count() == 0, table
