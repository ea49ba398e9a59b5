"""The silver quality rules (docs/architecture.md, "Quality rules"), declared once.

Silver filtering, the quarantine reasons and the asset checks are all generated from `RULES`:
adding a rule here adds it everywhere. A condition is Spark SQL that is TRUE for a valid row
over the typed silver columns; NULL counts as a failure. Conditions are written so that a
missing value is blamed on one rule only (a null department breaks `required_ids`, not also
`known_department`), which keeps the per-rule quarantine counts meaningful.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from patient_flow_dagster.model.reference import known_departments

QUARANTINE: Literal["quarantine"] = "quarantine"
WARN: Literal["warn"] = "warn"

# Admissions up to this far after the ingestion time are accepted (clock skew between sources).
FUTURE_TOLERANCE = "INTERVAL 5 MINUTES"


@dataclass(frozen=True)
class QualityRule:
    name: str
    condition: str
    action: Literal["quarantine", "warn"]
    description: str

    @property
    def quarantines(self) -> bool:
        return self.action == QUARANTINE


def _sql_list(values: tuple[str, ...]) -> str:
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)


RULES: tuple[QualityRule, ...] = (
    QualityRule(
        "valid_age",
        "age BETWEEN 0 AND 100",
        QUARANTINE,
        "Age is present and between 0 and 100 years.",
    ),
    QualityRule(
        "valid_pediatric_age",
        "department IS NULL OR department <> 'Pediatrics' OR age BETWEEN 0 AND 18",
        WARN,
        "Pediatrics admits patients aged 0-18; an adult there is suspicious but possible.",
    ),
    QualityRule(
        "valid_admission_time",
        "admission_time_ts IS NOT NULL",
        QUARANTINE,
        "Admission time is present and parses as an ISO-8601 UTC timestamp.",
    ),
    QualityRule(
        "admission_not_in_future",
        f"admission_time_ts IS NULL OR admission_time_ts <= bronze_ingestion_ts + {FUTURE_TOLERANCE}",
        QUARANTINE,
        "Admission is not later than the moment the event was ingested (5 minutes tolerance).",
    ),
    QualityRule(
        "valid_discharge_time",
        "discharge_time IS NULL OR (discharge_time_ts IS NOT NULL AND "
        "(admission_time_ts IS NULL OR discharge_time_ts > admission_time_ts))",
        QUARANTINE,
        "Discharge, when present, parses and is after admission.",
    ),
    QualityRule(
        "required_ids",
        "patient_id IS NOT NULL AND trim(patient_id) <> '' AND department IS NOT NULL "
        "AND hospital_id IS NOT NULL AND bed_id IS NOT NULL",
        QUARANTINE,
        "patient_id, department, hospital_id and bed_id are all present.",
    ),
    QualityRule(
        "known_department",
        f"department IS NULL OR department IN ({_sql_list(known_departments())})",
        QUARANTINE,
        "Department is one of the hospital's reference departments.",
    ),
)

RULES_BY_NAME = {rule.name: rule for rule in RULES}
