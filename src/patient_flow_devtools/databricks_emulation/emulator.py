"""A small local stand-in for the part of the Databricks REST API the step launcher uses.

Development infrastructure (the tests and `patient-flow bench-compute`), not product code. It speaks
the real wire protocol (JSON over HTTP, bearer token, Databricks' error bodies) for:

- DBFS: `create` / `add-block` / `close` (parents created implicitly) and `read` (base64 blocks;
  404 RESOURCE_DOES_NOT_EXIST for a missing file);
- Jobs: `runs/submit` (one `spark_python_task` on a new or existing cluster), `runs/get`,
  `runs/cancel` (unknown run ids are rejected); Clusters: `get` (its runtime and state);
- Files API on Unity Catalog volumes: `PUT` / `GET` / `HEAD /api/2.0/fs/files/Volumes/<catalog>/
  <schema>/<volume>/...` (raw bytes; directories created implicitly; 404 NOT_FOUND for a missing
  file or an unknown volume; 409 ALREADY_EXISTS without overwrite), with `/Volumes/...` mapped
  for the tasks as a cluster mounts it; `dbfs_enabled=False` is a workspace without a DBFS root,
  whose DBFS API refuses every path;
- compute start: a job cluster on new VMs, one drawn from an instance pool, or an existing
  cluster, each with its own start delay (`start_seconds`, scaled down in tests) during which
  the run is PENDING; `cold_starts` counts the job clusters started per mode;
- faults, each injected once when asked (`inject`): an HTTP error on a route (429 with
  Retry-After, 500), and a cluster that fails to launch (the run ends INTERNAL_ERROR with the
  termination reason Databricks gives, and its task never runs);
- OAuth machine-to-machine: the workspace's OIDC discovery document and its token endpoint
  (`client_credentials` with HTTP Basic client authentication, scope `all-apis`), which issues
  bearer tokens to the registered service principals only.

A submitted task runs as a subprocess (`task.py`) on the cluster's Python: a virtual environment
holding what the runtime ships and what the task's `libraries` install, and not the project
(`runtime.py`); a library that no index would serve fails the run as a failed library installation
does. `/dbfs/` is mapped to a local folder and `spark`, `sc` and `dbutils` (secrets) defined as a
Databricks cluster defines them. On a new (job) cluster the task starts its own Spark driver; on an
existing all-purpose cluster (`start_cluster`, `cluster.py`) it attaches its Python to that
cluster's long-lived driver JVM, and the cluster runs one task at a time (others stay PENDING until
it is free). The task gets a cluster's environment, not the test's: nothing of PATIENT_FLOW_*,
DATABRICKS_* or AZURE_* leaks into it, so whatever the remote step needs must travel the way it
travels on Databricks (the launcher's env_variables and secrets).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from patient_flow_dagster.resources.spark import local_spark_config
from patient_flow_dagster.settings import SparkSettings
from patient_flow_devtools.databricks_emulation.runtime import (
    LibraryNotFound,
    build_environment,
)

TASK_RUNNER = Path(__file__).with_name("task.py")
CLUSTER_DRIVER = Path(__file__).with_name("cluster.py")
LEAKY_PREFIXES = ("PATIENT_FLOW_", "DATABRICKS_", "AZURE_", "DAGSTER_")
MAX_READ = 1024 * 1024  # DBFS read returns at most 1 MB per call


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Fault:
    """Answer the `nth` matching request (1 = the next) with an error instead, once."""

    method: str
    path: str  # regular expression over the path and query
    status: int = 500
    code: str = "INTERNAL_ERROR"
    message: str = "Internal error, try again later."
    retry_after: int | None = None
    launch_failure: bool = False  # runs/submit accepted, then the cluster fails to launch
    nth: int = 1


LAUNCH_FAILURE = (
    "Cluster failed to launch: the cluster was terminated. Reason: "
    "CLOUD_PROVIDER_LAUNCH_FAILURE (CLOUD_FAILURE). Parameters: azure_error_code:"
    "OperationNotAllowed, azure_error_message:Operation could not be completed "
    "as it results in exceeding approved cores quota."
)


class OAuthError(ApiError):
    """An OAuth error body: {"error", "error_description"}."""


@dataclass
class Run:
    run_id: int
    spec: dict
    task_run_id: int = 0
    process: subprocess.Popen | None = None
    life_cycle: str = "PENDING"
    result: str | None = None
    message: str = ""
    log: Path | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class DatabricksEmulator:
    """Serve on 127.0.0.1 (random port); `secrets` is {scope: {key: value}}."""

    def __init__(
        self,
        root: Path,
        token: str,
        secrets: dict[str, dict[str, str]],
        service_principals: dict[str, str] | None = None,
        volumes: tuple[str, ...] = (),
        dbfs_enabled: bool = True,
    ):
        self.dbfs_root = root / "dbfs"
        self.logs = root / "run_logs"
        self.dbfs_root.mkdir(parents=True, exist_ok=True)
        self.volumes_root = root / "volumes"  # what /Volumes/ is on the emulated clusters
        self.volumes = set(volumes)  # "<catalog>/<schema>/<volume>"
        self.dbfs_enabled = dbfs_enabled
        self.logs.mkdir(parents=True, exist_ok=True)
        self.token = token
        self.service_principals = dict(service_principals or {})  # client id -> OAuth secret
        self.issued: dict[str, str] = {}  # access token -> client id
        self.start_seconds = {"new": 0.0, "pool": 0.0, "existing": 0.0}
        self.cold_starts: dict[str, int] = {"new": 0, "pool": 0}
        self.faults: list[Fault] = []
        self.faults_met: list[str] = []
        self.damage: str | None = None  # a regular expression: uploads it matches are cut short
        self.secrets_file = root / "secrets.json"
        self.secrets_file.write_text(json.dumps(secrets))
        self.clusters: dict[str, tuple[subprocess.Popen, dict, threading.Lock]] = {}
        self.cluster_versions: dict[str, str] = {}  # cluster id -> its runtime (spark_version)
        self.runs: dict[int, Run] = {}
        self.handles: dict[int, tuple[Path, bytearray]] = {}
        self._ids = itertools.count(1001)
        self._task_ids = itertools.count(7_340_001)  # task runs have ids of their own
        self._lock = threading.Lock()
        # The cluster's Python per set of libraries; the runner scripts beside them, so that
        # nothing of this test package is on a task's path.
        self.runtimes_root = root / "runtimes"
        self.runtimes: dict[frozenset, Path] = {}
        self.scripts = root / "scripts"
        self.scripts.mkdir(parents=True, exist_ok=True)
        for script in (TASK_RUNNER, CLUSTER_DRIVER):
            (self.scripts / script.name).write_text(script.read_text())
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> DatabricksEmulator:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        for run in self.runs.values():
            if run.process and run.process.poll() is None:
                os.killpg(run.process.pid, signal.SIGKILL)
        for driver, _, _ in self.clusters.values():
            driver.stdin.close()
            try:
                driver.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(driver.pid, signal.SIGKILL)
        self.server.shutdown()
        self.server.server_close()

    def define_cluster(self, cluster_id: str, spark_version: str = "17.3.x-scala2.13") -> None:
        """An all-purpose cluster the workspace knows (TERMINATED until started)."""
        self.cluster_versions.setdefault(cluster_id, spark_version)

    def get_cluster(self, query: dict) -> dict:
        cluster_id = query.get("cluster_id")
        if cluster_id not in self.cluster_versions:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Cluster {cluster_id} does not exist")
        return {
            "cluster_id": cluster_id,
            "spark_version": self.cluster_versions[cluster_id],
            "state": "RUNNING" if cluster_id in self.clusters else "TERMINATED",
        }

    def start_cluster(self, cluster_id: str, timeout: float = 180) -> None:
        """Start an all-purpose cluster: a Spark driver JVM that tasks attach to (once)."""
        self.define_cluster(cluster_id)
        if cluster_id in self.clusters:
            return
        connection = self.logs / f"cluster-{cluster_id}.json"
        env = self._cluster_environment({}, {})
        log = (self.logs / f"cluster-{cluster_id}.log").open("wb")
        python = self.runtime([])
        driver = subprocess.Popen(
            [str(python), str(self.scripts / CLUSTER_DRIVER.name), str(connection)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not connection.exists():
            if driver.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"cluster {cluster_id} did not start; see {log.name}")
            time.sleep(0.2)
        gateway = json.loads(connection.read_text())
        self.clusters[cluster_id] = (driver, gateway, threading.Lock())

    def _cluster_environment(self, spark_env_vars: dict, spark_conf: dict) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith((*LEAKY_PREFIXES, "PYTHON", "PYSPARK_"))
        }
        env.update({str(k): str(v) for k, v in spark_env_vars.items()})
        # A local Spark with Delta (what a runtime has) under the cluster's spark_conf; the
        # spark.databricks.* settings belong to the Databricks runtime (Photon, optimized
        # writes) and are left out.
        conf = {
            **local_spark_config(SparkSettings.from_env()),
            **{k: str(v) for k, v in spark_conf.items() if not k.startswith("spark.databricks.")},
        }
        env["EMULATED_SPARK_CONF"] = json.dumps(conf)
        return env

    def runtime(self, libraries: list[str]) -> Path:
        """The Python of a cluster with `libraries` installed (built once per set)."""
        key = frozenset(libraries)
        with self._lock:
            if key not in self.runtimes:
                target = self.runtimes_root / f"env-{len(self.runtimes)}"
                self.runtimes[key] = build_environment(target, sorted(key))
            return self.runtimes[key]

    # -- DBFS ---------------------------------------------------------------------------------
    def local_path(self, dbfs_path: str) -> Path:
        """`/a/b`, `dbfs:/a/b` and `/dbfs/a/b` all name the same file under the DBFS root;
        `/Volumes/...` is a file of a volume."""
        if dbfs_path.startswith("/Volumes/"):
            return self.volume_path(dbfs_path)
        if not self.dbfs_enabled:
            raise ApiError(
                403,
                "PERMISSION_DENIED",
                f"Public DBFS root is disabled. Access is denied on path: {dbfs_path}",
            )
        path = re.sub(r"^(dbfs:|/dbfs)(?=/)", "", dbfs_path)
        if not path.startswith("/"):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Path must be absolute: {dbfs_path}")
        resolved = (self.dbfs_root / path.lstrip("/")).resolve()
        if (
            self.dbfs_root.resolve() not in resolved.parents
            and resolved != self.dbfs_root.resolve()
        ):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Invalid path: {dbfs_path}")
        return resolved

    # -- Files API (Unity Catalog volumes) -------------------------------------------------------
    def volume_path(self, path: str) -> Path:
        parts = path.split("/")  # "", "Volumes", catalog, schema, volume, ...
        if len(parts) < 6 or parts[1] != "Volumes" or not all(parts[2:]) or ".." in parts:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Invalid path: {path}")
        if "/".join(parts[2:5]) not in self.volumes:
            raise ApiError(404, "NOT_FOUND", f"Volume '{'.'.join(parts[2:5])}' does not exist.")
        return self.volumes_root.joinpath(*parts[2:])

    def files_put(self, path: str, data: bytes, overwrite: bool) -> None:
        target = self.volume_path(path)
        if target.exists() and not overwrite:
            raise ApiError(409, "ALREADY_EXISTS", "The file being created already exists.")
        target.parent.mkdir(parents=True, exist_ok=True)  # directories created implicitly
        target.write_bytes(self._stored(path, data))

    def _stored(self, path: str, data: bytes) -> bytes:
        """What the storage keeps: the upload, or its first half when `damage` matches it."""
        if self.damage and re.search(self.damage, path):
            return data[: len(data) // 2]
        return data

    def files_get(self, path: str) -> Path:
        target = self.volume_path(path)
        if not target.is_file():
            raise ApiError(404, "NOT_FOUND", "The file being accessed is not found.")
        return target

    def dbfs_create(self, body: dict) -> dict:
        target = self.local_path(body["path"])
        if target.exists() and not body.get("overwrite", False):
            raise ApiError(
                400,
                "RESOURCE_ALREADY_EXISTS",
                f"A file or directory already exists at the input path {body['path']}.",
            )
        with self._lock:
            handle = next(self._ids)
            self.handles[handle] = (target, bytearray())
        return {"handle": handle}

    def _open_handle(self, body: dict) -> tuple[Path, bytearray]:
        handle = body.get("handle")
        if handle not in self.handles:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Invalid handle {handle}")
        return self.handles[handle]

    def dbfs_add_block(self, body: dict) -> dict:
        _, buffer = self._open_handle(body)
        data = base64.b64decode(body["data"])
        if len(data) > MAX_READ:
            raise ApiError(400, "MAX_BLOCK_SIZE_EXCEEDED", "The block exceeds 1 MB.")
        buffer.extend(data)
        return {}

    def dbfs_close(self, body: dict) -> dict:
        target, buffer = self._open_handle(body)
        del self.handles[body["handle"]]
        target.parent.mkdir(parents=True, exist_ok=True)  # DBFS creates parents implicitly
        temporary = target.with_name(f".{target.name}.part")
        temporary.write_bytes(self._stored(str(target), bytes(buffer)))
        temporary.replace(target)
        return {}

    def dbfs_read(self, query: dict) -> dict:
        target = self.local_path(query["path"])
        if not target.is_file():
            raise ApiError(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                f"No file or directory exists on path {query['path']}.",
            )
        offset, length = int(query.get("offset", 0)), int(query.get("length", MAX_READ))
        if length > MAX_READ or offset < 0:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "length must be at most 1 MB")
        with target.open("rb") as handle:
            handle.seek(offset)
            data = handle.read(length)
        return {"bytes_read": len(data), "data": base64.b64encode(data).decode()}

    # -- Jobs -------------------------------------------------------------------------------------
    SUBMIT_FIELDS = {
        "run_name",
        "tasks",
        "idempotency_token",
        "timeout_seconds",
        "health",
        "email_notifications",
        "notification_settings",
        "webhook_notifications",
        "access_control_list",
        "git_source",
        "queue",
        "run_as",
        "environments",
        "budget_policy_id",
        "_launch_failure",
    }
    TASK_FIELDS = {
        "task_key",
        "new_cluster",
        "existing_cluster_id",
        "libraries",
        "spark_python_task",
        "notebook_task",
        "spark_jar_task",
        "spark_submit_task",
        "timeout_seconds",
        "depends_on",
        "environment_key",
        "email_notifications",
        "notification_settings",
        "webhook_notifications",
        "health",
        "run_if",
        "description",
        "job_cluster_key",
    }
    CLUSTER_FIELDS = {
        "spark_version",
        "node_type_id",
        "driver_node_type_id",
        "num_workers",
        "autoscale",
        "instance_pool_id",
        "driver_instance_pool_id",
        "policy_id",
        "spark_conf",
        "spark_env_vars",
        "custom_tags",
        "data_security_mode",
        "runtime_engine",
        "single_user_name",
        "cluster_log_conf",
        "init_scripts",
        "ssh_public_keys",
        "enable_elastic_disk",
        "enable_local_disk_encryption",
        "apply_policy_default_values",
        "azure_attributes",
        "cluster_name",
        "kind",
        "is_single_node",
        "use_ml_runtime",
        "workload_type",
        "docker_image",
    }

    @staticmethod
    def _known_fields(given: dict, known: set[str], where: str) -> None:
        unknown = sorted(set(given) - known)
        if unknown:
            raise ApiError(
                400, "INVALID_PARAMETER_VALUE", f"Unknown field(s) in {where}: {', '.join(unknown)}"
            )

    def submit(self, body: dict) -> dict:
        self._known_fields(body, self.SUBMIT_FIELDS, "the request")
        tasks = body.get("tasks") or []
        if len(tasks) != 1:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "Expected exactly one task")
        task = tasks[0]
        self._known_fields(task, self.TASK_FIELDS, "the task")
        self._known_fields(task.get("new_cluster") or {}, self.CLUSTER_FIELDS, "new_cluster")
        python_task = task.get("spark_python_task")
        if not python_task:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "Only spark_python_task is emulated")
        cluster = task.get("new_cluster")
        existing = task.get("existing_cluster_id")
        if bool(cluster) == bool(existing):
            raise ApiError(
                400,
                "INVALID_PARAMETER_VALUE",
                "Exactly one of new_cluster and existing_cluster_id must be set",
            )
        if existing and existing not in self.clusters:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Cluster {existing} does not exist")
        if cluster and not cluster.get("spark_version"):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "Missing required field: spark_version")
        if cluster and cluster.get("instance_pool_id") and cluster.get("node_type_id"):
            raise ApiError(
                400,
                "INVALID_PARAMETER_VALUE",
                "The field 'node_type_id' cannot be supplied when an instance pool ID is provided.",
            )
        if cluster and not (cluster.get("instance_pool_id") or cluster.get("node_type_id")):
            raise ApiError(
                400,
                "INVALID_PARAMETER_VALUE",
                "Missing required field: node_type_id or instance_pool_id",
            )
        with self._lock:
            run = Run(next(self._ids), body, task_run_id=next(self._task_ids))
            self.runs[run.run_id] = run
        if body.pop("_launch_failure", False):
            run.life_cycle, run.result, run.message = "INTERNAL_ERROR", "FAILED", LAUNCH_FAILURE
            return {"run_id": run.run_id}
        threading.Thread(target=self._execute, args=(run, task), daemon=True).start()
        return {"run_id": run.run_id}

    def _execute(self, run: Run, task: dict) -> None:
        requirements = [
            library["pypi"]["package"] for library in task.get("libraries", []) if "pypi" in library
        ]
        try:
            python = self.runtime(requirements)
        except LibraryNotFound as missing:
            with run.lock:
                run.life_cycle, run.result = "INTERNAL_ERROR", "FAILED"
                run.message = (
                    "Library installation failed for library due to user error. "
                    f"Error messages: ERROR: Could not find a version that "
                    f"satisfies the requirement {missing}"
                )
            return
        python_task = task["spark_python_task"]
        cluster = task.get("new_cluster") or {}
        mode = (
            "existing"
            if task.get("existing_cluster_id")
            else "pool"
            if cluster.get("instance_pool_id")
            else "new"
        )
        time.sleep(self.start_seconds[mode])  # PENDING while the compute starts
        if mode != "existing":
            with self._lock:
                self.cold_starts[mode] += 1
        run.log = self.logs / f"run-{run.run_id}.log"
        env = self._cluster_environment(
            cluster.get("spark_env_vars") or {}, cluster.get("spark_conf") or {}
        )
        env["EMULATED_DATABRICKS_SECRETS"] = str(self.secrets_file)
        env["EMULATED_VOLUMES_ROOT"] = str(self.volumes_root)
        env["DATABRICKS_RUNTIME_VERSION"] = str(cluster.get("spark_version", "emulated"))
        command = [
            str(python),
            str(self.scripts / TASK_RUNNER.name),
            str(self.dbfs_root),
            str(self.local_path(python_task["python_file"])),
            *python_task.get("parameters", []),
        ]
        existing = task.get("existing_cluster_id")
        if existing:  # attach to the cluster's driver, one task at a time
            _, gateway, busy = self.clusters[existing]
            env["PYSPARK_GATEWAY_PORT"] = str(gateway["port"])
            env["PYSPARK_GATEWAY_SECRET"] = gateway["secret"]
            with busy:
                self._run_process(run, command, env)
        else:
            self._run_process(run, command, env)

    def _run_process(self, run: Run, command: list[str], env: dict[str, str]) -> None:
        with run.lock:
            if run.life_cycle != "PENDING":  # cancelled before it started
                return
            with run.log.open("wb") as log:
                run.process = subprocess.Popen(
                    command,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.dbfs_root,
                    start_new_session=True,
                )
            run.life_cycle = "RUNNING"
        code = run.process.wait()
        with run.lock:
            if run.life_cycle == "TERMINATING":
                run.life_cycle, run.result = "TERMINATED", "CANCELED"
                return
            run.life_cycle = "TERMINATED"
            run.result = "SUCCESS" if code == 0 else "FAILED"
            if code:
                tail = run.log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
                run.message = f"Task exited with code {code}: {tail[0][:300]}"

    def _run(self, run_id) -> Run:
        try:
            return self.runs[int(run_id)]
        except (KeyError, TypeError, ValueError):
            raise ApiError(
                400, "INVALID_PARAMETER_VALUE", f"Run {run_id} does not exist."
            ) from None

    def get_run(self, query: dict) -> dict:
        run = self._run(query.get("run_id"))
        with run.lock:
            state = {"life_cycle_state": run.life_cycle, "state_message": run.message}
            if run.result:
                state["result_state"] = run.result
        task = run.spec["tasks"][0]
        return {
            "run_id": run.run_id,
            "run_name": run.spec.get("run_name") or "Untitled",
            "state": state,
            "run_page_url": f"{self.host}/#job/runs/{run.run_id}",
            "tasks": [
                {
                    "task_key": task.get("task_key", "task"),
                    "run_id": run.task_run_id,
                    "state": state,
                    "cluster_instance": {
                        "cluster_id": task.get("existing_cluster_id") or f"job-{run.run_id}"
                    },
                }
            ],
        }

    def cancel(self, body: dict) -> dict:
        run = self._run(body.get("run_id"))
        with run.lock:
            if run.life_cycle == "PENDING":
                run.life_cycle, run.result = "TERMINATED", "CANCELED"
            elif run.life_cycle == "RUNNING":
                run.life_cycle = "TERMINATING"
                os.killpg(run.process.pid, signal.SIGKILL)
        return {}

    # -- OAuth M2M --------------------------------------------------------------------------------
    def oidc_discovery(self) -> dict:
        return {
            "issuer": f"{self.host}/oidc",
            "authorization_endpoint": f"{self.host}/oidc/v1/authorize",
            "token_endpoint": f"{self.host}/oidc/v1/token",
            "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
        }

    def issue_token(self, authorization: str | None, form: dict[str, str]) -> dict:
        """RFC 6749 client credentials, as the workspace's token endpoint answers them."""
        if form.get("grant_type") != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", "Only client_credentials is supported")
        if "all-apis" not in form.get("scope", "").split():
            raise OAuthError(400, "invalid_scope", "The requested scope is invalid")
        try:
            kind, encoded = (authorization or "").split(" ", 1)
            client_id, secret = base64.b64decode(encoded).decode().split(":", 1)
        except ValueError:
            raise OAuthError(401, "invalid_client", "Client authentication failed") from None
        if kind != "Basic" or self.service_principals.get(client_id) != secret:
            raise OAuthError(401, "invalid_client", "Client authentication failed")
        access_token = f"eyJ-emulated-{next(self._ids)}-{os.urandom(8).hex()}"
        self.issued[access_token] = client_id
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": "all-apis",
        }

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def _fault_for(self, method: str, target: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.method == method and re.search(fault.path, target):
                    fault.nth -= 1
                    if fault.nth == 0:
                        self.faults.remove(fault)
                        self.faults_met.append(
                            f"{method} {fault.path} -> "
                            f"{'launch failure' if fault.launch_failure else fault.status}"
                        )
                        return fault
        return None

    def authenticated(self, authorization: str | None) -> bool:
        kind, _, value = (authorization or "").partition(" ")
        return kind == "Bearer" and (value == self.token or value in self.issued)

    # -- HTTP -----------------------------------------------------------------------------------
    ROUTES = {
        ("POST", r"/api/2\.0/dbfs/create"): "dbfs_create",
        ("POST", r"/api/2\.0/dbfs/add-block"): "dbfs_add_block",
        ("POST", r"/api/2\.0/dbfs/close"): "dbfs_close",
        ("GET", r"/api/2\.0/dbfs/read"): "dbfs_read",
        ("POST", r"/api/2\.[12]/jobs/runs/submit"): "submit",
        ("GET", r"/api/2\.[12]/jobs/runs/get"): "get_run",
        ("POST", r"/api/2\.[12]/jobs/runs/cancel"): "cancel",
        ("GET", r"/api/2\.[01]/clusters/get"): "get_cluster",
    }

    def _handler(self):
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _reply(self, status: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _oauth(self, url) -> bool:
                """The OIDC endpoints, which take no bearer token."""
                try:
                    if url.path == "/oidc/.well-known/oauth-authorization-server":
                        self._reply(200, emulator.oidc_discovery())
                    elif url.path == "/oidc/v1/token" and self.command == "POST":
                        length = int(self.headers.get("Content-Length") or 0)
                        form = {
                            k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()
                        }
                        self._reply(
                            200, emulator.issue_token(self.headers.get("Authorization"), form)
                        )
                    else:
                        return False
                except OAuthError as error:
                    self._reply(
                        error.status, {"error": error.code, "error_description": error.message}
                    )
                return True

            def _files(self, method: str, url) -> None:
                """The Files API: raw bytes in and out, JSON errors."""
                path = unquote(url.path[len("/api/2.0/fs/files") :])
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                if method == "PUT":
                    length = int(self.headers.get("Content-Length") or 0)
                    emulator.files_put(
                        path,
                        self.rfile.read(length),
                        query.get("overwrite", "true").lower() == "true",
                    )
                    self.send_response(204)
                    self.end_headers()
                    return
                if method not in ("GET", "HEAD"):
                    raise ApiError(
                        400,
                        "INVALID_PARAMETER_VALUE",
                        f"{method} is not supported here (files up to 5 MB)",
                    )
                target = emulator.files_get(path)
                data = target.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Last-Modified", formatdate(target.stat().st_mtime, usegmt=True))
                self.end_headers()
                if method == "GET":
                    self.wfile.write(data)

            def _dispatch(self, method: str) -> None:
                url = urlparse(self.path)
                if url.path.startswith("/oidc/") and self._oauth(url):
                    return
                try:
                    if not emulator.authenticated(self.headers.get("Authorization")):
                        raise ApiError(401, "UNAUTHENTICATED", "Invalid access token.")
                    if url.path.startswith("/api/2.0/fs/files/"):
                        fault = emulator._fault_for(method, self.path)
                        if fault:
                            raise ApiError(fault.status, fault.code, fault.message)
                        self._files(method, url)
                        return
                    name = next(
                        (
                            n
                            for (m, pattern), n in emulator.ROUTES.items()
                            if m == method and re.fullmatch(pattern, url.path)
                        ),
                        None,
                    )
                    if name is None:
                        raise ApiError(
                            404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {url.path}'"
                        )
                    if method == "GET":
                        argument = {k: v[-1] for k, v in parse_qs(url.query).items()}
                    else:
                        length = int(self.headers.get("Content-Length") or 0)
                        argument = json.loads(self.rfile.read(length) or b"{}")
                    fault = emulator._fault_for(method, self.path)
                    if fault and fault.launch_failure:
                        argument["_launch_failure"] = True
                    elif fault:
                        self._reply(
                            fault.status,
                            {"error_code": fault.code, "message": fault.message},
                            {"Retry-After": str(fault.retry_after)}
                            if fault.retry_after is not None
                            else {},
                        )
                        return
                    self._reply(200, getattr(emulator, name)(argument))
                except ApiError as error:
                    self._reply(error.status, {"error_code": error.code, "message": error.message})
                except (KeyError, ValueError) as error:
                    self._reply(400, {"error_code": "MALFORMED_REQUEST", "message": str(error)})

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_POST(self) -> None:
                self._dispatch("POST")

            def do_PUT(self) -> None:
                self._dispatch("PUT")

            def do_HEAD(self) -> None:
                self._dispatch("HEAD")

        return Handler
