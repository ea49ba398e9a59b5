"""Configuration read from the environment (DESIGN.md §5), in one place.

`dagster dev` honours a `.env` file, so the same variables configure the UI, the CLI and tests.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENVIRONMENTS = ("local", "databricks")


@dataclass(frozen=True)
class Settings:
    env: str
    lake_root: str
    landing: str

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        environ = dict(os.environ if environ is None else environ)
        env = environ.get("PATIENT_FLOW_ENV", "local").strip().lower() or "local"
        if env not in ENVIRONMENTS:
            raise ValueError(
                f"PATIENT_FLOW_ENV={env!r} is not one of {', '.join(ENVIRONMENTS)}"
            )
        lake_root = _absolute(environ.get("PATIENT_FLOW_LAKE") or ".lake")
        landing = _absolute(
            environ.get("PATIENT_FLOW_LANDING")
            or f"{lake_root.rstrip('/')}/landing/patient_events"
        )
        return cls(env=env, lake_root=lake_root, landing=landing)


def _absolute(location: str) -> str:
    """Local folders become absolute paths; URLs (abfss://, wasbs://, dbfs:/) stay as they are."""
    if "://" in location or location.startswith("dbfs:"):
        return location
    return str(Path(location).expanduser().resolve())
