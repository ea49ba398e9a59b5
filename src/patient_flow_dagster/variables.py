"""Every environment variable the product reads, declared once: name, default, meaning, and the
resource field it fills.

`settings.py` reads them (nothing else in the package touches the environment); the resources
take their descriptions and defaults from here (`resource_field`), so the UI's resource pages say
what each field means and which variable sets it; docs/configuration.md is generated from this
table (`patient-flow config-reference`), and a test holds the two together word for word.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Variable:
    name: str
    default: str | None
    meaning: str  # markdown, as the configuration reference shows it
    # How the reference shows a default that another setting or the machine decides.
    shown_default: str | None = None
    # "<resource key>.<field>" this variable fills (None: a setting of the CLI, the JVM's process,
    # the sensors and schedules, or a client outside Dagster).
    fills: str | None = None
    # A credential: resolved where it is used, never forwarded, logged or shown.
    secret: bool = False


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "PATIENT_FLOW_ENV",
        "local",
        "`local` (embedded Spark + Delta) or `databricks` (step launches)",
    ),
    Variable(
        "PATIENT_FLOW_LAKE",
        ".lake",
        "lake root: Delta tables `<root>/<layer>/<table>`, checkpoints `<root>/_checkpoints`",
        fills="lake.root",
    ),
    Variable(
        "PATIENT_FLOW_LANDING",
        None,
        "landing zone: a folder, or a `wasbs://` / `abfss://` URL",
        shown_default="`<lake>/landing/patient_events`",
        fills="landing.path",
    ),
    Variable(
        "PATIENT_FLOW_CATALOG",
        None,
        "Unity Catalog catalog: tables become `<catalog>.<layer>.<table>`",
        fills="lake.catalog",
    ),
    Variable(
        "PATIENT_FLOW_LANDING_READER",
        None,
        "how bronze reads landing",
        shown_default="`files` (`autoloader` on databricks)",
        fills="landing.reader",
    ),
    Variable(
        "PATIENT_FLOW_LANDING_SCHEMAS",
        None,
        "Auto Loader's schema location",
        fills="landing.autoloader_schema_location",
    ),
    Variable(
        "PATIENT_FLOW_LANDING_RETENTION_HOURS",
        "24",
        "hours an ingested or rejected file stays in landing before it is archived (`off`: never)",
        fills="landing.retention_hours",
    ),
    Variable(
        "PATIENT_FLOW_LANDING_ARCHIVE",
        None,
        "where landing files are archived (beside the landing zone, never inside it)",
        shown_default="`<landing>_archive`",
        fills="landing.archive",
    ),
    Variable(
        "PATIENT_FLOW_MAX_FILES_PER_TRIGGER",
        "1000",
        "landing files per bronze batch (one Delta commit)",
        fills="landing.max_files_per_trigger",
    ),
    Variable("PATIENT_FLOW_SENSOR_INTERVAL", "10", "seconds between landing sensor checks"),
    Variable(
        "PATIENT_FLOW_FRESHNESS_WARN_MINUTES",
        "15",
        "minutes without an update before silver, gold and the KPIs warn",
    ),
    Variable(
        "PATIENT_FLOW_FRESHNESS_FAIL_MINUTES",
        "30",
        "minutes without an update before they fail freshness (and alert)",
    ),
    Variable(
        "PATIENT_FLOW_UI_URL",
        "http://127.0.0.1:3000",
        "the Dagster UI's address, for links in alerts",
        fills="alerts.ui_url",
    ),
    Variable(
        "PATIENT_FLOW_SMTP_HOST",
        None,
        "SMTP server for e-mail alerts (unset: no e-mail)",
        fills="alerts.smtp_host",
    ),
    Variable("PATIENT_FLOW_SMTP_PORT", "587", "SMTP port", fills="alerts.smtp_port"),
    Variable(
        "PATIENT_FLOW_SMTP_SECURITY",
        "starttls",
        "`starttls`, `ssl` or `none`",
        fills="alerts.smtp_security",
    ),
    Variable(
        "PATIENT_FLOW_SMTP_SENDER",
        None,
        "From address of alert e-mails",
        fills="alerts.smtp_sender",
    ),
    Variable(
        "PATIENT_FLOW_SMTP_RECIPIENTS",
        None,
        "comma-separated recipients",
        fills="alerts.smtp_recipients",
    ),
    Variable("PATIENT_FLOW_SMTP_USER", None, "SMTP login (unset: none)", fills="alerts.smtp_user"),
    Variable(
        "PATIENT_FLOW_SMTP_PASSWORD",
        None,
        "SMTP password (a secret)",
        fills="alerts.smtp_password",
        secret=True,
    ),
    Variable(
        "PATIENT_FLOW_ALERT_WEBHOOK_URL",
        None,
        "incoming webhook for alerts, Teams or Slack (a secret: the URL is the credential)",
        fills="alerts.webhook_url",
        secret=True,
    ),
    Variable(
        "PATIENT_FLOW_ALERT_WEBHOOK_FORMAT",
        "teams",
        "`teams` or `slack`",
        fills="alerts.webhook_format",
    ),
    Variable(
        "PATIENT_FLOW_REFERENCE_DIR",
        None,
        "folder of the hospital's reference data: `hospitals.csv` (hospital_id, name, time_zone) "
        "and `departments.csv` (hospital_id, department, bed_capacity, inpatient); a local "
        "folder or a Unity Catalog volume path",
        shown_default="the sample shipped with the package",
        fills="reference.folder",
    ),
    Variable(
        "PATIENT_FLOW_FISCAL_YEAR_START_MONTH",
        "1",
        "month (1-12) the hospital's fiscal year starts in, for `gold.dim_date` (e.g. 7 for "
        "July, 4 for April); a fiscal year is named by the calendar year it ends in",
        fills="reference.fiscal_year_start_month",
    ),
    Variable(
        "PATIENT_FLOW_PSEUDONYM_KEY",
        "patient-flow demo key: simulated patients only",
        "secret key of the analytics zone's pseudonyms (HMAC-SHA-256 of patient and visit "
        "identifiers); required on databricks, from the secret scope; changing it means a full "
        "refresh of gold",
        shown_default="a built-in demo key, local only",
        fills="pseudonyms.key",
        secret=True,
    ),
    Variable(
        "PATIENT_FLOW_LAKE_LOCK_TIMEOUT",
        "300",
        "seconds a run waits while another run writes the local lake, then fails naming that run",
        fills="lake.writer_lock_timeout",
    ),
    Variable(
        "PATIENT_FLOW_QUARANTINE_ERROR_RATIO",
        "0.10",
        "share of a batch a quarantine rule may take before its check is ERROR (blocks gold)",
        fills="quality.error_ratio",
    ),
    Variable(
        "PATIENT_FLOW_ADMISSION_GRACE",
        "21600",
        "seconds an encounter's events may wait for its admission before a check warns",
        fills="quality.admission_grace_seconds",
    ),
    Variable(
        "PATIENT_FLOW_SPARK_MASTER",
        "local[*]",
        "master of the embedded Spark session",
        fills="pyspark.spark_config",
    ),
    Variable(
        "PATIENT_FLOW_SHUFFLE_PARTITIONS",
        "4",
        "`spark.sql.shuffle.partitions`",
        fills="pyspark.spark_config",
    ),
    Variable(
        "PATIENT_FLOW_DRIVER_MEMORY",
        "4g",
        "driver memory of the embedded session",
        fills="pyspark.spark_config",
    ),
    Variable(
        "PATIENT_FLOW_SPARK_CONF",
        None,
        "more Spark settings of the embedded session, a JSON object (they win over the project's)",
        fills="pyspark.spark_config",
    ),
    Variable(
        "PATIENT_FLOW_SPARK_EVENT_LOG",
        None,
        "a folder: record Spark's event log there, for profiling",
        fills="pyspark.spark_config",
    ),
    Variable(
        "PATIENT_FLOW_SPARK_DRIVER",
        None,
        "connection file of the warm Spark driver",
        shown_default="`$DAGSTER_HOME/spark-driver.json` under `./run dev`",
        fills="pyspark.warm_driver",
    ),
    Variable(
        "PATIENT_FLOW_JVM_ARCHIVE",
        None,
        "JVM class archive path, or `off`",
        shown_default="`~/.cache/patient_flow_dagster/spark-classes-<hash>.jsa`",
        fills="pyspark.spark_config",
    ),
    Variable(
        "PATIENT_FLOW_JVM_DUMP",
        None,
        "internal: where the archive's training JVM dumps its classes",
        fills="pyspark.spark_config",
    ),
    Variable("PATIENT_FLOW_MAX_CONCURRENT_STEPS", "4", "steps launched side by side on Databricks"),
    Variable(
        "PATIENT_FLOW_DATABRICKS_CLUSTER_SPEC",
        None,
        "Runs Submit cluster settings",
        shown_default="packaged `databricks_job_cluster.json`",
        fills="step_launcher.run_config",
    ),
    Variable(
        "PATIENT_FLOW_DATABRICKS_INSTANCE_POOL",
        None,
        "instance pool the job clusters draw their VMs from",
        fills="step_launcher.run_config",
    ),
    Variable(
        "PATIENT_FLOW_DATABRICKS_CLUSTER_POLICY",
        None,
        "cluster policy of the job clusters",
        fills="step_launcher.run_config",
    ),
    Variable(
        "PATIENT_FLOW_DATABRICKS_RUN_CONFIG",
        None,
        "internal: the launcher's run config, forwarded to remote steps",
        fills="step_launcher.run_config",
    ),
    Variable(
        "PATIENT_FLOW_DATABRICKS_STAGING",
        "/dagster_staging",
        "where the launcher stages the code zip, pickled steps and events: a DBFS folder or a "
        "Unity Catalog volume `/Volumes/...`",
        fills="step_launcher.staging_prefix",
    ),
    Variable(
        "PATIENT_FLOW_DATABRICKS_POLL_SECONDS",
        "5",
        "seconds between run status polls",
        fills="step_launcher.poll_interval_sec",
    ),
    Variable(
        "PATIENT_FLOW_DATABRICKS_RETRY_SECONDS",
        "30",
        "first wait before a step is launched again after a transient Databricks fault "
        "(doubling, with jitter; 2 more launches at most)",
        fills="step_launcher.retry_seconds",
    ),
    Variable(
        "PATIENT_FLOW_DATABRICKS_CONNECT_TIMEOUT",
        "10",
        "seconds a step launch waits for the workspace to answer, then fails",
        fills="step_launcher.connect_timeout",
    ),
    Variable(
        "PATIENT_FLOW_DATABRICKS_RUNTIME_CHECK",
        "on",
        "refuse a runtime whose Python minor or Spark major differs from the launching "
        "process's (`off` for a custom image you matched yourself)",
        fills="step_launcher.runtime_check",
    ),
    Variable(
        "PATIENT_FLOW_DATABRICKS_STEP_TIMEOUT",
        "10800",
        "seconds a step may run on Databricks",
        fills="step_launcher.max_completion_wait_time_seconds",
    ),
    Variable(
        "PATIENT_FLOW_SECRET_SCOPE",
        "patient-flow",
        "secret scope with the token and landing credentials",
        fills="step_launcher.secrets_to_env_variables",
    ),
    Variable(
        "PATIENT_FLOW_CODE_PATH",
        None,
        "what the launcher zips for remote steps",
        shown_default="the installed package's folder",
        fills="step_launcher.local_dagster_job_package_path",
    ),
    Variable("DATABRICKS_HOST", None, "workspace URL", fills="step_launcher.databricks_host"),
    Variable(
        "DATABRICKS_TOKEN",
        None,
        "token of the launching process (a secret; never in a file of the repo)",
        fills="step_launcher.databricks_token",
        secret=True,
    ),
    Variable(
        "DATABRICKS_CLIENT_ID",
        None,
        "service principal's application id: OAuth M2M instead of a token",
        fills="step_launcher.service_principal",
    ),
    Variable(
        "DATABRICKS_CLIENT_SECRET",
        None,
        "service principal's OAuth secret (a secret)",
        fills="step_launcher.service_principal",
        secret=True,
    ),
    Variable(
        "DATABRICKS_CLUSTER_ID",
        None,
        "run steps on this existing cluster",
        fills="step_launcher.run_config",
    ),
    Variable(
        "AZURE_STORAGE_CONNECTION_STRING",
        None,
        "Azure landing zone and Event Hubs checkpoints (a secret)",
        fills="landing.connection_string",
        secret=True,
    ),
    Variable(
        "EVENTHUBS_CONNECTION_STRING",
        None,
        "Event Hubs SAS connection string (a secret)",
        secret=True,
    ),
    Variable(
        "EVENTHUBS_NAMESPACE",
        None,
        "`<ns>.servicebus.windows.net`: Event Hubs with `DefaultAzureCredential`",
    ),
    Variable(
        "EVENTHUBS_CHECKPOINT_ACCOUNT_URL",
        None,
        "checkpoint store's blob account with `DefaultAzureCredential`",
    ),
    Variable(
        "EVENTHUBS_CHECKPOINT_CONTAINER", "eventhubs-checkpoints", "checkpoint store container"
    ),
    Variable(
        "PATIENT_FLOW_BROKER_TIMEOUT",
        "30",
        "seconds the Kafka consumer waits for a reachable broker before it gives up (exit code 2)",
    ),
    Variable(
        "DAGSTER_HOME",
        None,
        "Dagster instance folder",
        shown_default="`.dagster_home` under `./run`",
    ),
    Variable("JAVA_HOME", None, "the JDK Spark runs on", shown_default="`java` on `PATH`"),
    Variable(
        "XDG_CACHE_HOME", None, "where the JVM class archive is kept", shown_default="`~/.cache`"
    ),
)

DECLARED = {variable.name: variable for variable in VARIABLES}


_PARSED = object()


def resource_field(
    name: str, parse: Callable[[str], Any] = str, default: Any = _PARSED, **constraints: Any
) -> Any:
    """A resource's pydantic field for the variable `name`: its default parsed from the
    declaration (or `default`, where the resource's own differs, e.g. off on Databricks), its
    description the declaration's meaning and the variable's name."""
    from pydantic import Field

    if default is _PARSED:
        declared = DECLARED[name].default
        default = None if declared is None else parse(declared)
    return Field(default=default, description=describe(name), **constraints)


def describe(name: str) -> str:
    """The variable's meaning as plain text, with its name: what the UI shows for the field."""
    return f"{DECLARED[name].meaning.replace('`', '')} (set by {name})"
