"""The landing zone: where producers drop Parquet files of patient events.

A landing store lists committed files (temporary names of files still being written are never
listed), inspects a file's Parquet footer (row count, how its columns fit the contract), and
hands Spark the rows of the files bronze asks for, or an Auto Loader stream on Databricks.
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
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_type
from pyspark.sql.types import DataType, StructField, StructType

from patient_flow_dagster.model.contract import ACCEPTED_PARQUET_TYPES, OPTIONAL_FIELDS
from patient_flow_dagster.transforms.bronze import RESCUED_DATA
from patient_flow_dagster.variables import resource_field

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
    def modified_us(self) -> int:
        """Modification time in whole microseconds: the precision the ledger keeps."""
        return round(self.modified * 1_000_000)

    @property
    def key(self) -> tuple[str, int, int]:
        """What tells one version from another (the ledger, the sensor's cursor): name, size,
        modification time in microseconds; a file rewritten under its name is a new version."""
        return self.name, self.size, self.modified_us

    @property
    def version(self) -> str:
        """`key` as text, for cursors and run keys."""
        return f"{self.name}:{self.size}:{self.modified_us}"

    @classmethod
    def of_ledger(cls, row) -> LandingFile:
        """The version a ledger row (file_name, file_size, modified_us) notes."""
        return cls(row.file_name, row.file_size, row.modified_us / 1_000_000)


def _is_version(path: Path, version: LandingFile) -> bool:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return False
    return LandingFile(version.name, stat.st_size, stat.st_mtime).key == version.key


def unseen(listed: list[LandingFile], ledger: list) -> list[LandingFile]:
    """The listed versions the ledger has no row for. `ledger` rows carry file_name, file_size
    and modified_us; a row without modified_us (written before mtimes were kept) matches any
    mtime of its name and size."""
    known = {(r.file_name, r.file_size, r.modified_us) for r in ledger}
    known_legacy = {(r.file_name, r.file_size) for r in ledger if r.modified_us is None}
    return [f for f in listed if f.key not in known and (f.name, f.size) not in known_legacy]


@dataclass(frozen=True)
class FileInspection:
    rows: int | None
    problem: str | None  # why the file cannot be ingested, or None
    # Columns outside the contract, (name, Spark type), kept in bronze's rescued_data.
    extra: tuple[tuple[str, str], ...] = ()
    missing: tuple[str, ...] = ()  # contract columns the file lacks (see OPTIONAL_FIELDS)

    @property
    def note(self) -> str | None:
        """The ledger's reason: why it was rejected, or what drifted in an ingested file."""
        if self.problem:
            return self.problem
        notes = [f"missing column {name}" for name in self.missing]
        if self.extra:
            names = ", ".join(name for name, _ in self.extra)
            notes.append(f"extra columns kept in rescued_data: {names}")
        return "; ".join(notes) or None


def inspect_parquet(handle: str | BinaryIO) -> FileInspection:
    """Read only the Parquet footer: row count, and how the columns fit the contract."""
    try:
        parquet = pq.ParquetFile(handle)
    except Exception as error:  # pyarrow raises several types for a damaged file
        return FileInspection(None, f"not a readable Parquet file: {str(error)[:200]}")
    problems, extra = [], []
    for field in parquet.schema_arrow:
        accepted = ACCEPTED_PARQUET_TYPES.get(field.name)
        if accepted is None:
            try:
                extra.append((field.name, from_arrow_type(field.type).simpleString()))
            except Exception:  # a type Spark cannot read: reject rather than drop the column
                problems.append(
                    f"column {field.name} has type {field.type}, which Spark "
                    "cannot read into rescued_data"
                )
        elif str(field.type) not in accepted:
            problems.append(
                f"column {field.name} has type {field.type}, expected one of {sorted(accepted)}"
            )
    present = set(parquet.schema_arrow.names)
    missing = tuple(
        name
        for name in ACCEPTED_PARQUET_TYPES
        if name not in present and name not in OPTIONAL_FIELDS
    )
    return FileInspection(
        parquet.metadata.num_rows, "; ".join(problems) or None, tuple(extra), missing
    )


class LandingZone(ConfigurableResource):
    """Interface of a landing store; see LocalLandingZone and the Azure implementation."""

    # Each batch commits on its own, so a crash loses at most the batch in flight, which the
    # next run redoes.
    # No pydantic bound here: an EnvVar.int stands in as 0 until Dagster resolves it (settings.py
    # checks the value when the definitions load).
    max_files_per_trigger: int = resource_field("PATIENT_FLOW_MAX_FILES_PER_TRIGGER", int)
    # "files" runs anywhere; "autoloader" (cloudFiles) on Databricks runtimes only.
    reader: str = resource_field("PATIENT_FLOW_LANDING_READER", default="files")
    autoloader_schema_location: str | None = resource_field("PATIENT_FLOW_LANDING_SCHEMAS")
    # Archiving keeps the landing zone (and every sensor tick's listing) bounded. None: never.
    retention_hours: float | None = resource_field("PATIENT_FLOW_LANDING_RETENTION_HOURS", float)
    # Never inside the landing zone (Auto Loader would ingest it again). None: the landing
    # location + "_archive".
    archive: str | None = resource_field("PATIENT_FLOW_LANDING_ARCHIVE")

    @property
    def archive_location(self) -> str:
        return self.archive or f"{self.spark_path.rstrip('/')}_archive"

    def move_to_archive(self, version: LandingFile, destination: str) -> bool:
        """Move `version` of a landing file to `destination` (relative to the archive), only if
        the file is still that version (same size and modification time): a version written
        under the name since is never archived unread. False when it was not."""
        raise NotImplementedError

    def in_archive(self, destination: str) -> bool:
        raise NotImplementedError

    def restore(self, destination: str, name: str) -> None:
        """Move an archived file back into the landing zone as `name`."""
        raise NotImplementedError

    def list_files(self) -> list[LandingFile]:
        raise NotImplementedError

    def inspect(self, name: str) -> FileInspection:
        raise NotImplementedError

    @property
    def spark_path(self) -> str:
        raise NotImplementedError

    def describe(self) -> str:
        return self.spark_path

    def file_path(self, name: str) -> str:
        return f"{self.spark_path.rstrip('/')}/{name}"

    def read_files(
        self,
        spark: SparkSession,
        names: list[str],
        schema: StructType,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> DataFrame:
        """The rows of the named files, read with `schema` (contract columns a file lacks are
        null) plus the `extra` columns they share, packed as JSON into `_rescued_data` as Auto
        Loader's rescue mode does. The hidden `_metadata` column names each row's file."""
        self.prepare(spark)
        fields = [
            *schema.fields,
            *(StructField(name, DataType.fromDDL(kind)) for name, kind in extra),
        ]
        rows = spark.read.schema(StructType(fields)).parquet(
            *[self.file_path(name) for name in names]
        )
        rescued = (
            F.to_json(F.struct(*[F.col(f"`{name}`") for name, _ in extra]))
            if extra
            else F.lit(None).cast("string")
        )
        return rows.select(
            *[F.col(f.name) for f in schema.fields], rescued.alias(RESCUED_DATA), "_metadata"
        )

    def read_stream(self, spark: SparkSession, schema: StructType) -> DataFrame:
        """Databricks Auto Loader over the landing folder (reader=autoloader): a file
        rewritten under its name is read again (allowOverwrites) and values outside the
        contract are rescued (schema evolution mode rescue)."""
        self.prepare(spark)
        return (
            spark.readStream.format("cloudFiles")
            .options(**self.autoloader_options())
            .schema(schema)
            .option("pathGlobFilter", f"*{PARQUET_SUFFIX}")
            .load(self.spark_path)
        )

    def autoloader_options(self) -> dict[str, str]:
        """Auto Loader over the landing zone: Parquet, the contract schema pinned (the schema
        location records it), values that do not fit it kept in `_rescued_data` (bronze keeps
        them as `rescued_data`, so nothing is dropped)."""
        if not self.autoloader_schema_location:
            raise ValueError(
                "reader=autoloader needs autoloader_schema_location (PATIENT_FLOW_LANDING_SCHEMAS)"
            )
        archive = (
            {}
            if self.retention_hours is None
            else {
                "cloudFiles.cleanSource": "MOVE",
                "cloudFiles.cleanSource.moveDestination": self.archive_location,
                "cloudFiles.cleanSource.retentionDuration": (
                    f"{round(self.retention_hours * 60)} minutes"
                ),
            }
        )
        return {
            **archive,
            "cloudFiles.format": "parquet",
            "cloudFiles.schemaLocation": self.autoloader_schema_location,
            "cloudFiles.includeExistingFiles": "true",
            "cloudFiles.maxFilesPerTrigger": str(self.max_files_per_trigger),
            "cloudFiles.allowOverwrites": "true",
            "cloudFiles.schemaEvolutionMode": "rescue",
            "rescuedDataColumn": RESCUED_DATA,
        }

    def prepare(self, spark: SparkSession) -> None:
        """Hook for stores that must configure Spark (credentials) or create the folder."""


class LocalLandingZone(LandingZone):
    """A local folder of Parquet files."""

    path: str = resource_field("PATIENT_FLOW_LANDING", default=...)

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

    def move_to_archive(self, version: LandingFile, destination: str) -> bool:
        source, target = Path(self.path) / version.name, Path(self.archive_location) / destination
        if not _is_version(source, version):
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)  # a rename: atomic on one file system
        if not _is_version(target, version):  # rewritten between the check and the rename
            if source.exists():
                raise RuntimeError(
                    f"{target} is a newer version of {source} than the ledger's, "
                    f"and {source} was written again meanwhile: move it back by hand"
                )
            os.replace(target, source)
            return False
        return True

    def in_archive(self, destination: str) -> bool:
        return (Path(self.archive_location) / destination).is_file()

    def restore(self, destination: str, name: str) -> None:
        os.replace(Path(self.archive_location) / destination, Path(self.path) / name)
