"""Runs one emulated `spark_python_task` the way a Databricks cluster runs it.

Usage: task.py <dbfs_root> <python_file> [parameters...]

The script runs on the cluster's Python (the runtime's libraries and the task's, not the project) as
`__main__` with `spark`, `sc` and `dbutils` already defined, `/dbfs/...` and `/Volumes/...` paths in
its parameters mapped to the DBFS root and the volumes, and a Spark session with Delta Lake
(Databricks runtimes ship Delta). `dbutils.secrets.get` reads the emulated secret scopes and fails
for an unknown scope or key, as Databricks does.
"""

import json
import os
import runpy
import secrets
import sys


class SecretsUtil:
    def __init__(self, scopes: dict):
        self._scopes = scopes

    def get(self, scope: str, key: str) -> str:
        if scope not in self._scopes:
            raise ValueError(f"Secret scope {scope} does not exist")
        if key not in self._scopes[scope]:
            raise ValueError(f"Secret does not exist with scope: {scope} and key: {key}")
        return self._scopes[scope][key]


class DBUtils:
    def __init__(self, scopes: dict):
        self.secrets = SecretsUtil(scopes)


def dbfs_to_local(argument: str, root: str) -> str:
    """`/dbfs/...` and `/Volumes/...`, as the cluster's file system shows them."""
    if argument.startswith("/dbfs/"):
        return os.path.join(root, argument[len("/dbfs/") :].lstrip("/"))
    if argument.startswith("/Volumes/"):
        return os.path.join(os.environ["EMULATED_VOLUMES_ROOT"], argument[len("/Volumes/") :])
    return argument


def attach_to_cluster():
    """A session on the running cluster's driver JVM (PYSPARK_GATEWAY_PORT/SECRET): its
    SparkContext, a new SparkSession of its own, as a Databricks cluster gives each task."""
    from pyspark import SparkContext
    from pyspark.java_gateway import launch_gateway
    from pyspark.sql import SparkSession

    gateway = launch_gateway()  # connects to the existing gateway named by the environment
    # The proxies of tasks attached before this one are collected by the JVM over time, and it
    # tells the callback server attached now to forget their ids: number this task's apart
    # (as resources/warm_driver.separate_proxy_ids does for runs on the warm driver).
    gateway.gateway_property.pool.next_id = secrets.randbits(48)
    jvm = gateway.jvm
    jsc = jvm.org.apache.spark.api.java.JavaSparkContext(
        jvm.org.apache.spark.SparkContext.getOrCreate()
    )
    sc = SparkContext(gateway=gateway, jsc=jsc)
    return SparkSession(
        sc, jsparkSession=jvm.org.apache.spark.sql.SparkSession.active().newSession()
    )


def start_session():
    """A new Spark driver (a job cluster's, or an all-purpose cluster's) with Delta and the
    cluster's spark_conf, both in EMULATED_SPARK_CONF. One JVM start at a time on the machine:
    starts resolve the Delta jar through one shared Ivy cache."""
    import fcntl
    import tempfile

    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the cluster's Python, workers too
    builder = SparkSession.builder
    for key, value in json.loads(os.environ.pop("EMULATED_SPARK_CONF")).items():
        builder = builder.config(key, value)
    lock_file = os.path.join(tempfile.gettempdir(), "patient-flow-spark-start.lock")
    with open(lock_file, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def main() -> None:
    root, python_file, *parameters = sys.argv[1:]
    with open(os.environ.pop("EMULATED_DATABRICKS_SECRETS")) as handle:
        dbutils = DBUtils(json.load(handle))
    on_cluster = "PYSPARK_GATEWAY_PORT" in os.environ
    spark = attach_to_cluster() if on_cluster else start_session()
    sys.argv = [python_file, *(dbfs_to_local(p, root) for p in parameters)]
    try:
        runpy.run_path(
            python_file,
            init_globals={"spark": spark, "sc": spark.sparkContext, "dbutils": dbutils},
            run_name="__main__",
        )
    finally:
        if not on_cluster:  # a job cluster ends with its run; an all-purpose cluster stays up
            spark.stop()


if __name__ == "__main__":
    main()
