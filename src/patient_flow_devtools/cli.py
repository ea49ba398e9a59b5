"""The development commands of `patient-flow`: bench, bench-compute, bench-stream, bench-jobs,
bench-sensor, jvm-archive, spark-driver, kafka-broker."""

from __future__ import annotations

import argparse
import sys

from patient_flow_dagster.settings import SparkSettings


def cmd_bench(args) -> int:
    from patient_flow_devtools.bench import main

    return main(args)


def cmd_bench_compute(args) -> int:
    from patient_flow_devtools.compute_modes import main

    return main(args)


def cmd_bench_stream(args) -> int:
    from patient_flow_devtools.bench_stream import main

    return main(args)


def cmd_bench_jobs(args) -> int:
    from patient_flow_devtools.spark_jobs import main

    return main(args)


def cmd_bench_sensor(args) -> int:
    from patient_flow_devtools.sensor_tick import main

    return main(args)


def cmd_config_reference(args) -> int:
    from patient_flow_devtools.config_reference import REFERENCE, write

    changed = write()
    print(f"{REFERENCE}: {'rewritten' if changed else 'already up to date'}")
    return 0


def cmd_jvm_archive(args) -> int:
    from patient_flow_dagster.resources import jvm_archive
    from patient_flow_devtools.jvm_archive import build

    path = jvm_archive.archive_path(SparkSettings.from_env())
    if path is None:
        print(f"{jvm_archive.ARCHIVE_ENV}=off: no class archive")
        return 0
    if path.is_file() and not args.force:
        print(f"class archive present: {path}")
        return 0
    print(
        "building the Spark JVM class archive (a 2,000-event run through every step, once)...",
        file=sys.stderr,
    )
    print(f"class archive written: {build(force=True)}")
    return 0


def cmd_spark_driver(args) -> int:
    from patient_flow_dagster.resources import warm_driver
    from patient_flow_devtools.warm_driver import serve

    connection = args.connection or SparkSettings.from_env().warm_driver
    if not connection:
        print(f"error: give --connection or set {warm_driver.DRIVER_ENV}", file=sys.stderr)
        return 2
    serve(connection, warm=not args.no_warm_up)
    return 0


