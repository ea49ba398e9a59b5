"""`patient-flow bench-stream`: steady arrivals under the real daemon, as a hospital runs it.

`dagster dev` (daemon, run queue, landing sensor, code server) runs with the warm Spark driver,
as `./run dev` starts them. After an optional history batch, a file of E events lands every I
seconds, N times. Reported: file-to-gold per file (landed -> end of the run that ingested it,
from the ledger's `audit_run_id` and the run's end), the run queue's depth over time, runs
started, the drain time after the last file; beside them the engine floor, a bare script
applying the same files as they land in one warm Spark session. Every file must reach gold and
every run succeed, or nothing is reported.

`--from kafka` sends each batch of E events to a local Kafka broker (Apache Kafka's jars, KRaft)
instead, and the landing consumer (`patient-flow ingest --from kafka`) writes them into landing
as it does in production: the figure is then event-to-gold, from the batch's send to the end of
the run that put its last file in gold.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from patient_flow_dagster.settings import SparkSettings
from patient_flow_devtools import CHECKOUT
from patient_flow_devtools.processes import stop_process_group

WAITING = ("QUEUED", "NOT_STARTED", "STARTING")


class StreamBenchError(RuntimeError):
    """A run failed or a file did not reach gold: no figures are reported."""


@contextmanager
def dagster_dev(
    workdir: Path, interval: int, warm_driver: bool = True, port: int = 3918, timeout: float = 600
):
    """`dagster dev` with the project's instance settings (and the warm driver), its lake and
    landing under `workdir`; yields (dagster_home, lake, landing)."""
    home, lake, landing = workdir / "dagster_home", workdir / "lake", workdir / "landing"
    for folder in (home, landing):
        folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(CHECKOUT / "config" / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PATIENT_FLOW_LAKE": str(lake),
        "PATIENT_FLOW_LANDING": str(landing),
        "PATIENT_FLOW_SENSOR_INTERVAL": str(interval),
    }
    driver = None
    if warm_driver:
        from patient_flow_dagster.resources.warm_driver import DRIVER_ENV
        from patient_flow_devtools.warm_driver import start

        env[DRIVER_ENV] = str(home / "spark-driver.json")
        driver = start(home / "spark-driver.json", env, timeout=timeout)
    dagster = Path(sys.executable).with_name("dagster")
    process = subprocess.Popen(
        [
            str(dagster),
            "dev",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            str(CHECKOUT / "workspace.yaml"),
        ],
        cwd=CHECKOUT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield home, lake, landing
    finally:
        stop_process_group(process)
        if driver is not None:
            stop_process_group(driver)


def pipeline_runs(instance) -> list:
    from dagster import RunsFilter

    return [
        record for record in instance.get_run_records(filters=RunsFilter(job_name="patient_flow"))
    ]


class QueueWatch(threading.Thread):
    """Samples the pipeline's runs once a second: how many wait, how many execute."""

    def __init__(self, home: Path, started: float):
        super().__init__(daemon=True)
        self.home, self.started, self.samples = home, started, []
        self.stop = threading.Event()

    def run(self) -> None:
        from dagster import DagsterInstance

        with DagsterInstance.from_config(str(self.home)) as instance:
            while not self.stop.is_set():
                runs = [r.dagster_run.status.value for r in pipeline_runs(instance)]
                self.samples.append(
                    (
                        round(time.time() - self.started, 1),
                        sum(s in WAITING for s in runs),
                        runs.count("STARTED"),
                    )
                )
                self.stop.wait(1.0)


def stream_batches(files: int, events: int, seed: int) -> list[list[dict]]:
    """`files` batches of `events` consecutive simulated ADT events (lifecycles over the last
    two days), in arrival order."""
    from patient_flow_dagster.ingestion.simulator import simulate_lifecycles

    stream = simulate_lifecycles(
        files * events, seed=seed, now=datetime.now(timezone.utc), span_days=2
    ).events
    return [stream[i * events : (i + 1) * events] for i in range(files)]


def as_tables(batches: list[list[dict]]) -> list:
    from patient_flow_dagster.ingestion.landing_writer import events_table

    return [events_table(batch) for batch in batches]


