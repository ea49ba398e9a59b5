"""Surrogate keys: one formula for every dimension (docs/architecture.md, "The lake")."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def surrogate_key(*columns: str | Column) -> Column:
    """First 15 hex digits of sha256(concat_ws("||", columns...)) read as a base-16 long.

    15 hex digits = 60 bits, so the value always fits a signed 64-bit integer.
    """
    parts = [F.col(c).cast("string") if isinstance(c, str) else c.cast("string") for c in columns]
    digest = F.sha2(F.concat_ws("||", *parts), 256)
    return F.conv(F.substring(digest, 1, 15), 16, 10).cast("long")
