"""Resource sets per environment, in one place (DESIGN.md §5).

Assets require the same resource keys everywhere (`pyspark`, `step_launcher`, `lake`, `landing`);
only the implementations differ. Locally the step launcher is the none resource, so steps run in
the Dagster process on the embedded Spark session.
"""
from __future__ import annotations

import os

from dagster import ResourceDefinition, in_process_executor

from patient_flow_dagster.quality.policy import QualityPolicy
from patient_flow_dagster.resources.azure_landing import AzureBlobLandingZone, is_azure_url
from patient_flow_dagster.resources.lake import DeltaLake
from patient_flow_dagster.resources.landing import LocalLandingZone
from patient_flow_dagster.resources.spark import local_spark_config, prepare_local_environment
from patient_flow_dagster.settings import Settings
from dagster_pyspark import PySparkResource


class LocalPySparkResource(PySparkResource):
    """PySparkResource for the embedded session: sets the JVM's process environment first."""

    def setup_for_execution(self, context) -> None:
        prepare_local_environment()
        super().setup_for_execution(context)
        self.spark_session.sparkContext.setLogLevel("ERROR")


def landing_zone(location: str):
    """A local folder, or an Azure Blob/ADLS container when the location is a wasb(s)/abfs(s) URL
    (credentials: AZURE_STORAGE_CONNECTION_STRING)."""
    files_per_batch = int(os.environ.get("PATIENT_FLOW_MAX_FILES_PER_TRIGGER", 1000))
    if is_azure_url(location):
        return AzureBlobLandingZone(url=location, max_files_per_trigger=files_per_batch)
    return LocalLandingZone(path=location, max_files_per_trigger=files_per_batch)


def local_resources(settings: Settings) -> dict:
    return {
        "pyspark": LocalPySparkResource(spark_config=local_spark_config()),
        "step_launcher": ResourceDefinition.none_resource(),
        "lake": DeltaLake(root=settings.lake_root),
        "landing": landing_zone(settings.landing),
        "quality": QualityPolicy(
            error_ratio=float(os.environ.get("PATIENT_FLOW_QUARANTINE_ERROR_RATIO", 0.10))
        ),
    }


def databricks_resources(settings: Settings) -> dict:
    raise NotImplementedError(
        "PATIENT_FLOW_ENV=databricks: the Databricks resource set is not built yet; "
        "use PATIENT_FLOW_ENV=local"
    )


RESOURCES_BY_ENVIRONMENT = {"local": local_resources, "databricks": databricks_resources}

# Locally every step shares one process and one JVM: the multiprocess executor would start a
# Python process and a Spark JVM per step (6-8 s each).
EXECUTOR_BY_ENVIRONMENT = {"local": in_process_executor, "databricks": in_process_executor}


def resources_for(settings: Settings) -> dict:
    return RESOURCES_BY_ENVIRONMENT[settings.env](settings)