class FileArrivals:
    """Each batch lands as one landing file: what a landing consumer's flush is."""

    unit = "file"

    def __init__(self, batches: list[list[dict]], interval: float):
        self.tables, self.interval = as_tables(batches), interval
        self.landed: dict[str, float] = {}

    @contextmanager
    def running(self, workdir: Path, landing: Path):
        yield self

    def deliver(self, landing: Path) -> dict[str, float]:
        """{batch: when it arrived}; here a batch is its file."""
        self.landed = land_on_schedule(self.tables, landing, self.interval)
        return self.landed

    def files_of(self, landing: Path, timeout: float) -> dict[str, set[str]]:
        return {name: {name} for name in self.landed}


def create_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    """Create `topic` on the broker (as a hospital's platform team does before a consumer
    subscribes), and wait until it exists."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(timeout=60)


class KafkaArrivals:
    """Each batch is sent to a local Kafka broker; the landing consumer writes landing files."""

    unit = "event"
    topic = "patient-events"

    def __init__(self, batches: list[list[dict]], interval: float, batch_seconds: float):
        self.batches, self.interval, self.batch_seconds = batches, interval, batch_seconds
        self.bootstrap = ""

    @contextmanager
    def running(self, workdir: Path, landing: Path):
        from patient_flow_devtools.local_kafka import local_kafka

        (workdir / "kafka").mkdir(parents=True, exist_ok=True)
        with local_kafka(workdir / "kafka") as bootstrap:
            self.bootstrap = bootstrap
            create_topic(bootstrap, self.topic)  # the consumer waits for its partitions
            patient_flow = Path(sys.executable).with_name("patient-flow")
            with (workdir / "consumer.log").open("wb") as log:
                consumer = subprocess.Popen(
                    [
                        str(patient_flow),
                        "ingest",
                        "--from",
                        "kafka",
                        "--bootstrap",
                        bootstrap,
                        "--topic",
                        self.topic,
                        "--landing",
                        str(landing),
                        "--batch-seconds",
                        str(self.batch_seconds),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                try:
                    yield self
                finally:
                    stop_process_group(consumer)

    def deliver(self, landing: Path) -> dict[str, float]:
        """Send one batch every interval (delivered: acknowledged by the broker);
        {batch: when it was sent}."""
        from patient_flow_dagster.ingestion.kafka_io import client_config, publish

        config, sent, start = client_config(self.bootstrap), {}, time.time()
        for i, batch in enumerate(self.batches):
            time.sleep(max(0.0, start + i * self.interval - time.time()))
            at = time.time()
            publish(batch, config, self.topic, progress=None)
            sent[f"batch-{i:05d}"] = at
        return sent

    def files_of(self, landing: Path, timeout: float) -> dict[str, set[str]]:
        """{batch: the landing files holding its events}, once every event has landed."""
        import pyarrow.parquet as pq

        batch_of = {
            event["event_id"]: f"batch-{i:05d}"
            for i, batch in enumerate(self.batches)
            for event in batch
        }
        files: dict[str, set[str]] = {}
        seen: set[str] = set()
        read: set[str] = set()
        deadline = time.time() + timeout
        while len(seen) < len(batch_of):
            for path in sorted(landing.glob("*.parquet")):
                if path.name in read:
                    continue
                read.add(path.name)
                for event_id in pq.read_table(path, columns=["event_id"]).column(0).to_pylist():
                    if event_id in batch_of:
                        seen.add(event_id)
                        files.setdefault(batch_of[event_id], set()).add(path.name)
            if time.time() > deadline:
                raise StreamBenchError(f"{len(batch_of) - len(seen)} sent events never landed")
            time.sleep(0.5)
        return files


def land_on_schedule(
    tables: list, landing: Path, interval: float, on_landed=None
) -> dict[str, float]:
    """Write one table every `interval` seconds; {file name: time it landed}."""
    from patient_flow_dagster.ingestion.landing_writer import write_landing_file

    landed, start = {}, time.time()
    for i, table in enumerate(tables):
        time.sleep(max(0.0, start + i * interval - time.time()))
        path = write_landing_file(table, landing, f"stream-{i:05d}.parquet")
        landed[path.name] = time.time()
        if on_landed:
            on_landed(path.name)
    return landed


def wait_until_drained(home: Path, lake: Path, names: set[str], timeout: float) -> dict:
    """Wait until no pipeline run waits or executes and the ledger holds every name as
    ingested; {file name: id of the run that ingested it}."""
    from dagster import DagsterInstance

    deadline = time.time() + timeout
    with DagsterInstance.from_config(str(home)) as instance:
        while True:
            runs = pipeline_runs(instance)
            failed = [r.dagster_run.run_id for r in runs if r.dagster_run.status.value == "FAILURE"]
            if failed:
                raise StreamBenchError(f"pipeline run {failed[0]} failed")
            busy = [r for r in runs if r.dagster_run.status.value in (*WAITING, "STARTED")]
            ingested = {} if busy else ingested_by(lake)
            if not busy and names <= set(ingested):
                return ingested
            if time.time() > deadline:
                raise StreamBenchError(
                    f"not drained after {timeout:.0f} s: {len(busy)} runs "
                    "busy, files missing from gold"
                )
            time.sleep(1.0)


def ingested_by(lake: Path) -> dict[str, str]:
    """{file name: audit_run_id} of the ledger's ingested versions (read with delta-rs-free
    pyarrow: the ledger's Parquet files, resolved through its Delta log)."""
    import pyarrow.parquet as pq

    ledger = lake / "bronze" / "landing_files"
    log = ledger / "_delta_log"
    if not log.is_dir():
        return {}
    live: set[str] = set()
    for commit in sorted(log.glob("*.json")):
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                live.add(action["add"]["path"])
            elif "remove" in action:
                live.discard(action["remove"]["path"])
    found = {}
    for path in live:
        table = pq.read_table(ledger / path, columns=["file_name", "status", "audit_run_id"])
        for row in table.to_pylist():
            if row["status"] == "ingested":
                found[row["file_name"]] = row["audit_run_id"]
    return found


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def summary(seconds: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(seconds), 1),
        "p95": round(percentile(seconds, 0.95), 1),
        "max": round(max(seconds), 1),
    }


