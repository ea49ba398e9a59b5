"""A step's independent Spark work runs side by side on threads: results come back in order,
a value the work shares is computed once, and concurrent writes each carry their own note."""

import threading
import time
from types import SimpleNamespace

import pytest

from patient_flow_dagster.assets.checking import CheckRun
from patient_flow_dagster.assets.common import side_by_side
from patient_flow_dagster.model.tables import Table
from patient_flow_dagster.resources.lake import DeltaLake, last_note


def test_side_by_side_runs_together_and_reports_in_order():
    started = threading.Barrier(3, timeout=10)  # breaks unless all three run at once

    def work(seconds):
        started.wait()
        time.sleep(seconds)  # the first item finishes last
        return seconds * 10

    assert list(side_by_side(work, [0.3, 0.1, 0.0])) == [3.0, 1.0, 0.0]


def test_side_by_side_raises_the_first_failure_in_order():
    def work(item):
        if item == "bad":
            raise ValueError("bad item")
        return item

    results = side_by_side(work, ["good", "bad", "good"])
    assert next(results) == "good"
    with pytest.raises(ValueError, match="bad item"):
        next(results)


def test_a_shared_measure_is_computed_once_by_concurrent_checks():
    """Within one step's evaluation (a CheckRun) the first check computes it and the others
    wait; the next step's evaluation computes it again (nothing outlives a step)."""
    calls = []

    def measure(run):
        calls.append(run.context.run.run_id)
        time.sleep(0.2)  # the other checks ask meanwhile
        return {"failed": len(calls)}

    step = CheckRun(SimpleNamespace(run=SimpleNamespace(run_id="run-1")))
    results = list(side_by_side(lambda run: run.once("m", lambda: measure(run)), [step] * 4))
    assert results == [{"failed": 1}] * 4 and calls == ["run-1"]
    assert step.once("m", lambda: measure(step)) == {"failed": 1}
    next_step = CheckRun(SimpleNamespace(run=SimpleNamespace(run_id="run-1")))
    assert next_step.once("m", lambda: measure(next_step)) == {"failed": 2}


def test_concurrent_overwrites_each_commit_their_own_note(tmp_path, spark):
    lake = DeltaLake(root=str(tmp_path / "lake"))
    tables = [Table("gold", f"kpi_{i}", "a probe table", ()) for i in range(4)]

    def write(table):
        rows = spark.createDataFrame([(table.name, 1)], "name string, n int")
        lake.overwrite(rows, table, note={"written_as": table.name})
        return last_note(lake, spark, table)

    assert list(side_by_side(write, tables)) == [{"written_as": t.name} for t in tables]
    unnoted = Table("gold", "unnoted", "a probe table", ())
    lake.overwrite(spark.createDataFrame([(1,)], "n int"), unnoted)
    assert last_note(lake, spark, unnoted) == {}
