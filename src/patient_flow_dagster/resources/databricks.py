"""Production: every asset step runs on Databricks through `databricks_pyspark_step_launcher`.

The launcher zips the code (`src/`), uploads it with the pickled step to the staging folder
(`PATIENT_FLOW_DATABRICKS_STAGING`: a DBFS folder, or a Unity Catalog volume `/Volumes/...` through
the Files API), submits a one-time job run (`runs/submit`, a `spark_python_task`) on the cluster of
`databricks_job_cluster.json` beside this module (or an existing cluster: `DATABRICKS_CLUSTER_ID`),
and streams the step's Dagster events back. The remote step re-imports these definitions and
re-creates every resource, the launcher included, so it must see the same configuration: the
PATIENT_FLOW_* variables that are not secrets, the host and the run config travel as the
launcher's `env_variables`; no secret is ever copied (the token or a service principal's OAuth
secret, the pseudonym key, the landing credentials): they come from the Key Vault-backed secret
scope on the cluster (`secrets_to_env_variables`).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import patient_flow_dagster
from patient_flow_dagster.resources.databricks_runtime import check_runtime
from patient_flow_dagster.settings import DatabricksSettings
from patient_flow_dagster.variables import VARIABLES, describe

# Shipped with the package, so a non-editable install finds it too.
DEFAULT_CLUSTER_SPEC = Path(__file__).with_name("databricks_job_cluster.json")
RUN_CONFIG_VARIABLE = "PATIENT_FLOW_DATABRICKS_RUN_CONFIG"
# Configuration that is not secret and that the remote step needs to rebuild the definitions.
FORWARDED_PREFIX = "PATIENT_FLOW_"
NOT_FORWARDED = {"PATIENT_FLOW_DATABRICKS_CLUSTER_SPEC", "PATIENT_FLOW_CODE_PATH"} | {
    variable.name for variable in VARIABLES if variable.secret
}
# Secrets the remote step reads from the cluster's secret scope: (environment variable, key).
TOKEN_SECRET = ("DATABRICKS_TOKEN", "databricks-token")
CLIENT_SECRET = ("DATABRICKS_CLIENT_SECRET", "databricks-client-secret")
PSEUDONYM_SECRET = ("PATIENT_FLOW_PSEUDONYM_KEY", "pseudonym-key")
# The launcher's config key for a service principal's credentials (see databricks_step_launcher).
SERVICE_PRINCIPAL = "service_principal"


def databricks_run_config(databricks: DatabricksSettings) -> dict:
    """The Runs Submit settings: a job cluster per step from the cluster spec file (its VMs from
    an instance pool when one is set), or an existing cluster by id.

    A remote step receives the launching process's run config in RUN_CONFIG_VARIABLE (the spec
    file is not shipped with the code).
    """
    if databricks.forwarded_run_config:
        return json.loads(databricks.forwarded_run_config)
    spec = Path(databricks.cluster_spec or DEFAULT_CLUSTER_SPEC)
    if not spec.is_file():
        raise FileNotFoundError(
            f"Databricks cluster spec {spec} not found: set PATIENT_FLOW_DATABRICKS_CLUSTER_SPEC "
            "to a Runs Submit cluster spec"
        )
    run_config = json.loads(spec.read_text())
    run_config.pop("//", None)  # comment entry
    if databricks.cluster_id:
        run_config["cluster"] = {"existing": databricks.cluster_id}
        return run_config
    new = run_config["cluster"]["new"]
    if databricks.instance_pool:
        # Warm idle instances instead of new VMs; the pool fixes the node type, and the driver
        # comes from the same pool.
        new["nodes"] = {"instance_pool_id": databricks.instance_pool}
    if databricks.cluster_policy:
        new["policy_id"] = databricks.cluster_policy
    return run_config


def remote_env_variables(databricks: DatabricksSettings, run_config: dict) -> dict[str, str]:
    """What the remote step must see to rebuild the same definitions (nothing secret)."""
    forwarded = {
        name: value
        for name, value in databricks.forwarded.items()
        if name.startswith(FORWARDED_PREFIX) and name not in NOT_FORWARDED
    }
    forwarded["DATABRICKS_HOST"] = databricks.host or ""
    if databricks.client_id:  # an application id, not a secret
        forwarded["DATABRICKS_CLIENT_ID"] = databricks.client_id
    forwarded[RUN_CONFIG_VARIABLE] = json.dumps(run_config, sort_keys=True)
    return forwarded


def remote_secrets(databricks: DatabricksSettings) -> list[dict[str, str]]:
    """Secrets the remote step exports from the cluster's secret scope (Key Vault-backed): a
    service principal's OAuth secret (OAuth machine-to-machine when DATABRICKS_CLIENT_ID is set),
    else the personal access token, and the pseudonym key. No storage key: the cluster reaches
    the landing container and the lake through Unity Catalog's external locations."""
    credential = CLIENT_SECRET if databricks.service_principal else TOKEN_SECRET
    wanted = [credential, PSEUDONYM_SECRET]
    return [{"name": name, "scope": databricks.secret_scope, "key": key} for name, key in wanted]


