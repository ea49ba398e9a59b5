"""Shared fixtures: one Spark session for the whole test session, a fresh lake per test."""

import json
import os
import time

# Before any Spark starts: a small session, and a machine zone far from UTC so that tests prove
# the pipeline computes in UTC regardless (Asia/Kolkata is UTC+05:30).
os.environ["PATIENT_FLOW_SPARK_MASTER"] = "local[2]"
os.environ["PATIENT_FLOW_SHUFFLE_PARTITIONS"] = "2"
os.environ["PATIENT_FLOW_DRIVER_MEMORY"] = "2g"
# Test batches are tiny: each query costs its planning, not its rows. Interpreted expressions
# instead of generated code and plans fixed up front (no adaptive re-planning per stage) spend
# less CPU per query, for the same results. The emulated Databricks clusters start from the
# same settings.
os.environ["PATIENT_FLOW_SPARK_CONF"] = json.dumps(
    {
        "spark.sql.codegen.wholeStage": "false",
        "spark.sql.codegen.factoryMode": "NO_CODEGEN",
        "spark.sql.adaptive.enabled": "false",
    }
)
os.environ["TZ"] = "Asia/Kolkata"
time.tzset()  # Python's own local time too, not only the C library's and the JVM's
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

from dataclasses import dataclass  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import yaml  # noqa: E402
from dagster import (  # noqa: E402
    AssetSelection,
    DagsterInstance,
    ResourceDefinition,
    materialize,
)

from patient_flow_dagster.definitions import LAKE_ASSETS  # noqa: E402
from patient_flow_dagster.environments import LocalPySparkResource  # noqa: E402
from patient_flow_dagster.model import tables  # noqa: E402
from patient_flow_dagster.quality.policy import QualityPolicy  # noqa: E402
from patient_flow_dagster.resources.lake import DeltaLake  # noqa: E402
from patient_flow_dagster.resources.landing import LocalLandingZone  # noqa: E402
from patient_flow_dagster.resources.pseudonyms import PseudonymKey  # noqa: E402
from patient_flow_dagster.resources.reference import ReferenceData  # noqa: E402
from patient_flow_dagster.resources.spark import local_spark_config, local_spark_session  # noqa: E402
from patient_flow_dagster.settings import SparkSettings  # noqa: E402


@pytest.fixture(scope="session")
def spark():
    session = local_spark_session(SparkSettings.from_env())
    yield session
    session.stop()


def recent_now() -> datetime:
    """A simulation clock just behind the wall clock, so 'future' events are really future."""
    return (datetime.now(timezone.utc) - timedelta(minutes=10)).replace(second=0, microsecond=0)


# The suite's pseudonym key (not the demo key, so a test sees which key made a pseudonym).
SUITE_KEY = "suite pseudonym key"


@dataclass
class Lakehouse:
    """A temporary lake + landing zone and the resources that point the assets at them."""

    root: Path
    spark: object
    pseudonym_key: str = SUITE_KEY
    reference_dir: str | None = None  # the packaged sample

    @property
    def landing_dir(self) -> Path:
        return self.root / "landing" / "patient_events"

    @property
    def lake(self) -> DeltaLake:
        return DeltaLake(root=str(self.root / "lake"))

    def resources(self) -> dict:
        return {
            "pyspark": LocalPySparkResource(
                spark_config=local_spark_config(SparkSettings.from_env())
            ),
            "step_launcher": ResourceDefinition.none_resource(),
            "lake": self.lake,
            "landing": LocalLandingZone(path=str(self.landing_dir)),
            "quality": QualityPolicy(),
            "pseudonyms": PseudonymKey(key=self.pseudonym_key),
            "reference": ReferenceData(folder=self.reference_dir),
        }

    def materialize(self, assets=None, instance=None, checks=True, **kwargs):
        """Materialize `assets` (default: the whole lake), with the checks their steps carry
        unless `checks` is False."""
        assets = list(assets or LAKE_ASSETS)
        if not checks:
            kwargs.setdefault("selection", AssetSelection.assets(*assets).without_checks())
        return materialize(
            assets,
            resources=self.resources(),
            instance=instance or DagsterInstance.ephemeral(),
            **kwargs,
        )

    def table(self, table: tables.Table):
        return self.lake.read(self.spark, table)

    def count(self, table: tables.Table) -> int:
        return self.table(table).count()

    def reidentified(self, table: tables.Table):
        """`table` with the identifiers behind its pseudonyms, from the identity maps: the join
        a care coordinator runs (docs/privacy.md)."""
        rows = self.table(table)
        for column, identity in (
            ("encounter_pseudonym", tables.ENCOUNTER_IDENTITY),
            ("patient_pseudonym", tables.PATIENT_IDENTITY),
        ):
            if column in rows.columns:
                rows = rows.join(self.table(identity), column, "left")
        return rows


INSTANCE_SETTINGS = Path(__file__).parents[1] / "config" / "dagster.yaml"


def project_instance(directory: Path) -> DagsterInstance:
    """A Dagster instance in `directory` with the settings the project ships (run queue, run
    monitoring and retries, freshness)."""
    directory.mkdir(parents=True, exist_ok=True)
    return DagsterInstance.local_temp(
        str(directory), overrides=yaml.safe_load(INSTANCE_SETTINGS.read_text())
    )


@pytest.fixture
def lakehouse(tmp_path, spark) -> Lakehouse:
    house = Lakehouse(tmp_path, spark)
    house.landing_dir.mkdir(parents=True)
    return house


# The slowest modules first: with `--dist loadfile` each module goes to one worker in collection
# order, so starting the long ones early keeps both workers busy to the end.
HEAVY_FIRST = (
    "test_bench.py",
    "test_pipeline.py",
    "test_databricks.py",
    "test_checks.py",
    "test_census.py",
    "test_lifecycles.py",
    "test_warm_driver.py",
    "test_eventhubs_amqp.py",
    "test_kafka.py",
)


def pytest_collection_modifyitems(items):
    def weight(item):
        name = item.path.name
        return HEAVY_FIRST.index(name) if name in HEAVY_FIRST else len(HEAVY_FIRST)

    items.sort(key=weight)  # stable: the order within a module stays as written
