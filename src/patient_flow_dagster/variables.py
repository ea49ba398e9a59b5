"""Every environment variable the product reads, declared once: name, default, meaning.

`settings.py` reads them (and nothing else in the package touches the environment);
docs/configuration.md lists them all, and a test holds the two together.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variable:
    name: str
    default: str | None
    description: str


VARIABLES: tuple[Variable, ...] = (
    # where and how
    Variable("PATIENT_FLOW_ENV", "local", "local (embedded Spark) or databricks (step launches)."),
    Variable("PATIENT_FLOW_LAKE", ".lake", "Lake root: Delta folders and streaming checkpoints."),
    Variable(
        "PATIENT_FLOW_LANDING",
        None,
        "Landing zone: a folder, or a wasbs:// / abfss:// URL (default <lake>/landing/"
        "patient_events).",
    ),
    Variable(
        "PATIENT_FLOW_CATALOG",
        None,
        "Unity Catalog catalog for the tables (<catalog>.<layer>.<table>); unset: folders.",
    ),
    Variable(
        "PATIENT_FLOW_LANDING_READER",
        None,
        "files (bronze reads the file versions its ledger lists) or autoloader (default on "
        "databricks).",
    ),
    Variable("PATIENT_FLOW_LANDING_SCHEMAS", None, "Auto Loader's schema location."),
    Variable(
        "PATIENT_FLOW_LANDING_RETENTION_HOURS",
        "24",
        "Hours an ingested or rejected landing file stays before it moves to the archive "
        "(off: never).",
    ),
    Variable(
        "PATIENT_FLOW_LANDING_ARCHIVE",
        None,
        "Where landing files are archived: a folder or URL beside the landing zone, never "
        "inside it (default <landing>_archive).",
    ),
    Variable(
        "PATIENT_FLOW_MAX_FILES_PER_TRIGGER",
        "1000",
        "Landing files per bronze batch (one Delta commit).",
    ),
    Variable("PATIENT_FLOW_SENSOR_INTERVAL", "10", "Seconds between landing sensor checks."),
    Variable(
        "PATIENT_FLOW_FRESHNESS_WARN_MINUTES",
        "15",
        "Minutes without an update after which silver, gold and the KPIs warn.",
    ),
    Variable(
        "PATIENT_FLOW_FRESHNESS_FAIL_MINUTES",
        "30",
        "Minutes without an update after which silver, gold and the KPIs fail freshness.",
    ),
    Variable(
        "PATIENT_FLOW_UI_URL",
        "http://127.0.0.1:3000",
        "The Dagster UI's address, for links in alerts.",
    ),
    Variable("PATIENT_FLOW_SMTP_HOST", None, "SMTP server for e-mail alerts (unset: no e-mail)."),
    Variable("PATIENT_FLOW_SMTP_PORT", "587", "SMTP port."),
    Variable("PATIENT_FLOW_SMTP_SECURITY", "starttls", "starttls, ssl or none."),
    Variable("PATIENT_FLOW_SMTP_SENDER", None, "From address of alert e-mails."),
    Variable("PATIENT_FLOW_SMTP_RECIPIENTS", None, "Comma-separated alert recipients."),
    Variable("PATIENT_FLOW_SMTP_USER", None, "SMTP login (unset: no login)."),
    Variable("PATIENT_FLOW_SMTP_PASSWORD", None, "SMTP password (a secret)."),
    Variable(
        "PATIENT_FLOW_ALERT_WEBHOOK_URL",
        None,
        "Incoming webhook for alerts, Teams or Slack (a secret: the URL is the credential).",
    ),
    Variable("PATIENT_FLOW_ALERT_WEBHOOK_FORMAT", "teams", "teams or slack."),
    Variable(
        "PATIENT_FLOW_LAKE_LOCK_TIMEOUT",
        "300",
        "Seconds a run waits while another run writes the local lake, then fails.",
    ),
    Variable(
        "PATIENT_FLOW_QUARANTINE_ERROR_RATIO",
        "0.10",
        "Share of a batch a quarantine rule may take before its check is ERROR (blocks gold).",
    ),
    Variable(
        "PATIENT_FLOW_ADMISSION_GRACE",
        "21600",
        "Seconds an encounter's events may wait for its admission before a check warns.",
    ),
    # local Spark
    Variable("PATIENT_FLOW_SPARK_MASTER", "local[*]", "Master of the embedded Spark session."),
    Variable("PATIENT_FLOW_SHUFFLE_PARTITIONS", "4", "Shuffle partitions of the embedded session."),
    Variable("PATIENT_FLOW_DRIVER_MEMORY", "4g", "Driver memory of the embedded session."),
    Variable(
        "PATIENT_FLOW_SPARK_CONF",
        None,
        "More settings of the embedded session, a JSON object of Spark settings; they "
        "win over the project's own.",
    ),
    Variable(
        "PATIENT_FLOW_SPARK_EVENT_LOG",
        None,
        "Folder for Spark's event log (profiling); unset: no event log.",
    ),
    Variable(
        "PATIENT_FLOW_SPARK_DRIVER",
        None,
        "Connection file of the warm Spark driver that runs attach to (set by ./run dev).",
    ),
    Variable(
        "PATIENT_FLOW_JVM_ARCHIVE",
        None,
        "Path of the JVM class archive, or off (default: in the user's cache folder).",
    ),
    Variable(
        "PATIENT_FLOW_JVM_DUMP",
        None,
        "Internal, set by `patient-flow jvm-archive`: where the training JVM dumps classes.",
    ),
    # Databricks
    Variable(
        "PATIENT_FLOW_MAX_CONCURRENT_STEPS",
        "4",
        "Steps launched side by side on Databricks (1: one at a time, in process).",
    ),
    Variable(
        "PATIENT_FLOW_DATABRICKS_CLUSTER_SPEC",
        None,
        "JSON file of the job cluster (default: the packaged databricks_job_cluster.json).",
    ),
    Variable(
        "PATIENT_FLOW_DATABRICKS_INSTANCE_POOL",
        None,
        "Instance pool the job clusters draw their VMs from (Terraform creates it).",
    ),
    Variable(
        "PATIENT_FLOW_DATABRICKS_CLUSTER_POLICY",
        None,
        "Cluster policy the job clusters are created under (Terraform creates it).",
    ),
    Variable(
        "PATIENT_FLOW_DATABRICKS_RUN_CONFIG",
        None,
        "Internal, forwarded to remote steps: the launcher's run config as JSON.",
    ),
    Variable(
        "PATIENT_FLOW_DATABRICKS_STAGING",
        "/dagster_staging",
        "Where the launcher stages the code zip, pickled steps and event files: a DBFS "
        "folder, or a Unity Catalog volume /Volumes/<catalog>/<schema>/<volume>/... (Files "
        "API; for workspaces without a DBFS root).",
    ),
    Variable("PATIENT_FLOW_DATABRICKS_POLL_SECONDS", "5", "Seconds between run status polls."),
    Variable(
        "PATIENT_FLOW_DATABRICKS_RETRY_SECONDS",
        "30",
        "First wait before a step is launched again after a transient Databricks fault "
        "(doubling, with jitter; two more launches at most).",
    ),
    Variable(
        "PATIENT_FLOW_DATABRICKS_CONNECT_TIMEOUT",
        "10",
        "Seconds a step launch waits for the workspace to accept a connection, then fails.",
    ),
    Variable(
        "PATIENT_FLOW_DATABRICKS_RUNTIME_CHECK",
        "on",
        "Refuse to launch on a runtime whose Python minor or Spark major differs from the "
        "launching process's (off: a custom image you have matched yourself).",
    ),
    Variable(
        "PATIENT_FLOW_DATABRICKS_STEP_TIMEOUT",
        "10800",
        "Seconds a step may run on Databricks before it fails.",
    ),
    Variable(
        "PATIENT_FLOW_SECRET_SCOPE",
        "patient-flow",
        "Databricks secret scope holding the token and the landing credentials.",
    ),
    Variable(
        "PATIENT_FLOW_CODE_PATH",
        None,
        "Folder of the package to zip for remote steps (default: the installed package).",
    ),
    Variable("DATABRICKS_HOST", None, "Workspace URL."),
    Variable("DATABRICKS_TOKEN", None, "Token (secret; on the cluster from the secret scope)."),
    Variable(
        "DATABRICKS_CLIENT_ID",
        None,
        "Service principal's application id: OAuth M2M instead of a token.",
    ),
    Variable(
        "DATABRICKS_CLIENT_SECRET",
        None,
        "Service principal's OAuth secret (secret; on the cluster from the secret scope).",
    ),
    Variable("DATABRICKS_CLUSTER_ID", None, "Run steps on this existing cluster instead."),
    # Azure and streams
    Variable(
        "AZURE_STORAGE_CONNECTION_STRING",
        None,
        "Landing container and Event Hubs checkpoints (secret).",
    ),
    Variable("EVENTHUBS_CONNECTION_STRING", None, "Event Hubs SAS connection string (secret)."),
    Variable(
        "EVENTHUBS_NAMESPACE",
        None,
        "<ns>.servicebus.windows.net: Event Hubs with DefaultAzureCredential, no secret.",
    ),
    Variable(
        "EVENTHUBS_CHECKPOINT_ACCOUNT_URL",
        None,
        "Blob account URL of the checkpoint store with DefaultAzureCredential.",
    ),
    Variable(
        "EVENTHUBS_CHECKPOINT_CONTAINER",
        "eventhubs-checkpoints",
        "Container of the Event Hubs checkpoint store.",
    ),
    Variable(
        "PATIENT_FLOW_BROKER_TIMEOUT",
        "30",
        "Seconds the Kafka consumer waits for a reachable broker before it gives up.",
    ),
    # the machine
    Variable("DAGSTER_HOME", None, "Dagster instance folder (./run sets .dagster_home)."),
    Variable("JAVA_HOME", None, "The JDK Spark runs on (else java on PATH)."),
    Variable("XDG_CACHE_HOME", None, "Cache folder of the JVM class archive (default ~/.cache)."),
)