def measure_pipeline(
    workdir: Path, arrivals, history: list, sensor_interval: int, warm_driver: bool, timeout: float
) -> dict:
    from dagster import DagsterInstance

    from patient_flow_dagster.ingestion.landing_writer import write_landing_file

    with (
        dagster_dev(workdir, sensor_interval, warm_driver) as (home, lake, landing),
        arrivals.running(workdir, landing),
    ):
        for i, table in enumerate(history):  # the history: one run before the stream
            write_landing_file(table, landing, f"history-{i:05d}.parquet")
        if history:
            wait_until_drained(
                home, lake, {f"history-{i:05d}.parquet" for i in range(len(history))}, timeout
            )
        else:
            time.sleep(15)  # daemon and code server up
        started = time.time()
        watch = QueueWatch(home, started)
        watch.start()
        arrived = arrivals.deliver(landing)
        last_arrived = max(arrived.values())
        files = arrivals.files_of(landing, timeout)
        ingested = wait_until_drained(home, lake, set().union(*files.values()), timeout)
        watch.stop.set()
        watch.join()
        with DagsterInstance.from_config(str(home)) as instance:
            records = {r.dagster_run.run_id: r for r in pipeline_runs(instance)}
        ended = {run_id: r.end_time for run_id, r in records.items() if r.end_time}
        in_gold = {batch: max(ended[ingested[name]] for name in files[batch]) for batch in arrived}
        to_gold = [in_gold[batch] - at for batch, at in arrived.items()]
        stream_runs = [r for r in records.values() if r.create_timestamp.timestamp() >= started]
        durations = [r.end_time - r.start_time for r in stream_runs if r.start_time and r.end_time]
    return {
        f"{arrivals.unit}_to_gold_seconds": summary(to_gold),
        "landing_files": len(set().union(*files.values())),
        "runs_started": len(stream_runs),
        "run_seconds": summary(durations) if durations else {},
        "max_runs_waiting": max((w for _, w, _ in watch.samples), default=0),
        "max_runs_executing": max((e for _, _, e in watch.samples), default=0),
        f"drain_seconds_after_last_{arrivals.unit}": round(max(in_gold.values()) - last_arrived, 1),
        "queue_depth_over_time": [[at, waiting] for at, waiting, _ in watch.samples[::10]],
    }


