"""An emulated all-purpose cluster: one long-lived Spark driver JVM that job runs attach to.

Usage: cluster.py <connection_file>

Starts a local Spark session with Delta (what a Databricks runtime has) on the cluster's Python,
writes the py4j gateway port and secret to <connection_file>, and keeps the driver up until stdin
closes. Tasks run on the cluster attach their own Python process to this JVM, as notebook and Python
tasks do on a Databricks cluster, so they skip the JVM start and find it warm.
"""

import json
import os
import sys


def main() -> None:
    from task import start_session  # beside this script

    spark = start_session()
    parameters = spark.sparkContext._gateway.gateway_parameters
    connection = {"port": parameters.port, "secret": parameters.auth_token}
    target = sys.argv[1]
    with open(f"{target}.part", "w") as handle:
        json.dump(connection, handle)
    os.replace(f"{target}.part", target)
    sys.stdin.read()  # until the emulator closes the pipe
    spark.stop()


if __name__ == "__main__":
    main()
