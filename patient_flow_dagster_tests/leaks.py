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
    """Rows of each analytics table holding a forbidden value in a string or numeric column
    (an empty dict: nothing leaked), and how many columns were scanned."""
    texts, numbers = forbidden_values(house)
    assert texts, "nothing landed: the scan would prove nothing"
    spark = house.spark
    text_values = spark.createDataFrame([(v,) for v in texts], "v string")
    number_values = spark.createDataFrame([(v,) for v in numbers], "n long")
    found: dict[str, int] = {}
    scanned = 0
    for table in (table for table in t.LAKE_TABLES if table.zone == t.ANALYTICS):
        if not house.lake.exists(spark, table):
            continue
        rows = house.table(table)
        for field in rows.schema.fields:
            if isinstance(field.dataType, StringType):
                values, column = text_values, "v"
                probe = rows.select(F.col(field.name).alias(column))
            elif isinstance(field.dataType, NumericType):
                values, column = number_values, "n"
                probe = rows.select(F.col(field.name).cast("long").alias(column))
            else:
                continue
            scanned += 1
            hits = probe.join(values, column, "left_semi").count()
            if hits:
                found[f"{table}.{field.name}"] = hits
    found["_columns_scanned"] = scanned
    return found
