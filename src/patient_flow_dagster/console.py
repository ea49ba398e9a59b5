"""A quiet terminal for runs started from the CLI: one line per step, the rest to a log file.

A run's full Dagster event log, Spark's and Ivy's output included, goes to a file; the terminal
gets one progress line per step (step, rows written, seconds). `--verbose` prints everything.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from dagster import DagsterEventType, LoggerDefinition, logger

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


class StepProgress(logging.Handler):
    """Writes one line per finished step: its key, the rows of the tables it materialized, and
    its duration. Reads the Dagster events attached to the log records."""

    def __init__(self, out: TextIO) -> None:
        super().__init__(logging.DEBUG)  # Dagster logs its events at DEBUG
        self.out = out
        self.rows: dict[str, int] = defaultdict(int)

    def emit(self, record: logging.LogRecord) -> None:
        event = (getattr(record, "dagster_meta", None) or {}).get("dagster_event")
        if event is None:
            return
        kind = event.event_type
        if kind == DagsterEventType.ASSET_MATERIALIZATION:
            rows = event.step_materialization_data.materialization.metadata.get("dagster/row_count")
            self.rows[event.step_key] += rows.value if rows is not None else 0
        elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            seconds = event.event_specific_data.duration_ms / 1000
            verdict = "done" if kind == DagsterEventType.STEP_SUCCESS else "FAILED"
            rows = f"{self.rows[event.step_key]:>10,} rows" if event.step_key in self.rows else ""
            print(
                f"  {event.step_key:28s} {verdict:6s} {seconds:7.1f} s {rows}",
                file=self.out,
                flush=True,
            )
        elif kind == DagsterEventType.STEP_SKIPPED:
            print(f"  {event.step_key:28s} skipped", file=self.out, flush=True)


def progress_logger(out: TextIO, log_file: Path | None) -> LoggerDefinition:
    """A Dagster logger: progress lines to `out`, every record (DEBUG and up) to `log_file`."""

    @logger(
        config_schema=None,
        description="One line per step to the terminal; the full event log to a file.",
    )
    def _progress(_init_context) -> logging.Logger:
        log = logging.getLogger("patient_flow.run")
        log.handlers.clear()
        log.setLevel(logging.DEBUG)
        log.propagate = False
        log.addHandler(StepProgress(out))
        if log_file is not None:
            handler = logging.FileHandler(log_file)
            handler.setFormatter(logging.Formatter(LOG_FORMAT))
            log.addHandler(handler)
        return log

    return _progress


@contextmanager
def output_to(log_file: Path) -> Iterator[TextIO]:
    """Send this process's stdout and stderr, and those of the processes it starts (the Spark
    JVM), to `log_file`; yield a stream on the terminal for the lines meant for the user."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        terminal = os.dup(sys.stdout.fileno())
        saved_err = os.dup(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # not a real terminal (captured): keep it
        yield sys.stdout
        return
    with open(log_file, "a") as log, os.fdopen(terminal, "w", closefd=True) as out:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield out
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(out.fileno(), 1)
            os.dup2(saved_err, 2)
            os.close(saved_err)


class Runs:
    """Several runs' results read as one (the demo's batch and the clock's run after it): a
    success when all succeeded; their materializations and check evaluations in run order."""

    def __init__(self, results: list) -> None:
        self.results = results

    @property
    def success(self) -> bool:
        return all(r.success for r in self.results)

    @property
    def run_id(self) -> str:
        return ", ".join(r.run_id for r in self.results)

    def get_asset_materialization_events(self) -> list:
        return [e for r in self.results for e in r.get_asset_materialization_events()]

    def get_asset_check_evaluations(self) -> list:
        return [e for r in self.results for e in r.get_asset_check_evaluations()]
