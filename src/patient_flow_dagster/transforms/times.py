"""UTC instants between Python and Spark, independent of either process's time zone."""

from __future__ import annotations

from datetime import datetime, timezone

from pyspark.sql import functions as F


def utc_literal(instant: datetime):
    """A timestamp literal for a UTC instant, independent of the Python process's zone."""
    if instant.tzinfo is not None:
        instant = instant.astimezone(timezone.utc).replace(tzinfo=None)
    return F.lit(instant.isoformat(sep=" ")).cast("timestamp")


def utc_text_to_datetime(text: str | None) -> datetime | None:
    """Timestamps cross from Spark to Python as UTC text (collected datetimes would be in the
    Python process's zone)."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc) if text else None
