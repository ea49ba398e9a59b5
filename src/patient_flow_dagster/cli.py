"""`patient-flow simulate | demo`: generate events and run the pipeline from a terminal."""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import datetime, timezone
from importlib.metadata import entry_points
from pathlib import Path

from patient_flow_dagster.settings import Settings, SettingsError
from patient_flow_dagster.settings import read as read_setting

KAFKA_TOPIC = "patient-events"
MAX_DIRTY_RATE = 0.12  # the stay simulator's eight dirty kinds must add up to at most 1


class UsageError(Exception):
    """A user's mistake on the command line: one line on stderr and exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse, with a bad argument reported in one line (no usage block) and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _number(kind, low: float | None = None, high: float | None = None, low_open=False):
    """An argparse type: a `kind` number within [low, high] (low excluded when `low_open`)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        too_low = low is not None and (value <= low if low_open else value < low)
        if too_low or (high is not None and value > high):
            bounds = (
                (f"more than {low}" if low_open else f"at least {low}")
                if high is None
                else f"between {low} and {high}"
            )
            raise argparse.ArgumentTypeError(f"{text} must be {bounds}")
        return value

    return parse


COUNT = _number(int, 1)  # events, rows per file: at least one
POSITIVE = _number(float, 0, low_open=True)  # seconds, days, events per second


