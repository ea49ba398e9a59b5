"""A class-data-sharing archive for the embedded Spark JVM (JDK AppCDS), built once per machine.

Every Dagster run starts its own Spark JVM, and a fresh JVM spends seconds loading and verifying the
tens of thousands of classes Spark and Delta need before the first query. JDK 17 can dump the
classes a JVM loaded into an archive at exit (`-XX:ArchiveClassesAtExit`) and map it on later starts
(`-XX:SharedArchiveFile`). `patient-flow jvm-archive` (run by `./run setup`, from the devtools)
builds it by running the pipeline's own steps on a small batch. A missing or stale archive (other
JDK, other jars) is ignored by the JVM, which then starts the normal way, so the archive can only
make starts faster.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from importlib.metadata import version
from pathlib import Path

from patient_flow_dagster.settings import SparkSettings

ARCHIVE_ENV = "PATIENT_FLOW_JVM_ARCHIVE"  # a path, or "off"


def _java_identity(jvm: SparkSettings) -> str:
    java = shutil.which("java") or ""
    home = jvm.java_home or ""
    path = os.path.realpath(java) if java else home
    try:
        stamp = str(int(os.stat(path).st_mtime)) if path else ""
    except OSError:
        stamp = ""
    return f"{path}:{stamp}"


def archive_path(jvm: SparkSettings) -> Path | None:
    """Where the archive of this JDK + this environment's Spark/Delta lives; None when off."""
    chosen = jvm.class_archive
    if chosen == "off":
        return None
    if chosen:
        return Path(chosen)
    key = hashlib.sha1(
        "|".join(
            [_java_identity(jvm), sys.prefix, version("pyspark"), version("delta-spark")]
        ).encode()
    ).hexdigest()[:12]
    cache = Path(jvm.cache_home or Path.home() / ".cache")
    return cache / "patient_flow_dagster" / f"spark-classes-{key}.jsa"


def java_options(jvm: SparkSettings) -> str:
    """JVM options that use the archive when it exists (quietly: no CDS log lines)."""
    path = archive_path(jvm)
    if path is None or not path.is_file():
        return ""
    return java_options_for(path)


def java_options_for(path: Path) -> str:
    return f"-XX:SharedArchiveFile={path} -Xshare:auto -Xlog:cds=off -Xlog:cds+dynamic=off"
