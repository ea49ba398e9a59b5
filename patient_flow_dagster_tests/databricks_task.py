"""Runs one emulated `spark_python_task` the way a Databricks cluster runs it.

Usage: databricks_task.py <dbfs_root> <python_file> [parameters...]

The script runs as `__main__` with `spark`, `sc` and `dbutils` already defined, `/dbfs/...`
paths in its parameters mapped to the DBFS root, and a Spark session with Delta Lake (Databricks
runtimes ship Delta). `dbutils.secrets.get` reads the emulated secret scopes and fails for an
unknown scope or key, as Databricks does.
"""
import json
import os
import runpy
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
    if argument.startswith("/dbfs/"):
        return os.path.join(root, argument[len("/dbfs/"):].lstrip("/"))
    return argument


def main() -> None:
    root, python_file, *parameters = sys.argv[1:]
    with open(os.environ.pop("EMULATED_DATABRICKS_SECRETS")) as handle:
        dbutils = DBUtils(json.load(handle))

    from pyspark.sql import SparkSession

    from patient_flow_dagster.resources.spark import local_spark_config, prepare_local_environment

    # The cluster's spark_conf on top of a local Spark with Delta; spark.databricks.* settings
    # belong to the Databricks runtime (Photon, optimized writes) and are left out.
    config = local_spark_config()
    cluster_conf = json.loads(os.environ.pop("EMULATED_SPARK_CONF", "{}"))
    config.update({k: str(v) for k, v in cluster_conf.items()
                   if not k.startswith("spark.databricks.")})
    prepare_local_environment()
    builder = SparkSession.builder
    for key, value in config.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    sys.argv = [python_file, *(dbfs_to_local(p, root) for p in parameters)]
    try:
        runpy.run_path(python_file, init_globals={"spark": spark, "sc": spark.sparkContext,
                                                  "dbutils": dbutils}, run_name="__main__")
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
