"""A single-node Apache Kafka broker in KRaft mode, from Apache Kafka's own jars.

The jars come from Maven Central (`tools/kafka/pom.xml`, copied into `tools/kafka/lib` by
`./run setup`). Used by the tests (pytest fixture) and for local demos:
`patient-flow kafka-broker --port 9092` runs a broker on 127.0.0.1:9092 until Ctrl-C.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from patient_flow_devtools import CHECKOUT
from patient_flow_devtools.processes import stop_process_group

KAFKA_LIB = CHECKOUT / "tools" / "kafka" / "lib"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _properties(port: int, controller_port: int, data: Path) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={data}",
            "num.partitions=3",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=3",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "",
        ]
    )


def kraft_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding.

    One that starts with '-' is drawn again, as Kafka's own Uuid.randomUuid does: StorageTool's
    argument parser would take `-t -Qjy...` for an option (1 draw in 64; seen failing in CI).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@contextmanager
def local_kafka(workdir: Path | None = None, port: int | None = None, heap: str = "512m"):
    """Yield the bootstrap address of a fresh broker; stop it (process group) on exit."""
    java = shutil.which("java")
    if not java:
        raise RuntimeError("Java 17+ is needed to run the Kafka broker")
    if not KAFKA_LIB.is_dir() or not any(KAFKA_LIB.glob("kafka_2.13-*.jar")):
        raise RuntimeError(f"Kafka jars missing in {KAFKA_LIB}: run ./run setup")
    owned = workdir is None
    workdir = Path(workdir or tempfile.mkdtemp(prefix="kafka-"))
    port, controller = port or _free_port(), _free_port()
    config = workdir / "server.properties"
    config.write_text(_properties(port, controller, workdir / "data"))
    classpath = f"{KAFKA_LIB}/*"
    env = {**os.environ, "KAFKA_HEAP_OPTS": f"-Xmx{heap}"}
    cluster_id = kraft_cluster_id()
    formatted = subprocess.run(
        [
            java,
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(config),
        ],
        capture_output=True,
        env=env,
    )
    if formatted.returncode != 0:
        raise RuntimeError(
            f"Kafka StorageTool format failed (exit {formatted.returncode}): "
            f"{formatted.stderr.decode(errors='replace').strip()[-2000:]}"
        )
    log = open(workdir / "broker.log", "wb")  # noqa: SIM115 - closed when the broker stops
    process = subprocess.Popen(
        [java, f"-Xmx{heap}", "-cp", classpath, "kafka.Kafka", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Kafka broker did not start; see {workdir / 'broker.log'}")
            time.sleep(0.3)
        yield f"127.0.0.1:{port}"
    finally:
        stop_process_group(process)
        log.close()
        if owned:
            shutil.rmtree(workdir, ignore_errors=True)


def serve(folder: Path | None, port: int) -> None:
    """A broker on 127.0.0.1:`port` until Ctrl-C or SIGTERM."""
    with local_kafka(folder, port=port) as bootstrap:
        print(f"Kafka broker on {bootstrap} (KRaft); Ctrl-C to stop", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
