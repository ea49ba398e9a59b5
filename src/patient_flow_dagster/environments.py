"""Resource sets per environment, in one place (docs/architecture.md, "Environments").

Assets require the same resource keys everywhere (`pyspark`, `step_launcher`, `lake`, `landing`,
`quality`, `pseudonyms`, `reference`; the alert sensors `alerts`); only the implementations differ.
Locally the step launcher is the none resource, so steps run in the Dagster process on the embedded
Spark session. On Databricks every step is a Databricks job run (`databricks_pyspark_step_launcher`)
on the cluster's own Spark session, tables are in Unity Catalog when PATIENT_FLOW_CATALOG is set,
and bronze reads landing with Auto Loader.
"""

from __future__ import annotations

from typing import Any

from dagster import (
    ResourceDefinition,
    in_process_executor,
    multiprocess_executor,
)
from dagster_pyspark import LazyPySparkResource, PySparkResource
from pydantic import Field

from patient_flow_dagster.quality.policy import QualityPolicy
from patient_flow_dagster.resources import warm_driver
from patient_flow_dagster.resources.alerts import AlertChannels
from patient_flow_dagster.resources.azure_landing import (
    AzureBlobLandingZone,
    is_azure_url,
)
from patient_flow_dagster.resources.lake import DeltaLake
from patient_flow_dagster.resources.landing import LocalLandingZone
from patient_flow_dagster.resources.pseudonyms import PseudonymKey
from patient_flow_dagster.resources.reference import ReferenceData
from patient_flow_dagster.resources.spark import (
    jvm_start_lock,
    local_spark_config,
)
from patient_flow_dagster.settings import (
    DatabricksSettings,
    Settings,
    SparkSettings,
    prepare_jvm_environment,
    secret,
    sourced,
)
from patient_flow_dagster.variables import describe


class LocalPySparkResource(PySparkResource):
    """PySparkResource for the embedded session: sets the JVM's process environment first.

    With `warm_driver` (the connection file of `patient-flow spark-driver`, which `./run dev`
    starts) the run attaches to that long-lived, already warm driver JVM instead of starting
    its own; when that driver is not running, it starts its own as usual."""

    warm_driver: str | None = Field(default=None, description=describe("PATIENT_FLOW_SPARK_DRIVER"))

    def setup_for_execution(self, context) -> None:
        prepare_jvm_environment()
        if self.warm_driver:
            session = warm_driver.attach(self.warm_driver)
            if session is not None:
                self._spark_session = session
                context.log.info(
                    f"attached to the warm Spark driver {session.sparkContext.applicationId}"
                )
                return
            context.log.warning(
                f"no warm Spark driver at {self.warm_driver}: starting an "
                "embedded Spark session for this run"
            )
        with jvm_start_lock():
            super().setup_for_execution(context)
        self.spark_session.sparkContext.setLogLevel("ERROR")


def landing_zone(settings: Settings):
    """A local folder, or an Azure Blob/ADLS container when the location is a wasb(s)/abfs(s) URL
    (credentials: AZURE_STORAGE_CONNECTION_STRING); bronze reads the file versions its ledger
    lists, or Auto Loader's stream."""
    options: dict[str, Any] = {
        "max_files_per_trigger": sourced(
            "PATIENT_FLOW_MAX_FILES_PER_TRIGGER", settings.max_files_per_trigger
        ),
        "reader": sourced("PATIENT_FLOW_LANDING_READER", settings.landing_reader),
        "autoloader_schema_location": sourced(
            "PATIENT_FLOW_LANDING_SCHEMAS", settings.landing_schemas
        ),
        "retention_hours": settings.landing_retention_hours,
        "archive": sourced("PATIENT_FLOW_LANDING_ARCHIVE", settings.landing_archive),
    }
    location = sourced("PATIENT_FLOW_LANDING", settings.landing)
    if is_azure_url(settings.landing):
        return AzureBlobLandingZone(
            url=location,
            connection_string=secret("AZURE_STORAGE_CONNECTION_STRING"),
            **options,
        )
    return LocalLandingZone(path=location, **options)


def pseudonym_key() -> PseudonymKey:
    """The deployment's key as a secret; the demo key only locally (Settings refuses another
    environment without a key), which every run using it says in its log."""
    key = secret("PATIENT_FLOW_PSEUDONYM_KEY")
    return PseudonymKey() if key is None else PseudonymKey(key=key)