def cmd_kafka_broker(args) -> int:
    from pathlib import Path

    from patient_flow_devtools.local_kafka import serve

    serve(Path(args.dir) if args.dir else None, args.port)
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register the development commands on the `patient-flow` parser."""
    bench = commands.add_parser("bench", help="throughput, overhead, incremental cost, latency")
    bench.add_argument("--events", type=int, default=1_000_000)
    bench.add_argument("--seed", type=int, default=1)
    bench.add_argument(
        "--format",
        choices=("lifecycles", "stays"),
        default="lifecycles",
        help="simulated events: ADT lifecycles, or complete stay records",
    )
    bench.add_argument("--workdir", default=".lake/bench")
    bench.add_argument("--output", default=None, help="also write the JSON report here")
    bench.add_argument(
        "--no-latency",
        action="store_true",
        help="skip the file-to-gold latency run (starts dagster dev)",
    )
    bench.add_argument(
        "--no-warm-driver",
        action="store_true",
        help="latency runs start their own JVM (no `spark-driver`)",
    )
    bench.add_argument(
        "--sensor-interval",
        type=int,
        default=None,
        help="landing sensor interval (default: the sensor's own default)",
    )
    bench.set_defaults(func=cmd_bench)

    compute = commands.add_parser(
        "bench-compute",
        help="file-to-gold per Databricks compute mode (new VMs, instance pool, "
        "existing cluster), on the local emulation of the workspace",
    )
    compute.add_argument("--events", type=int, default=2_000)
    compute.add_argument("--seed", type=int, default=1)
    compute.add_argument(
        "--scale",
        type=float,
        default=0.02,
        help="emulated start delays as a fraction of Azure's (default 0.02)",
    )
    compute.add_argument("--workdir", default=".lake/bench-compute")
    compute.add_argument("--output", default=None, help="also write the JSON report here")
    compute.set_defaults(func=cmd_bench_compute)

    stream = commands.add_parser(
        "bench-stream",
        help="steady arrivals under dagster dev and the warm driver: "
        "file-to-gold (or event-to-gold through Kafka), run queue depth, drain time, beside "
        "the engine floor",
    )
    stream.add_argument(
        "--from",
        dest="source",
        choices=["landing", "kafka"],
        default="landing",
        help="batches land as files (default), or are sent to a local Kafka "
        "broker that the landing consumer reads",
    )
    stream.add_argument("--files", type=int, default=36, help="batches (files, or sends)")
    stream.add_argument("--events", type=int, default=50, help="events per batch")
    stream.add_argument("--interval", type=float, default=10, help="seconds between batches")
    stream.add_argument(
        "--batch-seconds",
        type=float,
        default=2.0,
        help="with --from kafka: the landing consumer's flush interval",
    )
    stream.add_argument(
        "--history",
        type=int,
        default=0,
        help="events landed and run before the stream (the lake's history)",
    )
    stream.add_argument("--seed", type=int, default=1)
    stream.add_argument("--sensor-interval", type=int, default=None)
    stream.add_argument("--no-warm-driver", action="store_true")
    stream.add_argument("--no-floor", action="store_true", help="skip the engine floor")
    stream.add_argument("--workdir", default=".lake/bench-stream")
    stream.add_argument("--output", default=None, help="also write the JSON report here")
    stream.set_defaults(func=cmd_bench_stream)

    jobs = commands.add_parser(
        "bench-jobs",
        help="seconds and Spark jobs per step of a full run, small increments "
        "and a run with no new files, in one warm session",
    )
    jobs.add_argument("--events", type=int, default=20_000)
    jobs.add_argument("--increments", type=int, default=3)
    jobs.add_argument("--increment-events", type=int, default=50)
    jobs.add_argument("--seed", type=int, default=1)
    jobs.add_argument("--workdir", default=".lake/bench-jobs")
    jobs.add_argument("--output", default=None, help="also write the JSON report here")
    jobs.set_defaults(func=cmd_bench_jobs)

    sensor = commands.add_parser(
        "bench-sensor",
        help="a landing sensor tick with a large archive beside the landing "
        "zone, and with those files left in it",
    )
    sensor.add_argument("--archived", type=int, default=10_000)
    sensor.add_argument("--new", type=int, default=10, help="new files each tick finds")
    sensor.add_argument("--ticks", type=int, default=20)
    sensor.add_argument("--workdir", default=None, help="default: a temporary folder")
    sensor.add_argument("--output", default=None, help="also write the JSON report here")
    sensor.set_defaults(func=cmd_bench_sensor)

    archive = commands.add_parser(
        "jvm-archive", help="build the class archive that makes Spark JVM starts faster (once)"
    )
    archive.add_argument("--force", action="store_true", help="rebuild even if present")
    archive.set_defaults(func=cmd_jvm_archive)

    driver = commands.add_parser(
        "spark-driver",
        help="keep one warm Spark driver up for the runs of `dagster dev` to "
        "attach to (started by ./run dev)",
    )
    driver.add_argument(
        "--connection",
        default=None,
        help="connection file to publish (default: $PATIENT_FLOW_SPARK_DRIVER)",
    )
    driver.add_argument(
        "--no-warm-up", action="store_true", help="publish at once, without the warm-up batch"
    )
    driver.set_defaults(func=cmd_spark_driver)

    reference = commands.add_parser(
        "config-reference",
        help="rewrite docs/configuration.md's table from the declared variables",
    )
    reference.set_defaults(func=cmd_config_reference)

    kafka = commands.add_parser(
        "kafka-broker", help="a single-node Kafka broker (KRaft) on 127.0.0.1, until Ctrl-C"
    )
    kafka.add_argument("--port", type=int, default=9092)
    kafka.add_argument("--dir", default=None, help="data folder (default: a temporary one)")
    kafka.set_defaults(func=cmd_kafka_broker)
