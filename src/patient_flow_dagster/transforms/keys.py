"""Surrogate keys: one formula for every dimension (docs/architecture.md, "The lake")."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def surrogate_key(*columns: str | Column) -> Column:
    """First 15 hex digits of sha256(concat_ws("||", columns...)) read as a base-16 long.

    15 hex digits = 60 bits, so the value always fits a signed 64-bit integer.
    """
    parts = [F.col(c).cast("string") if isinstance(c, str) else c.cast("string") for c in columns]
    digest = F.sha2(F.concat_ws("||", *parts), 256)
    return F.conv(F.substring(digest, 1, 15), 16, 10).cast("long")


# Pseudonyms: HMAC-SHA-256 with the deployment's secret key, in Spark's own functions (no Python
# UDF). HMAC(K, m) = H((K0 ^ opad) || H((K0 ^ ipad) || m)), K0 the key padded to SHA-256's
# 64-byte block (hashed first when longer). The kind ("patient", "encounter") is part of the
# message, so one identifier gives unrelated pseudonyms of each kind.
_BLOCK = 64
PSEUDONYM_HEX_DIGITS = 32  # 128 bits: no collision among any hospital's identifiers


def _pads(key: bytes) -> tuple[bytes, bytes]:
    import hashlib

    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def hmac_sha256_hex(message: Column, key: bytes) -> Column:
    """HMAC-SHA-256 of the UTF-8 text `message` under `key`, as 64 hex digits (null for null)."""
    inner_pad, outer_pad = _pads(key)
    inner = F.unhex(F.sha2(F.concat(F.lit(inner_pad), message.cast("binary")), 256))
    return F.sha2(F.concat(F.lit(outer_pad), inner), 256)


def pseudonym(kind: str, identifier: str | Column, key: bytes) -> Column:
    """The keyed pseudonym of an identifier: irreversible without the key, stable wherever the
    key is the same."""
    value = F.col(identifier) if isinstance(identifier, str) else identifier
    message = F.concat(F.lit(f"{kind}:"), value.cast("string"))
    return F.substring(hmac_sha256_hex(message, key), 1, PSEUDONYM_HEX_DIGITS)


def pseudonym_of(kind: str, identifier: str, key: bytes) -> str:
    """The same pseudonym computed in Python (tests, a care coordinator's lookup)."""
    import hashlib
    import hmac

    digest = hmac.new(key, f"{kind}:{identifier}".encode(), hashlib.sha256).hexdigest()
    return digest[:PSEUDONYM_HEX_DIGITS]


# The identifiers the analytics zone never holds, and the pseudonym column of each.
PSEUDONYMIZED = {
    "patient_id": ("patient", "patient_pseudonym"),
    "encounter_id": ("encounter", "encounter_pseudonym"),
}


def with_pseudonyms(events: DataFrame, key: bytes) -> DataFrame:
    """`events` with the pseudonym of each identifier beside it (restricted zone: the identity
    maps are made from this)."""
    for identifier, (kind, column) in PSEUDONYMIZED.items():
        events = events.withColumn(column, pseudonym(kind, identifier, key))
    return events


def pseudonymize(events: DataFrame, key: bytes) -> DataFrame:
    """`events` as the analytics zone may use them: each identifier replaced by its pseudonym."""
    return with_pseudonyms(events, key).drop(*PSEUDONYMIZED)
