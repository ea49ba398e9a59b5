"""`patient-flow jvm-archive`: build the Spark JVM's class archive by a training run.

Where the archive lives and how a JVM maps it is the product's
(`patient_flow_dagster.resources.jvm_archive`); this module only builds it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from patient_flow_dagster.resources.jvm_archive import ARCHIVE_ENV, archive_path
from patient_flow_dagster.resources.spark import local_spark_session
from patient_flow_dagster.settings import SparkSettings
from patient_flow_devtools.steps import run_small_batch


def build(force: bool = False) -> Path | None:
    """Run the pipeline's steps on a small batch in a child process whose JVM dumps the classes
    it loaded, then move the archive into place (atomically: concurrent starts never see half
    an archive). Returns the archive path, or None when switched off."""
    path = archive_path(SparkSettings.from_env())
    if path is None:
        return None
    if path.is_file() and not force:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="patient-flow-jvm-archive-") as workdir:
        dump = Path(workdir) / "classes.jsa"
        env = {**os.environ, ARCHIVE_ENV: "off", "PATIENT_FLOW_JVM_DUMP": str(dump)}
        subprocess.run(
            [sys.executable, "-m", "patient_flow_devtools.jvm_archive", workdir],
            env=env,
            check=True,
        )
        if not dump.is_file():
            raise RuntimeError(
                "the JVM did not write a class archive (is this a JDK 17+ "
                "with its default CDS archive?)"
            )
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        shutil.move(str(dump), partial)
        os.replace(partial, path)
    return path


def _training_run(workdir: Path) -> None:
    """The child: the bench's warm-up batch through every step, on a JVM that dumps at exit."""
    spark = local_spark_session(SparkSettings.from_env())
    run_small_batch(spark, workdir, "jvm-archive")
    # The JVM writes the archive as it exits, which happens after Python lets go of it: stop,
    # close its stdin (PySpark's gateway exits on that) and wait for the dump to finish.
    gateway = spark.sparkContext._gateway
    jvm = gateway.proc
    spark.stop()
    gateway.shutdown()
    jvm.stdin.close()
    jvm.wait(timeout=600)


if __name__ == "__main__":
    _training_run(Path(sys.argv[1]))
