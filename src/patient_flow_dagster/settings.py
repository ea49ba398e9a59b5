"""Configuration read from the environment (DESIGN.md §5), in one place.

`dagster dev` honours a `.env` file, so the same variables configure the UI, the CLI and tests.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENVIRONMENTS = ("local", "databricks")
LANDING_READERS = ("files", "autoloader")


@dataclass(frozen=True)
class Settings:
    env: str
    lake_root: str
    landing: str
    # Unity Catalog catalog of the tables (`<catalog>.<layer>.<table>`); None = Delta folders
    # under lake_root. Checkpoints always live under lake_root.
    catalog: str | None = None
    # How bronze reads landing: Spark's file stream, or Databricks Auto Loader (cloudFiles).
    landing_reader: str = "files"

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
        reader = environ.get("PATIENT_FLOW_LANDING_READER") or (
            "autoloader" if env == "databricks" else "files")
        if reader not in LANDING_READERS:
            raise ValueError(
                f"PATIENT_FLOW_LANDING_READER={reader!r} is not one of {', '.join(LANDING_READERS)}"
            )
        return cls(env=env, lake_root=lake_root, landing=landing,
                   catalog=environ.get("PATIENT_FLOW_CATALOG") or None, landing_reader=reader)


def _absolute(location: str) -> str:
    """Local folders become absolute paths; URLs (abfss://, wasbs://, dbfs:/) stay as they are."""
    if "://" in location or location.startswith("dbfs:"):
        return location
    return str(Path(location).expanduser().resolve())
