"""Hospital-local time. Every figure with an hour or a day is in the hospital's own zone (its
IANA name in `dim_hospital`), so a New York day runs from local midnight to local midnight and
has 23 or 25 hours on the days the clocks change.

Spark's zone rules do the conversion: `from_utc_timestamp` gives the wall clock of a UTC instant
in a zone, `to_utc_timestamp` the instant of a wall-clock time. Timestamps are UTC instants
(the session zone is UTC, see docs/architecture.md); wall-clock values are `timestamp_ntz`.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

ZONE = "time_zone"


def with_time_zone(rows: DataFrame, dim_hospital: DataFrame) -> DataFrame:
    """`rows` (with `hospital_id`) and their hospital's zone. Every department's hospital is in
    the reference data (model/reference.py), so no row is lost to the join; a hospital missing
    from it would show as a null zone and a null local time, which the checks count."""
    return rows.join(
        dim_hospital.select("hospital_id", F.col("time_zone").alias(ZONE)), "hospital_id", "left"
    )


def wall_clock(instant: Column | str, zone: Column | str = ZONE) -> Column:
    """The hospital's wall-clock time at a UTC instant (timestamp_ntz)."""
    return F.from_utc_timestamp(instant, _column(zone)).cast("timestamp_ntz")


def local_date(instant: Column | str, zone: Column | str = ZONE) -> Column:
    """The hospital's calendar date at a UTC instant."""
    return F.to_date(wall_clock(instant, zone))


def local_month(instant: Column | str, zone: Column | str = ZONE) -> Column:
    """The first day of the hospital's calendar month at a UTC instant."""
    return F.trunc(local_date(instant, zone), "month")


def midnight_after(date: Column | str, zone: Column | str = ZONE) -> Column:
    """The UTC instant of the local midnight that ends `date` (00:00 of the next day)."""
    next_day = F.date_add(_column(date), 1).cast("timestamp_ntz")
    return F.to_utc_timestamp(next_day.cast("timestamp"), _column(zone))


def _column(value: Column | str) -> Column:
    return F.col(value) if isinstance(value, str) else value
