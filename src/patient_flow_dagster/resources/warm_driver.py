"""A warm local Spark driver that sensor runs attach to, like tasks on a Databricks cluster.

Every Dagster run is a new process. Started the embedded way, each run starts its own Spark JVM
and runs the whole graph on a cold JIT: for a small landing batch that costs more than the work.
So for a live pipeline (`./run dev`) one long-lived driver JVM is started once
(`patient-flow spark-driver`), warmed with the pipeline's own steps on a scratch batch, and each
run attaches its Python process to it through the py4j gateway (PYSPARK_GATEWAY_PORT/SECRET,
which is how Python attaches to the driver on a Databricks cluster), with a Spark session of its
own. Runs take the driver one at a time (a file lock held for the life of the run process, freed
even when the process is killed), because the gateway calls back into one Python process only
(foreachBatch).

The connection file holds the gateway port and its secret: it is written with mode 0600 and
its contents are never logged.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from pathlib import Path

from patient_flow_dagster.settings import gateway_environment

DRIVER_ENV = "PATIENT_FLOW_SPARK_DRIVER"  # path of the connection file of a running driver

_attached: dict = {}  # connection file -> (session, lock held until this process exits)


def attach(connection: str):
    """A SparkSession on the warm driver named by `connection`, or None when it is not running
    (no file, or its process is gone). Blocks while another run holds the driver; a process
    attaches once (Dagster may set its resources up more than once per run)."""
    if connection in _attached:
        return _attached[connection][0]
    path = Path(connection)
    try:
        details = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not _alive(details.get("pid")):
        return None
    lock = open(f"{path}.lock", "a+")  # noqa: SIM115 - held until the process exits
    fcntl.flock(lock, fcntl.LOCK_EX)  # one run at a time on the driver

    from pyspark import SparkContext
    from pyspark.java_gateway import launch_gateway
    from pyspark.sql import SparkSession

    with gateway_environment(details["port"], details["secret"]):
        gateway = launch_gateway()  # connects to the running gateway named by the environment
    separate_proxy_ids(gateway)
    jvm = gateway.jvm
    jsc = jvm.org.apache.spark.api.java.JavaSparkContext(
        jvm.org.apache.spark.SparkContext.getOrCreate()
    )
    context = SparkContext(gateway=gateway, jsc=jsc)
    session = SparkSession(
        context, jsparkSession=jvm.org.apache.spark.sql.SparkSession.active().newSession()
    )
    _attached[connection] = (session, lock)
    return session


def separate_proxy_ids(gateway) -> None:
    """Number this process's py4j proxies (a foreachBatch function is one) apart from those of
    the processes attached to the driver before it. Each process counts from p0, and the JVM
    addresses a proxy by id on whichever process is attached now: the JVM collecting an earlier
    process's proxy (it then asks the callback server to forget that id), or the stream of a
    killed run still calling its function, would otherwise reach this run's function of the same
    id ("Object ID unknown" in its stream)."""
    gateway.gateway_property.pool.next_id = secrets.randbits(48)


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError, PermissionError):
        return False
    return True
