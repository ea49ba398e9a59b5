"""Fact changes as signed rows, for KPI tables kept by adding up totals.

Delta's change data feed gives, per commit, the rows inserted and deleted and both images of an
updated row. Counted with weight +1 (new) or -1 (old), the changes' totals per group are what
the group's stored totals must move by: stored + totals(changes) = totals(fact now).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

WEIGHT = "weight"
CHANGE_FEED_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")


def weight_of(rows: DataFrame) -> Column:
    """The rows' weight column, or 1 for plain table rows."""
    return F.col(WEIGHT) if WEIGHT in rows.columns else F.lit(1)


def signed_changes(change_feed: DataFrame) -> DataFrame:
    """Change-feed rows as table rows with a weight: +1 for an insert or an update's new image,
    -1 for a delete or an update's old image."""
    new = F.col("_change_type").isin("insert", "update_postimage")
    return change_feed.withColumn(WEIGHT, F.when(new, 1).otherwise(-1)).drop(*CHANGE_FEED_COLUMNS)


def add_totals(
    stored: DataFrame, change: DataFrame, keys: list[str], totals: list[str]
) -> DataFrame:
    """Stored totals plus the changes' totals, per group (keys compared null-safe by grouping)."""
    return (
        stored.select(*keys, *totals)
        .unionByName(change.select(*keys, *totals))
        .groupBy(*keys)
        .agg(*(F.sum(t).cast(stored.schema[t].dataType).alias(t) for t in totals))
    )
