"""The landing zone: where producers drop Parquet files of patient events.

A landing store lists committed files (temporary names of files still being written are never
listed), inspects a file's Parquet footer, and hands Spark a streaming reader over the folder.
The local implementation is a folder; the Azure Blob implementation lives beside it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyarrow.parquet as pq
from dagster import ConfigurableResource
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from patient_flow_dagster.model.contract import ACCEPTED_PARQUET_TYPES
from patient_flow_dagster.transforms.bronze import RESCUED_DATA

PARQUET_SUFFIX = ".parquet"


def is_committed_name(name: str) -> bool:
    """Spark and Hadoop treat names starting with '.' or '_' as hidden: producers write to such
    a temporary name and rename when done, so only committed files are seen."""
    base = name.rsplit("/", 1)[-1]
    return base.endswith(PARQUET_SUFFIX) and not base.startswith((".", "_"))


@dataclass(frozen=True)
class LandingFile:
    name: str  # relative to the landing zone
    size: int
    modified: float  # epoch seconds

    @property
    def identity(self) -> str:
        """Name + size + mtime: a rewritten file with the same name counts as a new file."""
        return f"{self.name}:{self.size}:{int(self.modified)}"


@dataclass(frozen=True)
class FileInspection:
    rows: int | None
    problem: str | None  # why the file cannot be ingested, or None


def inspect_parquet(handle: str | BinaryIO) -> FileInspection:
    """Read only the Parquet footer: row count, and whether the columns fit the contract."""
    try:
        parquet = pq.ParquetFile(handle)
    except Exception as error:  # pyarrow raises several types for a damaged file
        return FileInspection(None, f"not a readable Parquet file: {str(error)[:200]}")
    schema = parquet.schema_arrow
    problems = []
    for field in schema:
        accepted = ACCEPTED_PARQUET_TYPES.get(field.name)
        if accepted is not None and str(field.type) not in accepted:
            problems.append(
                f"column {field.name} has type {field.type}, expected one of {sorted(accepted)}"
            )
    rows = parquet.metadata.num_rows
    return FileInspection(rows, "; ".join(problems) or None)


class LandingZone(ConfigurableResource):
    """Interface of a landing store; see LocalLandingZone and the Azure implementation."""

    # Files per streaming micro-batch (Auto Loader's maxFilesPerTrigger); each batch commits on
    # its own, so a crash loses at most the batch in flight, which the next run redoes.
    max_files_per_trigger: int = 1000
    # "files": Spark's file stream source (runs anywhere). "autoloader": Databricks Auto Loader
    # (cloudFiles), with its schema location and rescued data column; Databricks runtimes only.
    reader: str = "files"
    autoloader_schema_location: str | None = None

    def list_files(self) -> list[LandingFile]:
        raise NotImplementedError

    def inspect(self, name: str) -> FileInspection:
        raise NotImplementedError

    @property
    def spark_path(self) -> str:
        raise NotImplementedError

    def describe(self) -> str:
        return self.spark_path

    def read_stream(self, spark: SparkSession, schema: StructType) -> DataFrame:
        """Incremental reader over the landing folder, like Auto Loader.

        Damaged files are skipped by Spark (`ignoreCorruptFiles`) instead of failing the run;
        the bronze asset records each of them with its reason, so none is skipped silently.
        """
        self.prepare(spark)
        if self.reader == "autoloader":
            reader = spark.readStream.format("cloudFiles").options(**self.autoloader_options())
        else:
            reader = spark.readStream.format("parquet").option(
                "maxFilesPerTrigger", self.max_files_per_trigger)
        return (
            reader.schema(schema)
            .option("ignoreCorruptFiles", "true")
            .option("pathGlobFilter", f"*{PARQUET_SUFFIX}")
            .load(self.spark_path)
        )

    def autoloader_options(self) -> dict[str, str]:
        """Auto Loader over the landing zone: Parquet, the contract schema pinned (the schema
        location records it), values that do not fit it kept in `_rescued_data` (bronze keeps
        them as `rescued_data`, so nothing is dropped)."""
        if not self.autoloader_schema_location:
            raise ValueError("reader=autoloader needs autoloader_schema_location "
                             "(PATIENT_FLOW_LANDING_SCHEMAS)")
        return {
            "cloudFiles.format": "parquet",
            "cloudFiles.schemaLocation": self.autoloader_schema_location,
            "cloudFiles.includeExistingFiles": "true",
            "cloudFiles.maxFilesPerTrigger": str(self.max_files_per_trigger),
            "rescuedDataColumn": RESCUED_DATA,
        }

    def prepare(self, spark: SparkSession) -> None:
        """Hook for stores that must configure Spark (credentials) or create the folder."""


class LocalLandingZone(LandingZone):
    """A local folder of Parquet files."""

    path: str

    @property
    def spark_path(self) -> str:
        return str(Path(self.path).resolve())

    def prepare(self, spark: SparkSession) -> None:
        Path(self.path).mkdir(parents=True, exist_ok=True)

    def list_files(self) -> list[LandingFile]:
        folder = Path(self.path)
        if not folder.is_dir():
            return []
        files = []
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_file() and is_committed_name(entry.name):
                    stat = entry.stat()
                    files.append(LandingFile(entry.name, stat.st_size, stat.st_mtime))
        return sorted(files, key=lambda f: f.name)

    def inspect(self, name: str) -> FileInspection:
        return inspect_parquet(str(Path(self.path) / name))
