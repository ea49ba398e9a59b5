"""Write batches of events as Parquet files into a landing folder, atomically."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql.types import StringType

from patient_flow_dagster import settings
from patient_flow_dagster.model.contract import LANDING_SCHEMA

# The contract's Parquet layout as this project's producers write it: integers as int32 (other
# producers' int64 files are accepted too), the source's sequence as int64.
EVENT_ARROW_SCHEMA = pa.schema(
    [
        (
            field.name,
            pa.string()
            if isinstance(field.dataType, StringType)
            else pa.int64()
            if field.name == "sequence"
            else pa.int32(),
        )
        for field in LANDING_SCHEMA.fields
    ]
)


def events_table(events: Sequence[dict], schema: pa.Schema = EVENT_ARROW_SCHEMA) -> pa.Table:
    return pa.Table.from_pylist([{k: e.get(k) for k in schema.names} for e in events], schema)


def landing_file_name(prefix: str = "patient_events") -> str:
    """Unique, time-ordered name: <prefix>-<UTC time>-<random>.parquet."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{prefix}-{stamp}-{uuid.uuid4().hex[:8]}.parquet"


def write_landing_file(table: pa.Table, folder: str | Path, name: str | None = None) -> Path:
    """Write to a hidden temporary name, fsync, then rename: readers never see half a file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / (name or landing_file_name())
    temporary = folder / f".{final.name}.tmp"
    pq.write_table(table, temporary, compression="snappy")
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, final)
    return final


def landing_sink(location: str | Path):
    """`write(table, name) -> written location` for a local folder or an Azure Blob URL."""
    from patient_flow_dagster.resources.azure_landing import (
        is_azure_url,
        landing_blob_writer,
    )

    if is_azure_url(str(location)):
        connection = settings.read("AZURE_STORAGE_CONNECTION_STRING")
        if not connection:
            raise RuntimeError(
                "AZURE_STORAGE_CONNECTION_STRING is needed to write to " + str(location)
            )
        return landing_blob_writer(str(location), connection)
    return lambda table, name: str(write_landing_file(table, location, name))


def write_events(
    events: Sequence[dict], landing: str | Path, events_per_file: int = 10_000
) -> list[str]:
    """Split events into files of at most `events_per_file` rows, in order, into a landing
    folder or container."""
    write = landing_sink(landing)
    return [
        write(events_table(chunk), landing_file_name())
        for chunk in _chunks(events, max(1, events_per_file))
    ]


def _chunks(items: Sequence[dict], size: int) -> Iterable[Sequence[dict]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
