"""File-to-gold per Databricks compute mode, on the local emulation of the workspace.

Each mode runs one batch (`patient_flow`, the production executor) through the real step
launcher against `databricks_emulation`: job clusters on new VMs, job clusters from an instance
pool, or an existing all-purpose cluster. The emulation holds each job run PENDING for its
compute's start delay, scaled down (`scale`) so the benchmark ends in minutes; the report gives
the job runs and cold cluster starts of the batch, the measured wall time, and the file-to-gold
time at Azure's start delays (the measured time with each cold start's scaled delay replaced by
the full one: the steps run one after another, so every cold start is on the critical path).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from patient_flow_dagster.ingestion.landing_writer import write_events
from patient_flow_dagster.ingestion.simulator import simulate_lifecycles
from patient_flow_devtools.databricks_emulation.emulator import DatabricksEmulator

# Typical waits of a job run for its compute on Azure Databricks (VM allocation, image, Spark
# start): planning figures, not measured here.
AZURE_START_SECONDS = {"new": 300.0, "pool": 45.0, "existing": 0.0}
TOKEN = "dapi-benchmark-emulation"  # the emulation's own, not a credential of anything real
CLUSTER = "0101-000000-benchmark"
VOLUME = "patient_flow/staging/dagster"


class ComputeModeError(RuntimeError):
    pass


def run_mode(mode: str, workdir: Path, landing: Path, scale: float) -> dict:
    """One batch on `mode` compute; its job runs, cold starts and times."""
    root = workdir / mode
    secrets = {"patient-flow": {"databricks-token": TOKEN}}
    with DatabricksEmulator(root / "workspace", TOKEN, secrets, volumes=(VOLUME,)) as workspace:
        workspace.start_seconds.update({m: s * scale for m, s in AZURE_START_SECONDS.items()})
        (root / "dagster_home").mkdir(parents=True, exist_ok=True)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PATIENT_FLOW_", "DATABRICKS_"))
        }
        env.update(
            {
                "DAGSTER_HOME": str(root / "dagster_home"),
                "PATIENT_FLOW_ENV": "databricks",
                "PATIENT_FLOW_LAKE": str(root / "lake"),
                "PATIENT_FLOW_LANDING": str(landing),
                "PATIENT_FLOW_LANDING_READER": "files",
                "PATIENT_FLOW_DATABRICKS_POLL_SECONDS": "0.5",
                "PATIENT_FLOW_DATABRICKS_STAGING": f"/Volumes/{VOLUME}/steps",
                "DATABRICKS_HOST": workspace.host,
                "DATABRICKS_TOKEN": TOKEN,
                # the emulation's tasks run on this machine's Python, not the runtime's
                "PATIENT_FLOW_DATABRICKS_RUNTIME_CHECK": "off",
            }
        )
        if mode == "pool":
            env["PATIENT_FLOW_DATABRICKS_INSTANCE_POOL"] = "0101-benchmark-pool"
        elif mode == "existing":
            workspace.start_cluster(CLUSTER)  # up before the batch, as a running cluster is
            env["DATABRICKS_CLUSTER_ID"] = CLUSTER
        dagster = Path(sys.executable).with_name("dagster")
        started = time.perf_counter()
        run = subprocess.run(
            [
                str(dagster),
                "job",
                "execute",
                "-m",
                "patient_flow_dagster.definitions",
                "-j",
                "patient_flow",
            ],
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        if run.returncode:
            raise ComputeModeError(
                f"the batch on {mode} compute failed: {(run.stdout + run.stderr)[-2000:]}"
            )
        cold = workspace.cold_starts.get(mode, 0)
    scaled, full = AZURE_START_SECONDS[mode] * scale, AZURE_START_SECONDS[mode]
    return {
        "job_runs_per_batch": len(workspace.runs),
        "cold_cluster_starts_per_batch": cold,
        "emulated_wall_seconds": round(wall, 1),
        "start_delay_seconds_emulated": round(scaled, 2),
        "start_delay_seconds_on_azure": full,
        "file_to_gold_seconds_at_azure_start_times": round(wall + cold * (full - scaled), 1),
    }


def run_compute_modes(events: int, workdir: Path, scale: float = 0.02, seed: int = 1) -> dict:
    landing = workdir / "landing"
    write_events(
        simulate_lifecycles(events, seed=seed).events, landing, events_per_file=max(events // 4, 1)
    )
    report = {"events": events, "start_delay_scale": scale}
    for mode in ("new", "pool", "existing"):
        print(f"batch on {mode} compute...", file=sys.stderr)
        report[mode] = run_mode(mode, workdir, landing, scale)
    return report


def main(args) -> int:
    from patient_flow_devtools.bench import format_table

    workdir = Path(args.workdir)
    if workdir.exists() and any(workdir.iterdir()):
        print(f"error: {workdir} is not empty; give an empty --workdir", file=sys.stderr)
        return 2
    report = run_compute_modes(args.events, workdir, scale=args.scale, seed=args.seed)
    text = json.dumps(report, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(format_table(report))
    return 0