def measure_floor(workdir: Path, tables: list, history: list, interval: float) -> dict:
    """The same files applied by the bare steps in one warm Spark session as they land: what
    the engine needs, without Dagster, checks, metadata or a run's start."""
    from patient_flow_dagster.ingestion.landing_writer import write_landing_file
    from patient_flow_dagster.resources.spark import local_spark_session
    from patient_flow_devtools.steps import lake_resources, run_bare, run_small_batch

    spark = local_spark_session(SparkSettings.from_env())
    run_small_batch(spark, workdir / "warmup", "warmup")
    landing = workdir / "landing"
    resources = lake_resources(workdir / "lake", landing)
    for i, table in enumerate(history):
        write_landing_file(table, landing, f"history-{i:05d}.parquet")
    if history:
        run_bare(spark, resources["lake"], resources["landing"], "history")
    pending: list[str] = []
    done = threading.Event()

    def land():
        land_on_schedule(tables, landing, interval, pending.append)
        done.set()

    threading.Thread(target=land, daemon=True).start()
    to_gold, runs = [], 0
    while not (done.is_set() and not pending):
        if not pending:
            time.sleep(0.2)
            continue
        batch, pending[:] = list(pending), []
        run_bare(spark, resources["lake"], resources["landing"], f"floor-{runs}")
        runs += 1
        finished = time.time()
        to_gold += [finished - landed_at(landing, name) for name in batch]
    return {"file_to_gold_seconds": summary(to_gold), "applications": runs}


def landed_at(landing: Path, name: str) -> float:
    """When the file landed: its modification time (written, then renamed into place)."""
    return (landing / name).stat().st_mtime


def run(
    files: int,
    events: int,
    interval: float,
    history_events: int,
    workdir: Path,
    seed: int,
    sensor_interval: int,
    warm_driver: bool,
    floor: bool,
    source: str = "landing",
    batch_seconds: float = 2.0,
) -> dict:
    workdir = workdir.resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    batches = stream_batches(files, events, seed)
    arrivals = (
        KafkaArrivals(batches, interval, batch_seconds)
        if source == "kafka"
        else FileArrivals(batches, interval)
    )
    history = []
    if history_events:
        from patient_flow_dagster.ingestion.landing_writer import events_table
        from patient_flow_dagster.ingestion.simulator import simulate_lifecycles

        past = simulate_lifecycles(
            history_events,
            seed=seed + 1,
            now=datetime.now(timezone.utc) - timedelta(days=2),
            span_days=30,
        ).events
        history = [events_table(past[i : i + 10_000]) for i in range(0, len(past), 10_000)]
    timeout = max(900.0, files * interval * 3)
    report = {
        "source": source,
        "batches": files,
        "events_per_batch": events,
        "interval_seconds": interval,
        **({"consumer_batch_seconds": batch_seconds} if source == "kafka" else {}),
        "history_events": history_events,
        "sensor_interval_seconds": sensor_interval,
        "runs_on": "warm Spark driver" if warm_driver else "a new JVM per run",
        "machine_cores": os.cpu_count(),
        "pipeline": measure_pipeline(
            workdir / "dagster", arrivals, history, sensor_interval, warm_driver, timeout
        ),
    }
    if floor:  # the same batches as files landing on the same schedule
        report["engine_floor"] = measure_floor(
            workdir / "floor", as_tables(batches), history, interval
        )
    return report


def main(args) -> int:
    from patient_flow_dagster.settings import Settings

    report = run(
        args.files,
        args.events,
        args.interval,
        args.history,
        Path(args.workdir),
        args.seed,
        args.sensor_interval or Settings.from_env().sensor_interval,
        not args.no_warm_driver,
        not args.no_floor,
        args.source,
        args.batch_seconds,
    )
    text = json.dumps(report, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(text)
    return 0
