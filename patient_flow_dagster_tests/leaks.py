"""The leak scan: no patient or visit identifier, nor an unkeyed hash of one, in any column of
any analytics table."""

from __future__ import annotations

import hashlib

from pyspark.sql import functions as F
from pyspark.sql.types import NumericType, StringType

from patient_flow_dagster.model import tables as t
from patient_flow_dagster.transforms.keys import surrogate_key


def identifiers_landed(house) -> tuple[set[str], set[str]]:
    """Every patient_id and encounter_id that reached bronze (what landed), as text."""
    bronze = house.table(t.BRONZE_EVENTS)
    patients = {r[0] for r in bronze.select("patient_id").distinct().collect() if r[0]}
    encounters = {r[0] for r in bronze.select("encounter_id").distinct().collect() if r[0]}
    silver = house.table(t.SILVER_EVENTS)  # encounters derived from stay records too
    encounters |= {r[0] for r in silver.select("encounter_id").distinct().collect() if r[0]}
    return patients, encounters


def forbidden_values(house) -> tuple[set[str], set[int]]:
    """The identifiers, their SHA-256 and MD5 (hex, and the first 16 hex digits an old check
    sample used), and the unkeyed patient_sk formula of every (patient_id, age, gender) seen."""
    patients, encounters = identifiers_landed(house)
    texts: set[str] = set()
    for value in patients | encounters:
        texts.add(value)
        for digest in (
            hashlib.sha256(value.encode()).hexdigest(),
            hashlib.md5(value.encode()).hexdigest(),
        ):
            texts |= {digest, digest[:16]}
    old_keys = {
        r[0]
        for r in house.table(t.SILVER_EVENTS)
        .select(surrogate_key("patient_id", "age", "gender"))
        .distinct()
        .collect()
    }
    numbers = {int(v) for v in patients | encounters if v.isdigit()} | old_keys
    return texts, numbers


def scan_analytics(house) -> dict[str, int]:
    """Rows of each analytics table column holding a forbidden value, per `<table>.<column>`
    (nothing but `_columns_scanned`: nothing leaked). Every string and numeric column of every
    analytics table goes into one frame of (column, text, number), joined once with each list."""
    texts, numbers = forbidden_values(house)
    assert texts, "nothing landed: the scan would prove nothing"
    spark = house.spark
    cells = None
    scanned = 0
    for table in (table for table in t.LAKE_TABLES if table.zone == t.ANALYTICS):
        if not house.lake.exists(spark, table):
            continue
        rows = house.table(table)
        probes = []
        for field in rows.schema.fields:
            if isinstance(field.dataType, StringType):
                text, number = F.col(field.name), F.lit(None).cast("long")
            elif isinstance(field.dataType, NumericType):
                text, number = F.lit(None).cast("string"), F.col(field.name).cast("long")
            else:
                continue
            probes.append(
                F.struct(
                    F.lit(f"{table}.{field.name}").alias("at"), text.alias("v"), number.alias("n")
                )
            )
        scanned += len(probes)
        exploded = rows.select(F.explode(F.array(*probes)).alias("cell")).select("cell.*")
        cells = exploded if cells is None else cells.unionByName(exploded)
    assert cells is not None
    text_values = spark.createDataFrame([(v,) for v in texts], "v string")
    number_values = spark.createDataFrame([(v,) for v in numbers], "n long")
    hits = cells.join(text_values, "v", "left_semi").unionByName(
        cells.join(number_values, "n", "left_semi")
    )
    found = {r["at"]: r["count"] for r in hits.groupBy("at").count().collect()}
    found["_columns_scanned"] = scanned
    return found
