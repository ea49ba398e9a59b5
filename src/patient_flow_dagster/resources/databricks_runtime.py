"""Whether a Databricks Runtime can run a step launched from this process.

The step launcher pickles the step and the cluster unpickles it and imports the code zip with
its own Python; the code calls PySpark APIs of the launching side's major version. A cluster on
another Python minor version or another Spark major fails in ways that are hard to read (an
unpickling error, a missing API) minutes after the submission; checked before submitting, the
mismatch is one line naming both versions.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import version

# Python and Apache Spark of each Databricks Runtime line (the release notes' "System
# environment"); ML and Photon variants share them.
RUNTIME_LINES: dict[int, tuple[tuple[int, int], int]] = {
    13: ((3, 10), 3),
    14: ((3, 10), 3),
    15: ((3, 11), 3),
    16: ((3, 12), 3),
    17: ((3, 12), 4),
    18: ((3, 12), 4),
}
SPARK_VERSION = re.compile(r"^(\d+)\.(\d+|x)\.x-")


class RuntimeMismatch(RuntimeError):
    """The cluster's runtime cannot run a step pickled here: said in one line."""


def runtime_of(spark_version: str) -> tuple[tuple[int, int], int]:
    """(Python (major, minor), Spark major) of a runtime key such as `17.3.x-scala2.13`."""
    match = SPARK_VERSION.match(spark_version)
    if not match or int(match.group(1)) not in RUNTIME_LINES:
        known = ", ".join(f"{line}.x" for line in RUNTIME_LINES)
        raise RuntimeMismatch(
            f"Databricks runtime {spark_version!r} is not one this launcher knows ({known}); "
            "choose one of those in the cluster spec, or set "
            "PATIENT_FLOW_DATABRICKS_RUNTIME_CHECK=off for a custom image whose Python and "
            "Spark you have matched yourself"
        )
    return RUNTIME_LINES[int(match.group(1))]


def check_runtime(
    spark_version: str, python: tuple[int, int] | None = None, pyspark: str | None = None
) -> None:
    """Raise RuntimeMismatch unless the runtime has this process's Python minor version and
    its PySpark's major version."""
    python = python or sys.version_info[:2]
    pyspark = pyspark or version("pyspark")
    (remote_python, remote_spark) = runtime_of(spark_version)
    local_spark = int(pyspark.split(".")[0])
    problems = []
    if remote_python != tuple(python):
        problems.append(
            f"Python {remote_python[0]}.{remote_python[1]} there, {python[0]}.{python[1]} here"
        )
    if remote_spark != local_spark:
        problems.append(f"Spark {remote_spark} there, PySpark {pyspark} here")
    if problems:
        raise RuntimeMismatch(
            f"Databricks runtime {spark_version} cannot run steps launched from this process "
            f"({'; '.join(problems)}): launch from a matching environment or choose a matching "
            "runtime in the cluster spec"
        )
