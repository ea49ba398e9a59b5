"""Every setting, read from the environment in this one module (docs/architecture.md,
"Environments").

`VARIABLES` declares each environment variable the product reads, with its default and meaning.
Nothing else in the package touches `os.environ`. The definitions take a `Settings`, the embedded
JVM a `SparkSettings` and the step launcher a `DatabricksSettings`, each read and checked once by
its `from_env()`; a bad value is a `SettingsError` that names the variable. Resources get their
fields from these, as `EnvVar`s where the value is the variable's text (`sourced`), so the UI shows
where each came from. Clients outside Dagster (the ingest commands) ask `read(name)`.
`dagster dev` honours a `.env` file, so the same variables configure the UI, the CLI and tests.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from dagster import EnvVar

from patient_flow_dagster.variables import DECLARED as _DECLARED
from patient_flow_dagster.variables import VARIABLES as VARIABLES

ENVIRONMENTS = ("local", "databricks")
LANDING_READERS = ("files", "autoloader")


class SettingsError(ValueError):
    """A setting with a value the product cannot use; the message names the variable."""


def environment() -> dict[str, str]:
    """A copy of the process environment (for code that takes a mapping, and for tests)."""
    return dict(os.environ)


def read(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of a declared variable, or its default when unset or empty."""
    variable = _DECLARED[name]  # an undeclared name is a bug: declare it in VARIABLES
    value = (os.environ if environ is None else environ).get(name)
    return value if value else variable.default


def sourced(name: str, value):
    """`value` for a resource field, as `EnvVar(name)` when it is the variable's own text (so the
    UI shows the field as set by that variable, and a secret never enters the definitions);
    otherwise the value itself (a default, or a value this module derived or normalized)."""
    text = os.environ.get(name)
    if not text:
        return value
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int) and text.strip() == str(value):
        return EnvVar.int(name)
    if isinstance(value, str) and text == value:
        return EnvVar(name)
    return value


def secret(name: str):
    """A secret for a resource field: `EnvVar(name)` when set, resolved when the resource starts,
    never stored in the definitions or shown in the UI; None when unset."""
    return EnvVar(name) if os.environ.get(name) else None