def code_path(databricks: DatabricksSettings) -> str:
    """The folder the launcher zips and ships: the one holding the `patient_flow_dagster`
    package (`src/` of a checkout or an editable install)."""
    path = Path(databricks.code_path or Path(patient_flow_dagster.__file__).resolve().parents[1])
    if path.name in ("site-packages", "dist-packages"):
        raise ValueError(
            f"{path} is a site-packages folder: the step launcher would upload all of it. Install "
            "the project editable (pip install -e .) or set PATIENT_FLOW_CODE_PATH to a folder "
            "holding only the patient_flow_dagster package"
        )
    return str(path)


def step_launcher_config(databricks: DatabricksSettings) -> dict:
    """Config of the step launcher; the host and the credentials are environment variables that
    Dagster resolves when the resource starts: never stored, never shown."""
    run_config = databricks_run_config(databricks)
    credentials = (
        {
            SERVICE_PRINCIPAL: {
                "client_id": {"env": "DATABRICKS_CLIENT_ID"},
                "client_secret": {"env": "DATABRICKS_CLIENT_SECRET"},
            }
        }
        if databricks.service_principal
        else {"databricks_token": {"env": "DATABRICKS_TOKEN"}}
    )
    return {
        "run_config": run_config,
        "databricks_host": {"env": "DATABRICKS_HOST"},
        **credentials,
        "local_dagster_job_package_path": code_path(databricks),
        "staging_prefix": databricks.staging,
        "env_variables": remote_env_variables(databricks, run_config),
        "secrets_to_env_variables": remote_secrets(databricks),
        "poll_interval_sec": databricks.poll_seconds,
        "max_completion_wait_time_seconds": databricks.step_timeout,
        "verbose_logs": False,
        "connect_timeout": databricks.connect_timeout,
        "retry_seconds": databricks.retry_seconds,
        "runtime_check": databricks.runtime_check,
    }


class WorkspaceUnreachable(RuntimeError):
    """The workspace did not accept a connection: said in one line, within seconds."""


def check_reachable(host: str, timeout: float) -> None:
    """Open a TCP connection to the workspace. The SDK retries a refused or unresolvable host
    for minutes in silence; a step launch should say at once that the host is wrong or down."""
    url = urlparse(host if "://" in host else f"https://{host}")
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise WorkspaceUnreachable(
            f"Databricks workspace {host} is unreachable: {reason} (tried a TCP connection to "
            f"{url.hostname}:{port} for up to {timeout:g} s; check DATABRICKS_HOST)"
        ) from None


# Termination reasons of a cluster or driver that the same step may well survive a second time
# (Databricks' ClusterTerminationReason codes); a task that fails on its own is not retried.
TRANSIENT_TERMINATIONS = (
    "CLOUD_PROVIDER_LAUNCH_FAILURE",
    "CLOUD_PROVIDER_RESOURCE_STOCKOUT",
    "CLOUD_FAILURE",
    "INSTANCE_UNREACHABLE",
    "INSTANCE_POOL_CLUSTER_FAILURE",
    "DRIVER_UNREACHABLE",
    "DRIVER_UNRESPONSIVE",
    "SPOT_INSTANCE_TERMINATION",
    "COMMUNICATION_LOST",
    "NETWORK_CONFIGURATION_FAILURE",
    "AZURE_RESOURCE_PROVIDER_THROTTLING",
)


def is_transient(error: BaseException) -> bool:
    """A fault of the platform, not of the step: the API throttling or failing (429 / 5xx, after
    the SDK's own retries), or a cluster that did not launch or lost its driver. A failed check
    or an error in the step's code reaches the launcher as the remote step's failure event,
    never as an exception here, so it is never retried."""
    import requests
    from dagster_databricks.databricks import DatabricksError as RunFailed
    from databricks.sdk import errors

    if isinstance(
        error,
        (
            errors.TooManyRequests,
            errors.RequestLimitExceeded,
            errors.TemporarilyUnavailable,
            errors.InternalError,
            errors.DeadlineExceeded,
            requests.ConnectionError,
            requests.Timeout,
        ),
    ):
        return True
    return isinstance(error, RunFailed) and any(
        code in str(error) for code in TRANSIENT_TERMINATIONS
    )


def launch_retry_policy(first_wait_seconds: float):
    """At most two more launches of a step, exponential backoff with jitter."""
    from dagster import Backoff, Jitter, RetryPolicy

    return RetryPolicy(
        max_retries=2,
        delay=first_wait_seconds,
        backoff=Backoff.EXPONENTIAL,
        jitter=Jitter.PLUS_MINUS,
    )


VOLUMES = "/Volumes/"
# Staging on a Unity Catalog volume has no hook in dagster-databricks: the launcher below
# overrides two of its private path methods and swaps its runner's client for one whose file
# transfer goes over the Files API. Written against this version; test_databricks_shim.py fails
# on any other, and on any change of what the shim relies on.
SHIM_WRITTEN_AGAINST = "0.29.27"


