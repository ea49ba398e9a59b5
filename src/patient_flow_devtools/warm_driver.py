"""`patient-flow spark-driver`: the long-lived, warmed-up Spark driver that runs attach to.

The attaching side lives in the product (`patient_flow_dagster.resources.warm_driver`); this
module starts the driver, warms it on a scratch batch and publishes its gateway.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from patient_flow_dagster.resources.spark import local_spark_session
from patient_flow_dagster.settings import SparkSettings
from patient_flow_devtools.processes import stop_process_group
from patient_flow_devtools.steps import run_small_batch


def warm_up(spark) -> None:
    """Run the pipeline's steps once on a small scratch batch (its lake is deleted after), so
    the first real run finds Spark's and Delta's code paths compiled."""
    with tempfile.TemporaryDirectory(prefix="patient-flow-warm-up-") as scratch:
        run_small_batch(spark, Path(scratch), "warm-up")


def start(connection: Path, env: dict, warm: bool = True, timeout: float = 600) -> subprocess.Popen:
    """Start `patient-flow spark-driver` in its own process group and wait until it has
    published `connection` (after its warm-up). Stop it with processes.stop_process_group."""
    command = [
        str(Path(sys.executable).with_name("patient-flow")),
        "spark-driver",
        "--connection",
        str(connection),
        *([] if warm else ["--no-warm-up"]),
    ]
    driver = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while not Path(connection).is_file():
        if driver.poll() is not None or time.monotonic() > deadline:
            stop_process_group(driver)
            raise RuntimeError(f"the warm Spark driver did not publish {connection}")
        time.sleep(0.5)
    return driver


def serve(connection: str, warm: bool = True) -> None:
    """Start the driver, warm it, publish its gateway in `connection` (0600), and keep it up
    until SIGTERM/SIGINT. Runs that start before it is published start their own JVM."""
    spark = local_spark_session(SparkSettings.from_env())
    if warm:
        warm_up(spark)
    parameters = spark.sparkContext._gateway.gateway_parameters
    path = Path(connection)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(
            {"port": parameters.port, "secret": parameters.auth_token, "pid": os.getpid()}, handle
        )
    os.replace(partial, path)
    print(f"warm Spark driver ready (pid {os.getpid()}); runs attach through {path}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(1):
            pass
    finally:
        path.unlink(missing_ok=True)
        spark.stop()