def read_set(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The value of a variable that has a default (or must be set): never None."""
    value = read(name, environ)
    if value is None:
        raise SettingsError(f"{name} is not set")
    return value


def _read_number(
    name: str, environ: Mapping[str, str] | None, parse, what: str, valid, invalid: str
):
    """A number parsed from the variable: `what` it must be when it does not parse, `invalid`
    (formatted with the value) when it parses but `valid` refuses it."""
    text = read(name, environ)
    try:
        value = parse(text)
    except (TypeError, ValueError):
        raise SettingsError(f"{name}={text!r} is not {what}") from None
    if not valid(value):
        raise SettingsError(f"{name}={invalid.format(value=value, text=text)}")
    return value


def read_int(name: str, environ: Mapping[str, str] | None = None, minimum: int = 1) -> int:
    return _read_number(
        name,
        environ,
        int,
        "a whole number",
        lambda value: value >= minimum,
        f"{{value}} must be at least {minimum}",
    )


def read_month(name: str, environ: Mapping[str, str] | None = None) -> int:
    return _read_number(
        name,
        environ,
        int,
        "a month number",
        lambda value: 1 <= value <= 12,
        "{value} must be a month from 1 to 12",
    )


def read_seconds(name: str, environ: Mapping[str, str] | None = None) -> float:
    return _read_number(
        name,
        environ,
        float,
        "a number of seconds",
        lambda value: value > 0,
        "{text!r} must be more than 0 seconds",
    )


def read_ratio(name: str, environ: Mapping[str, str] | None = None) -> float:
    return _read_number(
        name,
        environ,
        float,
        "a number between 0 and 1",
        lambda value: 0.0 <= value <= 1.0,
        "{text!r} is not a number between 0 and 1",
    )


def read_choice(
    name: str,
    choices: tuple[str, ...],
    environ: Mapping[str, str] | None = None,
    default: str | None = None,
) -> str:
    """The value, case-folded, when it is one of `choices`; `default` stands in for a variable
    whose default depends on another setting."""
    value = (read(name, environ) or default or "").strip().lower()
    if value not in choices:
        raise SettingsError(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


def read_spark_conf(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """PATIENT_FLOW_SPARK_CONF as Spark settings (every value a string, as Spark takes it)."""
    text = read("PATIENT_FLOW_SPARK_CONF", environ)
    if not text:
        return {}
    try:
        conf = json.loads(text)
    except ValueError:
        conf = None
    if not isinstance(conf, dict):
        raise SettingsError(
            f"PATIENT_FLOW_SPARK_CONF={text!r} is not a JSON object of Spark "
            'settings, e.g. {"spark.sql.adaptive.enabled": "false"}'
        )
    return {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in conf.items()
    }


def forwarded(prefix: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every variable of the environment whose name starts with `prefix`."""
    source = os.environ if environ is None else environ
    return {name: value for name, value in source.items() if name.startswith(prefix)}


def prepare_jvm_environment() -> None:
    """Process settings the Spark JVM reads when it starts (before the first session): loopback
    address, UTC, and this interpreter for Python workers, so their packages match the driver's."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("TZ", "UTC")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


@contextmanager
def gateway_environment(port: int, secret: str) -> Iterator[None]:
    """PySpark finds a running gateway through these two variables; set them only while
    connecting, so the secret does not outlive the call in the process environment."""
    os.environ["PYSPARK_GATEWAY_PORT"] = str(port)
    os.environ["PYSPARK_GATEWAY_SECRET"] = secret
    try:
        yield
    finally:
        os.environ.pop("PYSPARK_GATEWAY_PORT", None)
        os.environ.pop("PYSPARK_GATEWAY_SECRET", None)


@dataclass(frozen=True)
class Settings:
    """The settings of a deployment, read and checked once by `from_env` (the defaults are the
    variables' own, in `VARIABLES`)."""

    env: str
    lake_root: str
    landing: str
    # Unity Catalog catalog of the tables (`<catalog>.<layer>.<table>`); None = Delta folders
    # under lake_root. Checkpoints always live under lake_root.
    catalog: str | None
    # How bronze reads landing: the file versions its ledger lists, or Databricks Auto Loader.
    landing_reader: str
    landing_schemas: str | None
    landing_retention_hours: float | None
    landing_archive: str | None
    reference_dir: str | None  # the hospital's reference data; None: the packaged sample
    fiscal_year_start_month: int
    max_files_per_trigger: int
    sensor_interval: int
    quarantine_error_ratio: float
    admission_grace: float
    lake_lock_timeout: float
    max_concurrent_steps: int
    freshness_warn_minutes: int
    freshness_fail_minutes: int
    ui_url: str
    smtp_host: str | None
    smtp_port: int
    smtp_security: str
    smtp_sender: str | None
    smtp_recipients: str | None
    smtp_user: str | None
    webhook_format: str

    def at(self, lake_root: str, landing: str) -> Settings:
        """These settings, locally, on another lake and landing zone (the bench, the warm-up)."""
        return replace(
            self, env="local", lake_root=_absolute(lake_root), landing=_absolute(landing)
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = read_choice("PATIENT_FLOW_ENV", ENVIRONMENTS, environ)
        if env != "local" and not (os.environ if environ is None else environ).get(
            "PATIENT_FLOW_PSEUDONYM_KEY"
        ):
            raise SettingsError(
                "PATIENT_FLOW_PSEUDONYM_KEY is not set: a deployment pseudonymizes patients "
                "with its own secret key (the built-in demo key is for the local default only)"
            )
        lake_root = _absolute(read_set("PATIENT_FLOW_LAKE", environ))
        landing = _absolute(
            read("PATIENT_FLOW_LANDING", environ)
            or f"{lake_root.rstrip('/')}/landing/patient_events"
        )
        reader = read_choice(
            "PATIENT_FLOW_LANDING_READER",
            LANDING_READERS,
            environ,
            default="autoloader" if env == "databricks" else "files",
        )
        return cls(
            env=env,
            lake_root=lake_root,
            landing=landing,
            catalog=read("PATIENT_FLOW_CATALOG", environ),
            landing_reader=reader,
            landing_schemas=read("PATIENT_FLOW_LANDING_SCHEMAS", environ),
            landing_retention_hours=_retention(environ),
            landing_archive=_absolute_or_none(read("PATIENT_FLOW_LANDING_ARCHIVE", environ)),
            reference_dir=_absolute_or_none(read("PATIENT_FLOW_REFERENCE_DIR", environ)),
            fiscal_year_start_month=read_month("PATIENT_FLOW_FISCAL_YEAR_START_MONTH", environ),
            max_files_per_trigger=read_int("PATIENT_FLOW_MAX_FILES_PER_TRIGGER", environ),
            sensor_interval=read_int("PATIENT_FLOW_SENSOR_INTERVAL", environ),
            quarantine_error_ratio=read_ratio("PATIENT_FLOW_QUARANTINE_ERROR_RATIO", environ),
            admission_grace=read_seconds("PATIENT_FLOW_ADMISSION_GRACE", environ),
            lake_lock_timeout=read_seconds("PATIENT_FLOW_LAKE_LOCK_TIMEOUT", environ),
            max_concurrent_steps=read_int("PATIENT_FLOW_MAX_CONCURRENT_STEPS", environ),
            **_freshness(environ),
            ui_url=read_set("PATIENT_FLOW_UI_URL", environ),
            smtp_host=read("PATIENT_FLOW_SMTP_HOST", environ),
            smtp_port=read_int("PATIENT_FLOW_SMTP_PORT", environ),
            smtp_security=read_choice(
                "PATIENT_FLOW_SMTP_SECURITY", ("starttls", "ssl", "none"), environ
            ),
            smtp_sender=read("PATIENT_FLOW_SMTP_SENDER", environ),
            smtp_recipients=read("PATIENT_FLOW_SMTP_RECIPIENTS", environ),
            smtp_user=read("PATIENT_FLOW_SMTP_USER", environ),
            webhook_format=read_choice(
                "PATIENT_FLOW_ALERT_WEBHOOK_FORMAT", ("teams", "slack"), environ
            ),
        )


@dataclass(frozen=True)
class SparkSettings:
    """The embedded Spark JVM's settings. No resource owns the JVM's process, so they are read
    here; they reach the `pyspark` resource as its `spark_config` (and `warm_driver`)."""

    master: str
    shuffle_partitions: int
    driver_memory: str
    conf: Mapping[str, str]  # PATIENT_FLOW_SPARK_CONF: wins over the project's settings
    event_log: str | None  # a folder for Spark's event log (profiling)
    class_dump: str | None  # set while `patient-flow jvm-archive` trains the class archive
    class_archive: str | None  # the class archive's path, "off", or None: in the cache folder
    warm_driver: str | None  # connection file of the warm driver runs attach to
    java_home: str | None
    cache_home: str | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SparkSettings:
        return cls(
            master=read_set("PATIENT_FLOW_SPARK_MASTER", environ),
            shuffle_partitions=read_int("PATIENT_FLOW_SHUFFLE_PARTITIONS", environ),
            driver_memory=read_set("PATIENT_FLOW_DRIVER_MEMORY", environ),
            conf=read_spark_conf(environ),
            event_log=read("PATIENT_FLOW_SPARK_EVENT_LOG", environ),
            class_dump=read("PATIENT_FLOW_JVM_DUMP", environ),
            class_archive=read("PATIENT_FLOW_JVM_ARCHIVE", environ),
            warm_driver=read("PATIENT_FLOW_SPARK_DRIVER", environ),
            java_home=read("JAVA_HOME", environ),
            cache_home=read("XDG_CACHE_HOME", environ),
        )


@dataclass(frozen=True)
class DatabricksSettings:
    """How steps are launched on Databricks (resources/databricks.py builds the launcher's
    config from these). Credentials are not here: the launcher takes them as environment
    variables that Dagster resolves when the resource starts."""

    host: str | None
    client_id: str | None  # a service principal's application id (OAuth M2M); None: a token
    cluster_spec: str | None
    cluster_id: str | None
    instance_pool: str | None
    cluster_policy: str | None
    forwarded_run_config: str | None  # set on a remote step: the launcher's run config
    staging: str
    poll_seconds: float
    step_timeout: int
    retry_seconds: float
    connect_timeout: float
    runtime_check: bool
    secret_scope: str
    code_path: str | None
    # The settings a remote step needs to rebuild the same definitions: every PATIENT_FLOW_*
    # variable (none is a secret).
    forwarded: Mapping[str, str]

    @property
    def service_principal(self) -> bool:
        return bool(self.client_id)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DatabricksSettings:
        return cls(
            host=read("DATABRICKS_HOST", environ),
            client_id=read("DATABRICKS_CLIENT_ID", environ),
            cluster_spec=read("PATIENT_FLOW_DATABRICKS_CLUSTER_SPEC", environ),
            cluster_id=read("DATABRICKS_CLUSTER_ID", environ),
            instance_pool=read("PATIENT_FLOW_DATABRICKS_INSTANCE_POOL", environ),
            cluster_policy=read("PATIENT_FLOW_DATABRICKS_CLUSTER_POLICY", environ),
            forwarded_run_config=read("PATIENT_FLOW_DATABRICKS_RUN_CONFIG", environ),
            staging=read_set("PATIENT_FLOW_DATABRICKS_STAGING", environ),
            poll_seconds=read_seconds("PATIENT_FLOW_DATABRICKS_POLL_SECONDS", environ),
            step_timeout=read_int("PATIENT_FLOW_DATABRICKS_STEP_TIMEOUT", environ),
            retry_seconds=read_seconds("PATIENT_FLOW_DATABRICKS_RETRY_SECONDS", environ),
            connect_timeout=read_seconds("PATIENT_FLOW_DATABRICKS_CONNECT_TIMEOUT", environ),
            runtime_check=read_choice(
                "PATIENT_FLOW_DATABRICKS_RUNTIME_CHECK", ("on", "off"), environ
            )
            == "on",
            secret_scope=read_set("PATIENT_FLOW_SECRET_SCOPE", environ),
            code_path=read("PATIENT_FLOW_CODE_PATH", environ),
            forwarded=forwarded("PATIENT_FLOW_", environ),
        )


def _freshness(environ: Mapping[str, str] | None) -> dict[str, int]:
    warn = read_int("PATIENT_FLOW_FRESHNESS_WARN_MINUTES", environ)
    fail = read_int("PATIENT_FLOW_FRESHNESS_FAIL_MINUTES", environ)
    if warn >= fail:
        raise SettingsError(
            f"PATIENT_FLOW_FRESHNESS_WARN_MINUTES={warn} must be less than "
            f"PATIENT_FLOW_FRESHNESS_FAIL_MINUTES={fail}"
        )
    return {"freshness_warn_minutes": warn, "freshness_fail_minutes": fail}


def _retention(environ: Mapping[str, str] | None) -> float | None:
    if (read("PATIENT_FLOW_LANDING_RETENTION_HOURS", environ) or "").strip().lower() == "off":
        return None
    return _read_number(
        "PATIENT_FLOW_LANDING_RETENTION_HOURS",
        environ,
        float,
        "a number of hours or off",
        lambda value: value >= 0,
        "{text!r} must be 0 or more hours",
    )


def _absolute_or_none(location: str | None) -> str | None:
    return _absolute(location) if location else None


def _absolute(location: str) -> str:
    """Local folders become absolute paths; URLs (abfss://, wasbs://, dbfs:/) stay as they are."""
    if "://" in location or location.startswith("dbfs:"):
        return location
    return str(Path(location).expanduser().resolve())
