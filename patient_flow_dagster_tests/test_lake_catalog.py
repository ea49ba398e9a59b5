"""The lake resource with a catalog (Unity Catalog on Databricks): the same calls the assets make
work on three-part table names. Locally the session catalog stands in for Unity Catalog."""

import pytest
from pyspark.sql.types import LongType, StringType, StructField, StructType

from patient_flow_dagster.model.tables import Column, Table
from patient_flow_dagster.resources.lake import DeltaLake, replace_changed

COLUMNS = (Column("key", "string", "probe key"), Column("value", "bigint", "probe value"))
DIMENSION = Table(
    "gold", "catalog_probe_dimension", "probe", COLUMNS, keys=("key",), stats_columns=("key",)
)
EVENTS = Table("bronze", "catalog_probe_events", "probe", COLUMNS, streamed=True)
CONSUMER = Table("silver", "catalog_probe", "probe", COLUMNS, streamed=True)
SCHEMA = StructType([StructField("key", StringType()), StructField("value", LongType())])


@pytest.fixture
def catalog_lake(spark, tmp_path):
    for layer in ("bronze", "gold"):  # managed tables of these schemas go under tmp_path
        spark.sql(f"CREATE SCHEMA spark_catalog.{layer} LOCATION '{tmp_path / layer}'")
    yield DeltaLake(root=str(tmp_path / "checkpoints_root"), catalog="spark_catalog")
    for layer in ("bronze", "gold"):
        spark.sql(f"DROP SCHEMA IF EXISTS spark_catalog.{layer} CASCADE")


def test_catalog_tables_are_named_and_written_like_folder_tables(spark, catalog_lake):
    lake = catalog_lake
    assert lake.location(DIMENSION) == "spark_catalog.gold.catalog_probe_dimension"
    assert not lake.exists(spark, DIMENSION)
    rows = spark.createDataFrame([("a", 1), ("b", 2)], SCHEMA)
    assert replace_changed(lake, spark, DIMENSION, rows, ["key"]) == {
        "inserted": 2,
        "updated": 0,
        "deleted": 0,
    }
    changed = spark.createDataFrame([("a", 1), ("b", 3), ("c", 4)], SCHEMA)
    assert replace_changed(lake, spark, DIMENSION, changed, ["key"]) == {
        "inserted": 1,
        "updated": 1,
        "deleted": 0,
    }
    assert sorted(map(tuple, lake.read(spark, DIMENSION).collect())) == [
        ("a", 1),
        ("b", 3),
        ("c", 4),
    ]
    assert spark.table("spark_catalog.gold.catalog_probe_dimension").count() == 3
    assert lake.version(spark, DIMENSION) == 2


def test_catalog_tables_feed_incremental_consumers_exactly_once(spark, catalog_lake):
    lake = catalog_lake
    seen = []

    def collect(batch, batch_id):
        seen.extend(row.key for row in batch.collect())

    lake.append(spark.createDataFrame([("e1", 1), ("e2", 2)], SCHEMA), EVENTS, txn=("probe", 0))
    lake.append(spark.createDataFrame([("e1", 1), ("e2", 2)], SCHEMA), EVENTS, txn=("probe", 0))
    lake.process_new_rows(spark, EVENTS, CONSUMER, collect)
    lake.append(spark.createDataFrame([("e3", 3)], SCHEMA), EVENTS, txn=("probe", 1))
    lake.process_new_rows(spark, EVENTS, CONSUMER, collect)
    assert sorted(seen) == ["e1", "e2", "e3"]  # replayed txn written once, each row seen once
    lake.drop(spark, EVENTS)
    assert not lake.exists(spark, EVENTS)


def test_a_catalog_table_is_created_with_its_statistics_columns(spark, catalog_lake):
    catalog_lake.ensure(spark, DIMENSION, SCHEMA)
    properties = dict(
        spark.sql("SHOW TBLPROPERTIES spark_catalog.gold.catalog_probe_dimension").collect()
    )
    assert properties["delta.dataSkippingStatsColumns"] == "key"


def test_a_table_written_before_a_column_was_declared_gets_it(spark, tmp_path):
    """A lake from before a contract field: `ensure` adds the column, old rows read it as null."""
    lake = DeltaLake(root=str(tmp_path))
    old = spark.createDataFrame([("a", 1)], SCHEMA)
    old.write.format("delta").save(lake.location(EVENTS))
    wider = StructType([*SCHEMA.fields, StructField("event_type", StringType())])
    lake.ensure(spark, EVENTS, wider)
    lake.append(spark.createDataFrame([("b", 2, "ADMIT")], wider), EVENTS)
    assert sorted(map(tuple, lake.read(spark, EVENTS).collect())) == [
        ("a", 1, None),
        ("b", 2, "ADMIT"),
    ]
    lake.ensure(spark, EVENTS, wider)  # nothing missing: no new version
    assert lake.version(spark, EVENTS) == 2