class VolumeStaging:
    """dagster-databricks' `DatabricksClient` with its file transfer over the Files API, for
    staging on a Unity Catalog volume (workspaces without a DBFS root); everything else is the
    client's own."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        return getattr(self._client, name)

    def put_file(self, file_obj, path: str, overwrite: bool = False, **_) -> None:
        self._client.workspace_client.files.upload(path, file_obj, overwrite=overwrite)

    def read_file(self, path: str, **_) -> bytes:
        """The file's bytes; empty while it does not exist yet (the step's events file before
        the remote step writes it), as the launcher expects."""
        from databricks.sdk.errors import NotFound

        try:
            with self._client.workspace_client.files.download(path).contents as contents:
                return contents.read()
        except NotFound:
            return b""


def databricks_step_launcher(databricks: DatabricksSettings):
    """dagster-databricks' step launcher, extended (not forked): before it uploads anything it
    checks that the workspace answers and that the cluster's runtime can run the pickled step,
    and it launches a step again after a transient fault."""
    from dagster import Field, Noneable, RetryRequested, Shape, StringSource, resource
    from dagster_databricks import databricks_pyspark_step_launcher
    from dagster_databricks.databricks_pyspark_step_launcher import (
        DatabricksPySparkStepLauncher,
    )

    class CheckedStepLauncher(DatabricksPySparkStepLauncher):
        def __init__(
            self, connect_timeout: float, retry_seconds: float, runtime_check: bool, **config
        ):
            super().__init__(**config)
            self.connect_timeout = connect_timeout
            self.retry = launch_retry_policy(retry_seconds)
            self.runtime_check = runtime_check
            self.on_volume = self.staging_prefix.startswith(VOLUMES)
            if self.on_volume:
                # the runner exposes its client read-only; its file transfer goes over the Files API
                self.databricks_runner._client = VolumeStaging(  # type: ignore[assignment]
                    self.databricks_runner.client
                )

        def _dbfs_path(self, run_id: str, step_key: str, filename: str) -> str:
            if not self.on_volume:
                return super()._dbfs_path(run_id, step_key, filename)
            return "/".join(
                [
                    self.staging_prefix.rstrip("/"),
                    run_id,
                    self._sanitize_step_key(step_key),
                    os.path.basename(filename),
                ]
            )

        def _internal_dbfs_path(self, run_id: str, step_key: str, filename: str) -> str:
            """On a volume the cluster reads the same /Volumes/... path the API writes."""
            if not self.on_volume:
                return super()._internal_dbfs_path(run_id, step_key, filename)
            return self._dbfs_path(run_id, step_key, filename)

        def spark_version(self) -> str:
            """The runtime the step will run on: the job cluster's, or the existing
            cluster's as the workspace reports it."""
            cluster = self.run_config["cluster"]
            if "existing" in cluster:
                clusters = self.databricks_runner.client.workspace_client.clusters
                return clusters.get(cluster["existing"]).spark_version or ""
            return cluster["new"]["spark_version"]

        def launch_step(self, step_context):
            check_reachable(self.databricks_host, self.connect_timeout)
            if self.runtime_check:
                check_runtime(self.spark_version())
            try:
                yield from super().launch_step(step_context)
            except Exception as error:
                if not is_transient(error):
                    raise
                attempt = step_context.previous_attempt_count + 1
                retry = self.retry
                wait = retry.calculate_delay(attempt)
                step_context.log.warning(
                    f"transient Databricks fault ({type(error).__name__}: "
                    f"{str(error).splitlines()[0][:200]}); launching the step again in "
                    f"{wait:.0f} s (attempt {attempt + 1} of {retry.max_retries + 1})"
                )
                raise RetryRequested(max_retries=retry.max_retries, seconds_to_wait=wait) from error

    launcher_schema = databricks_pyspark_step_launcher.config_schema.config_type
    assert isinstance(launcher_schema, Shape), launcher_schema
    launcher_fields = launcher_schema.fields
    # The launcher's own schema, plus a service principal's credentials as environment
    # variables (its `oauth_credentials` take plain strings only, which would store the secret)
    # and this extension's own settings.
    schema = Shape(
        {
            **launcher_fields,
            SERVICE_PRINCIPAL: Field(
                Noneable(Shape({"client_id": StringSource, "client_secret": StringSource})),
                default_value=None,
                description="A service principal's OAuth credentials, from the environment.",
            ),
            "connect_timeout": Field(
                float, description=describe("PATIENT_FLOW_DATABRICKS_CONNECT_TIMEOUT")
            ),
            "retry_seconds": Field(
                float, description=describe("PATIENT_FLOW_DATABRICKS_RETRY_SECONDS")
            ),
            "runtime_check": Field(
                bool, description=describe("PATIENT_FLOW_DATABRICKS_RUNTIME_CHECK")
            ),
        }
    )

    @resource(config_schema=schema, description=databricks_pyspark_step_launcher.description)
    def checked_step_launcher(context):
        config = dict(context.resource_config)
        if principal := config.pop(SERVICE_PRINCIPAL, None):
            config["oauth_credentials"] = principal
        return CheckedStepLauncher(**config)

    return checked_step_launcher.configured(step_launcher_config(databricks))