def lake(settings: Settings, writer_lock_timeout: float | None) -> DeltaLake:
    return DeltaLake(
        root=sourced("PATIENT_FLOW_LAKE", settings.lake_root),
        catalog=sourced("PATIENT_FLOW_CATALOG", settings.catalog),
        # Unity Catalog's row filters and column masks: on Databricks, with a catalog
        access_policies=settings.env == "databricks" and settings.catalog is not None,
        writer_lock_timeout=writer_lock_timeout,
    )


def reference_data(settings: Settings) -> ReferenceData:
    return ReferenceData(
        folder=sourced("PATIENT_FLOW_REFERENCE_DIR", settings.reference_dir),
        fiscal_year_start_month=sourced(
            "PATIENT_FLOW_FISCAL_YEAR_START_MONTH", settings.fiscal_year_start_month
        ),
    )


def quality_policy(settings: Settings) -> QualityPolicy:
    return QualityPolicy(
        error_ratio=settings.quarantine_error_ratio,
        admission_grace_seconds=settings.admission_grace,
    )


def local_resources(settings: Settings) -> dict:
    jvm = SparkSettings.from_env()
    return {
        "pyspark": LocalPySparkResource(
            spark_config=local_spark_config(jvm),
            warm_driver=sourced("PATIENT_FLOW_SPARK_DRIVER", jvm.warm_driver),
        ),
        "step_launcher": ResourceDefinition.none_resource(),
        "lake": lake(settings, writer_lock_timeout=settings.lake_lock_timeout),
        "landing": landing_zone(settings),
        "quality": quality_policy(settings),
        "pseudonyms": pseudonym_key(),
        "reference": reference_data(settings),
    }


def databricks_resources(settings: Settings) -> dict:
    """Steps launched on Databricks; there `pyspark` is the cluster's session (created lazily,
    so the launching process never starts a JVM)."""
    from patient_flow_dagster.resources.databricks import databricks_step_launcher

    return {
        "pyspark": LazyPySparkResource(spark_config={"spark.sql.session.timeZone": "UTC"}),
        "step_launcher": databricks_step_launcher(DatabricksSettings.from_env()),
        "lake": lake(settings, writer_lock_timeout=None),
        "landing": landing_zone(settings),
        "quality": quality_policy(settings),
        "pseudonyms": pseudonym_key(),
        "reference": reference_data(settings),
    }


RESOURCES_BY_ENVIRONMENT = {"local": local_resources, "databricks": databricks_resources}


# Locally every step shares one process and one JVM: the multiprocess executor would start a
# Python process and a Spark JVM per step. On Databricks the launching process only
# waits for job runs, so independent steps (the census and the KPI tables from the fact) run
# side by side on their clusters.
def executor_for(settings: Settings):
    if settings.env == "local" or settings.max_concurrent_steps <= 1:
        return in_process_executor  # one step at a time: no subprocess per step either
    return multiprocess_executor.configured({"max_concurrent": settings.max_concurrent_steps})


def alert_channels(settings: Settings) -> AlertChannels:
    """E-mail and webhook alerts, the same in every environment. The SMTP password and the
    webhook URL (its own credential) are secrets: resolved when the sensor runs, never stored
    in the definitions or shown in the UI."""
    return AlertChannels(
        ui_url=sourced("PATIENT_FLOW_UI_URL", settings.ui_url),
        smtp_host=sourced("PATIENT_FLOW_SMTP_HOST", settings.smtp_host),
        smtp_port=sourced("PATIENT_FLOW_SMTP_PORT", settings.smtp_port),
        smtp_security=sourced("PATIENT_FLOW_SMTP_SECURITY", settings.smtp_security),
        smtp_sender=sourced("PATIENT_FLOW_SMTP_SENDER", settings.smtp_sender),
        smtp_recipients=sourced("PATIENT_FLOW_SMTP_RECIPIENTS", settings.smtp_recipients),
        smtp_user=sourced("PATIENT_FLOW_SMTP_USER", settings.smtp_user),
        smtp_password=secret("PATIENT_FLOW_SMTP_PASSWORD"),
        webhook_url=secret("PATIENT_FLOW_ALERT_WEBHOOK_URL"),
        webhook_format=sourced("PATIENT_FLOW_ALERT_WEBHOOK_FORMAT", settings.webhook_format),
    )


def resources_for(settings: Settings) -> dict:
    return {**RESOURCES_BY_ENVIRONMENT[settings.env](settings), "alerts": alert_channels(settings)}
