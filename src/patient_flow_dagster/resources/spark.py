"""The embedded local Spark session with Delta Lake (docs/architecture.md, "Environments")."""

from __future__ import annotations

import fcntl
import tempfile
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

from pyspark.sql import SparkSession

from patient_flow_dagster.settings import SparkSettings, prepare_jvm_environment

SCALA_BINARY = "2.13"  # Spark 4.0 is built for Scala 2.13 only


def delta_package() -> str:
    """The Maven coordinate of the Delta jar matching the installed delta-spark wheel.

    Spark resolves it from Maven Central on the first start (`spark.jars.packages`, cached in
    ~/.ivy2.5.2 afterwards): the same mechanism as delta-spark's configure_spark_with_delta_pip.
    """
    return f"io.delta:delta-spark_{SCALA_BINARY}:{version('delta-spark')}"


def hadoop_azure_package() -> str:
    """hadoop-azure matching the Hadoop client bundled in the pyspark wheel, so local Spark can
    read an Azure Blob / ADLS landing zone (wasb(s)://, abfs(s)://) too."""
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    [client] = sorted(jars.glob("hadoop-client-api-*.jar"))
    hadoop_version = client.name.removeprefix("hadoop-client-api-").removesuffix(".jar")
    return f"org.apache.hadoop:hadoop-azure:{hadoop_version}"


def local_spark_config(
    jvm: SparkSettings,
    master: str | None = None,
    shuffle_partitions: int | None = None,
    extra_packages: tuple[str, ...] = (),
) -> dict[str, str]:
    """Spark settings for the embedded session: Delta, UTC everywhere, small and quiet."""
    master = master or jvm.master
    partitions = shuffle_partitions or jvm.shuffle_partitions
    driver_options = " ".join(filter(None, ["-Duser.timezone=UTC", _class_archive_options(jvm)]))
    return {
        "spark.master": master,
        "spark.app.name": "patient-flow",
        "spark.jars.packages": ",".join((delta_package(), hadoop_azure_package(), *extra_packages)),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.extraJavaOptions": driver_options,
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.sql.shuffle.partitions": str(partitions),
        "spark.default.parallelism": str(partitions),
        "spark.driver.memory": jvm.driver_memory,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # A run of the pipeline generates several hundred distinct classes (whole-stage
        # codegen); Spark keeps 100 compiled by default, so each run in a warm JVM (the warm
        # driver, the bench, the tests) would compile most of them again. With room for all, a
        # later run compiles only what is new (bench/RESULTS.md has the profile).
        "spark.sql.codegen.cache.maxEntries": "2000",
        # Cached batches (silver's validated batch, the census's replaced hours) are built once
        # and read a few times within a step; compressing their columns costs more CPU than
        # the memory it saves (bench/RESULTS.md has the comparison).
        "spark.sql.inMemoryColumnarStorage.compressed": "false",
        # Small tables: Delta's log replay defaults to 50 partitions, far too many on a laptop.
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2",
        # Keep Delta's DESCRIBE HISTORY / streaming source happy on a fresh local lake.
        "spark.databricks.delta.properties.defaults.enableChangeDataFeed": "false",
        **_event_log(jvm.event_log),
        **jvm.conf,
    }


def _event_log(folder: str | None) -> dict[str, str]:
    """Spark's event log in `folder` (every job, stage and task with its call site), for
    profiling a run with the history server or a script."""
    if not folder:
        return {}
    Path(folder).mkdir(parents=True, exist_ok=True)
    return {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": Path(folder).resolve().as_uri(),
        "spark.eventLog.compress": "false",
        "spark.eventLog.rolling.enabled": "false",
    }


def _class_archive_options(jvm: SparkSettings) -> str:
    """Use the JVM class archive when built (faster JVM start, see jvm_archive); while building
    it, dump the classes this JVM loads instead."""
    from patient_flow_dagster.resources import jvm_archive

    if jvm.class_dump:
        return f"-XX:ArchiveClassesAtExit={jvm.class_dump} -Xlog:cds=off -Xlog:cds+dynamic=off"
    return jvm_archive.java_options(jvm)


@contextmanager
def jvm_start_lock():
    """One Spark JVM start at a time on this machine. Each start resolves
    `spark.jars.packages` through Spark's shared Ivy cache, which concurrent resolutions can
    corrupt (parallel test workers, runs launched together)."""
    with open(Path(tempfile.gettempdir()) / "patient-flow-spark-start.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even on a crash
        yield


def local_spark_session(
    jvm: SparkSettings, overrides: dict[str, str] | None = None, **kwargs
) -> SparkSession:
    """One session per process: getOrCreate returns the running one on later calls.
    `overrides` replace settings of `local_spark_config(jvm, **kwargs)` (a cluster's
    spark_conf)."""
    prepare_jvm_environment()
    builder = SparkSession.builder
    for key, value in {**local_spark_config(jvm, **kwargs), **(overrides or {})}.items():
        builder = builder.config(key, value)
    with jvm_start_lock():
        session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
