"""A user's mistake on the command line: one line naming it on stderr, exit code 2, no
traceback, and nothing written."""

import pytest

from patient_flow_dagster import cli

pytestmark = pytest.mark.faults


@pytest.mark.parametrize(
    "argv, message",
    [
        (["simulate", "--events", "-5"], "argument --events: -5 must be at least 1"),
        (["simulate", "--events", "abc"], "argument --events: 'abc' is not a number"),
        (["simulate", "--dirty-rate", "5"], "argument --dirty-rate: 5 must be between 0 and 0.12"),
        (["simulate", "--now", "yesterday"], "argument --now: 'yesterday' is not an ISO-8601 time"),
        (["simulate", "--rate", "0"], "argument --rate: 0 must be more than 0"),
        (["simulate", "--to", "kafka"], "--bootstrap HOST:PORT is required to send to kafka"),
        (
            ["simulate", "--landing", "/proc/nonexistent/x"],
            "cannot write to the landing folder /proc/nonexistent/x: No such file or directory",
        ),
        (["ingest", "--from", "kafka"], "--bootstrap HOST:PORT is required to ingest from kafka"),
        (["ingest", "--batch-events", "0"], "argument --batch-events: 0 must be at least 1"),
        (["demo", "--span-days", "0"], "argument --span-days: 0 must be more than 0"),
        (["demo", "--format", "hl7"], "argument --format: invalid choice: 'hl7'"),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_code_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATIENT_FLOW_LAKE", str(tmp_path / "lake"))
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert message in line and "Traceback" not in line
    assert not (tmp_path / "lake").exists()  # nothing simulated, nothing written


def test_a_consumer_without_a_broker_gives_up_in_seconds_with_one_line(tmp_path):
    """librdkafka retries a refused connection many times a second: the user hears it once per
    interval, and after PATIENT_FLOW_BROKER_TIMEOUT one line says what was tried (exit 2)."""
    import os
    import subprocess
    import sys
    import time

    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "patient_flow_dagster.cli",
            "ingest",
            "--from",
            "kafka",
            "--bootstrap",
            "127.0.0.1:1",
            "--landing",
            str(tmp_path / "landing"),
        ],
        env={**os.environ, "PATIENT_FLOW_BROKER_TIMEOUT": "3"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    assert (
        lines[-1].startswith(
            "error: no partition of topic patient-events assigned after 3 s from 127.0.0.1:1"
        )
        and "Connection refused" in lines[-1]
    )
    assert len(lines) <= 2 and elapsed < 30  # one log line per 10 s, then the error
    assert list((tmp_path / "landing").iterdir()) == []  # nothing landed