def _utc(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 time") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def writable_folder(location: str) -> str:
    """`location` when it is a URL or a local folder this process can create and write."""
    if "://" in location:
        return location
    folder = Path(location)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".patient-flow-write-test-{uuid.uuid4().hex}"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise UsageError(
            f"cannot write to the landing folder {location}: {error.strerror or error}"
        ) from None
    return location


def _simulate_args(parser: argparse.ArgumentParser, default_events: int) -> None:
    parser.add_argument("--events", type=COUNT, default=default_events, help="events to generate")
    parser.add_argument("--seed", type=int, default=42, help="same seed, same events")
    parser.add_argument("--events-per-file", type=COUNT, default=5_000)
    parser.add_argument(
        "--span-days",
        type=POSITIVE,
        default=None,
        help="days of history (default: 30 for lifecycles, 365 for stays)",
    )
    parser.add_argument(
        "--dirty-rate",
        type=_number(float, 0, MAX_DIRTY_RATE),
        default=0.05,
        help=f"rate of each dirty-data kind (0-{MAX_DIRTY_RATE})",
    )
    parser.add_argument(
        "--now",
        type=_utc,
        default=None,
        help="simulation clock, ISO-8601 UTC (default: the current time)",
    )
    parser.add_argument(
        "--format",
        choices=("lifecycles", "stays"),
        default="lifecycles",
        help="lifecycles: ADT events over time (admit, transfer, discharge, cancels, updates); "
        "stays: one complete record per stay (the public simulator's format)",
    )


def _simulation(args, now: datetime | None = None):
    from patient_flow_dagster.ingestion import simulator

    if args.format == "stays":
        rates = {
            k: (args.dirty_rate if k != "adult_in_pediatrics" else args.dirty_rate / 5)
            for k in simulator.DEFAULT_DIRTY_RATES
        }
        return simulator.simulate(
            args.events,
            seed=args.seed,
            now=now,
            span_days=args.span_days or 365.0,
            dirty_rates=rates,
        )
    rates = {k: args.dirty_rate / 5 for k in simulator.DEFAULT_LIFECYCLE_DIRTY_RATES}
    return simulator.simulate_lifecycles(
        args.events, seed=args.seed, now=now, span_days=args.span_days or 30.0, dirty_rates=rates
    )


def _simulate(args, landing: str):
    from patient_flow_dagster.ingestion.landing_writer import write_events

    writable_folder(landing)
    sim = _simulation(args, args.now)
    files = write_events(sim.events, landing, args.events_per_file)
    print(
        f"wrote {len(sim.events)} events ({sim.distinct_event_ids} distinct, "
        f"{len(sim.expected_rule)} to be quarantined) in {len(files)} files to {landing}"
    )
    print(f"  {sim.summary()}")
    return sim


def _sdk_events(args):
    return _simulation(args).events


def cmd_simulate(args) -> int:
    if args.to == "eventhubs-amqp":
        from patient_flow_dagster.ingestion import eventhubs_amqp

        eventhubs_amqp.publish(
            _sdk_events(args), eventhubs_amqp.EventHubsTarget.from_env(args.topic), rate=args.rate
        )
        return 0
    if args.to == "mllp":
        from patient_flow_dagster.ingestion.mllp import send
        from patient_flow_dagster.model.reference import load

        counts = send(
            _sdk_events(args), args.host, args.port, load(Settings.from_env().reference_dir)
        )
        print("acknowledged: " + ", ".join(f"{code} {n}" for code, n in sorted(counts.items())))
        return 0
    if args.to == "kafka" and not args.bootstrap:
        raise UsageError("--bootstrap HOST:PORT is required to send to kafka")
    if args.to in ("kafka", "eventhubs"):
        from patient_flow_dagster.ingestion.kafka_io import client_config, publish

        config = client_config(args.bootstrap, eventhubs=args.to == "eventhubs")
        publish(_sdk_events(args), config, args.topic or KAFKA_TOPIC, rate=args.rate)
        return 0
    landing = args.landing or Settings.from_env().landing
    _simulate(args, landing)
    return 0


def cmd_ingest(args) -> int:
    """Long-lived consumer: topic -> landing Parquet files, offsets committed after each file."""
    if args.source == "kafka" and not args.bootstrap:
        raise UsageError("--bootstrap HOST:PORT is required to ingest from kafka")
    landing = writable_folder(args.landing or Settings.from_env().landing)
    dead_letter = args.dead_letter or str(Path(landing).parent / "dead_letter")
    if args.source == "mllp":
        from patient_flow_dagster.ingestion.mllp import listen

        stats = listen(args, landing, dead_letter, Settings.from_env().reference_dir)
        print(
            f"landed {stats.events} events in {len(stats.files)} files; "
            f"{stats.dead_letters} rejected (AE) in {dead_letter}",
            flush=True,
        )
        return 0
    if args.source == "eventhubs-amqp":
        from patient_flow_dagster.ingestion.eventhubs_amqp import (
            EventHubsLandingConsumer,
            EventHubsTarget,
        )

        consumer: EventHubsLandingConsumer | LandingConsumer = EventHubsLandingConsumer(
            EventHubsTarget.from_env(args.topic),
            landing,
            dead_letter,
            group=args.group or "$Default",
            batch_events=args.batch_events,
            batch_seconds=args.batch_seconds,
            load_balancing_interval=args.balance_seconds,
            partition_ownership_expiration_interval=3 * args.balance_seconds,
        )
    else:
        from patient_flow_dagster.ingestion.kafka_io import (
            LandingConsumer,
            client_config,
        )

        consumer = LandingConsumer(
            client_config(args.bootstrap, eventhubs=args.source == "eventhubs"),
            args.topic or KAFKA_TOPIC,
            landing,
            dead_letter,
            group=args.group or "patient-flow-landing",
            batch_events=args.batch_events,
            batch_seconds=args.batch_seconds,
        )
    consumer.stop_on_signals()
    stats = consumer.run(idle_seconds=args.idle_exit)
    print(
        f"landed {stats.events} events in {len(stats.files)} files; "
        f"{stats.dead_letters} dead letters in {dead_letter}",
        flush=True,
    )
    return 0


def cmd_demo(args) -> int:
    """Simulate a seeded batch into the landing zone, run the whole graph, print a summary."""
    from dagster import DagsterInstance

    from patient_flow_dagster.console import Runs, output_to, progress_logger
    from patient_flow_dagster.definitions import build_definitions
    from patient_flow_dagster.summary import summary

    settings = Settings.from_env()
    if settings.env != "local":
        print(
            "error: demo runs on the embedded local environment; unset PATIENT_FLOW_ENV",
            file=sys.stderr,
        )
        return 2
    if not args.skip_simulate:
        _simulate(args, settings.landing)
    definitions = build_definitions(settings)
    # A batch, then the clock's run (on `./run dev` the census_clock schedule runs it hourly).
    jobs = [definitions.resolve_job_def(name) for name in ("patient_flow", "patient_flow_clock")]
    instance = (
        DagsterInstance.get() if read_setting("DAGSTER_HOME") else DagsterInstance.ephemeral()
    )
    started = time.monotonic()
    if args.verbose:
        result = Runs(
            [job.execute_in_process(instance=instance, raise_on_error=False) for job in jobs]
        )
        print(summary(settings, result, time.monotonic() - started, None))
        return 0 if result.success else 1
    log_file = Path(settings.lake_root) / "logs" / f"demo-{time.strftime('%Y%m%d-%H%M%S')}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    print(f"running patient_flow on {settings.landing} (event log: {log_file})", flush=True)
    with output_to(log_file) as terminal:
        loggers = {"progress": progress_logger(terminal, log_file)}
        result = Runs(
            [
                job.with_logger_defs(loggers).execute_in_process(
                    run_config={"loggers": {"progress": {}}},
                    instance=instance,
                    raise_on_error=False,
                )
                for job in jobs
            ]
        )
        print(summary(settings, result, time.monotonic() - started, log_file), file=terminal)
    return 0 if result.success else 1


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="patient-flow", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    simulate_cmd = commands.add_parser("simulate", help="write seeded events to the landing zone")
    _simulate_args(simulate_cmd, default_events=10_000)
    simulate_cmd.add_argument(
        "--landing", default=None, help="landing folder (default: PATIENT_FLOW_LANDING)"
    )
    simulate_cmd.add_argument(
        "--to",
        choices=["landing", "kafka", "eventhubs", "eventhubs-amqp", "mllp"],
        default="landing",
        help="landing files (default), a Kafka topic, Event Hubs' Kafka endpoint, or Event Hubs "
        "over AMQP with the azure-eventhub SDK (EVENTHUBS_CONNECTION_STRING, or "
        "EVENTHUBS_NAMESPACE + DefaultAzureCredential)",
    )
    simulate_cmd.add_argument("--bootstrap", default=None, help="Kafka bootstrap HOST:PORT")
    simulate_cmd.add_argument("--host", default="127.0.0.1", help="mllp: the listener's host")
    simulate_cmd.add_argument("--port", type=COUNT, default=2575, help="mllp: its port")
    simulate_cmd.add_argument(
        "--topic",
        default=None,
        help="topic or event hub (default: patient-events, or the connection string's EntityPath)",
    )
    simulate_cmd.add_argument(
        "--rate",
        type=POSITIVE,
        default=None,
        help="events per second (default: as fast as possible)",
    )
    simulate_cmd.set_defaults(func=cmd_simulate)

    ingest_cmd = commands.add_parser("ingest", help="consume a topic into the landing zone")
    ingest_cmd.add_argument(
        "--from",
        dest="source",
        default="kafka",
        choices=["kafka", "eventhubs", "eventhubs-amqp", "mllp"],
    )
    ingest_cmd.add_argument("--host", default="127.0.0.1", help="mllp: address to listen on")
    ingest_cmd.add_argument("--port", type=COUNT, default=2575, help="mllp: port to listen on")
    ingest_cmd.add_argument("--bootstrap", default=None)
    ingest_cmd.add_argument(
        "--topic",
        default=None,
        help="topic or event hub (default: patient-events, or the connection string's EntityPath)",
    )
    ingest_cmd.add_argument(
        "--group",
        default=None,
        help="consumer group (default: patient-flow-landing on Kafka, $Default on Event Hubs AMQP)",
    )
    ingest_cmd.add_argument(
        "--balance-seconds",
        type=POSITIVE,
        default=10.0,
        help="Event Hubs AMQP: load-balancing interval; a crashed consumer's "
        "partitions are taken over after 3x this",
    )
    ingest_cmd.add_argument("--landing", default=None, help="folder or Azure Blob URL")
    ingest_cmd.add_argument(
        "--dead-letter",
        default=None,
        help="folder for malformed messages (default: beside landing)",
    )
    ingest_cmd.add_argument("--batch-events", type=COUNT, default=5_000)
    ingest_cmd.add_argument("--batch-seconds", type=POSITIVE, default=10.0)
    ingest_cmd.add_argument(
        "--idle-exit",
        type=POSITIVE,
        default=None,
        help="stop after this many seconds without a message",
    )
    ingest_cmd.set_defaults(func=cmd_ingest)

    demo_cmd = commands.add_parser("demo", help="simulate a batch and materialize the whole graph")
    _simulate_args(demo_cmd, default_events=20_000)
    demo_cmd.add_argument(
        "--skip-simulate",
        action="store_true",
        help="only materialize what is already in the landing zone",
    )
    demo_cmd.add_argument(
        "--verbose",
        action="store_true",
        help="print the whole Dagster event log instead of one line per step",
    )
    demo_cmd.set_defaults(func=cmd_demo)

    for extension in entry_points(group="patient_flow.commands"):
        extension.load()(commands)

    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, or a bad argument (reported by Parser.error)
        return stop.code if isinstance(stop.code, int) else 2
    from patient_flow_dagster.ingestion.eventhubs_amqp import EventHubsConfigError
    from patient_flow_dagster.ingestion.kafka_io import (
        BrokerUnreachable,
        KafkaConfigError,
    )

    try:
        return args.func(args)
    except (
        UsageError,
        EventHubsConfigError,
        KafkaConfigError,
        BrokerUnreachable,
        SettingsError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
