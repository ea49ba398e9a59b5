"""The silver quality rules (docs/architecture.md, "Quality rules"), declared once.

Silver filtering, the quarantine reasons and the asset checks are all generated from `RULES`:
adding a rule here adds it everywhere. A condition is Spark SQL that is TRUE for a valid row
over the typed silver columns; NULL counts as a failure. Conditions are written so that a
missing value is blamed on one rule only (a null department breaks `required_ids`, not also
`known_department`), which keeps the per-rule quarantine counts meaningful.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from patient_flow_dagster.model.contract import (
    ADMITTING,
    DISCHARGE,
    EVENT_TYPES,
    TRANSFER,
)
from patient_flow_dagster.model.reference import known_departments

# A rule's action: a breaking row goes to the quarantine table, or stays in silver with a warning.
# (The quarantine table itself is `tables.QUARANTINE`.)
QUARANTINE_ROW: Literal["quarantine"] = "quarantine"
WARN_ONLY: Literal["warn"] = "warn"

# Admissions up to this far after the ingestion time are accepted (clock skew between sources).
FUTURE_TOLERANCE = "INTERVAL 5 MINUTES"


@dataclass(frozen=True)
class QualityRule:
    name: str
    condition: str
    action: Literal["quarantine", "warn"]
    description: str
    # The columns whose values break it: a quarantine reason quotes them (identifying ones masked).
    columns: tuple[str, ...]

    @property
    def quarantines(self) -> bool:
        return self.action == QUARANTINE_ROW


def _sql_list(values: Sequence[str]) -> str:
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)


def known_department_condition(departments: Sequence[str]) -> str:
    return f"department IS NULL OR department IN ({_sql_list(departments)})"


_KNOWN_TYPE = f"event_type IN ({_sql_list(EVENT_TYPES)})"
_ADMITTING = f"event_type IN ({_sql_list(ADMITTING)})"

RULES: tuple[QualityRule, ...] = (
    QualityRule(
        "valid_age",
        "age BETWEEN 0 AND 100",
        QUARANTINE_ROW,
        "Age is present and between 0 and 100 years.",
        ("age",),
    ),
    QualityRule(
        "valid_pediatric_age",
        "department IS NULL OR department <> 'Pediatrics' OR age BETWEEN 0 AND 18",
        WARN_ONLY,
        "Pediatrics admits patients aged 0-18; an adult there is suspicious but possible.",
        ("department", "age"),
    ),
    QualityRule(
        "valid_admission_time",
        "admission_time_ts IS NOT NULL OR (admission_time IS NULL AND encounter_id IS NOT NULL "
        f"AND NOT {_ADMITTING})",
        QUARANTINE_ROW,
        "Admission time parses as an ISO-8601 UTC timestamp; it is required on stay records, "
        "admissions and events without an encounter_id (it identifies their encounter).",
        ("admission_time", "event_type"),
    ),
    QualityRule(
        "admission_not_in_future",
        "admission_time_ts IS NULL "
        f"OR admission_time_ts <= bronze_ingestion_ts + {FUTURE_TOLERANCE}",
        QUARANTINE_ROW,
        "Admission is not later than the moment the event was ingested (5 minutes tolerance).",
        ("admission_time",),
    ),
    QualityRule(
        "valid_discharge_time",
        "discharge_time IS NULL OR (discharge_time_ts IS NOT NULL AND "
        "(admission_time_ts IS NULL OR discharge_time_ts > admission_time_ts))",
        QUARANTINE_ROW,
        "Discharge, when present, parses and is after admission.",
        ("discharge_time", "admission_time"),
    ),
    QualityRule(
        "known_event_type",
        _KNOWN_TYPE,
        QUARANTINE_ROW,
        f"event_type is absent (a stay record) or one of {', '.join(EVENT_TYPES[1:])}.",
        ("event_type",),
    ),
    QualityRule(
        "valid_event_time",
        f"event_time_ts IS NOT NULL OR NOT {_KNOWN_TYPE} OR (event_time IS NULL AND "
        f"({_ADMITTING} OR (event_type = '{DISCHARGE}' AND discharge_time IS NOT NULL)))",
        QUARANTINE_ROW,
        "The event's time parses as an ISO-8601 UTC timestamp; when absent it is the admission "
        "time (stay records, admissions) or the discharge time (discharges).",
        ("event_time", "event_type"),
    ),
    QualityRule(
        "movement_after_admission",
        f"NOT (event_type = '{TRANSFER}' "
        f"OR (event_type = '{DISCHARGE}' AND discharge_time IS NULL)) "
        "OR admission_time_ts IS NULL OR event_time_ts IS NULL "
        "OR event_time_ts >= admission_time_ts",
        QUARANTINE_ROW,
        "A transfer or discharge does not happen before the admission of its encounter.",
        ("event_time", "admission_time", "event_type"),
    ),
    QualityRule(
        "required_ids",
        "patient_id IS NOT NULL AND trim(patient_id) <> '' AND department IS NOT NULL "
        "AND hospital_id IS NOT NULL AND bed_id IS NOT NULL",
        QUARANTINE_ROW,
        "patient_id, department, hospital_id and bed_id are all present.",
        ("patient_id", "department", "hospital_id", "bed_id"),
    ),
    QualityRule(
        "known_department",
        known_department_condition(known_departments()),
        QUARANTINE_ROW,
        "Department is one of the hospital's reference departments.",
        ("department",),
    ),
)

RULES_BY_NAME = {rule.name: rule for rule in RULES}


def with_departments(departments: Sequence[str]) -> tuple[QualityRule, ...]:
    """RULES, with `known_department` over `departments` (the hospital's reference data, read
    when a run starts; RULES itself holds the packaged sample's)."""
    condition = known_department_condition(departments)
    return tuple(
        replace(rule, condition=condition) if rule.name == "known_department" else rule
        for rule in RULES
    )
