"""Every table of the lake, declared once (what a declaration holds, and what is derived from
it: `model/table.py`)."""

from __future__ import annotations

from dagster import AssetKey

from patient_flow_dagster.model.contract import LANDING_SCHEMA
from patient_flow_dagster.model.table import (  # noqa: F401 (the tables' vocabulary, for importers)
    ANALYTICS,
    CHANGE_FEED,
    REASON_TYPE,
    RESTRICTED,
    ZONES,
    Column,
    Table,
)
from patient_flow_dagster.model.table import columns_of as _columns

_CONTRACT = ", ".join(
    f"{field.name} {field.dataType.simpleString()}"
    for field in LANDING_SCHEMA.fields
    if field.name != "event_id"
)
_TYPED = (
    "patient_id string, gender string, age int, department string, admission_time string, "
    "discharge_time string, bed_id int, hospital_id int, event_type string, "
    "encounter_id string, event_time string, sequence bigint"
)
_LINEAGE = (
    "bronze_ingestion_ts timestamp, source_file string, ingest_run_id string, "
    "silver_run_id string, silver_processing_time timestamp"
)
_CUBE_FIGURES = (
    "num_admissions bigint, completed_stays bigint, "
    "total_length_of_stay_hours decimal(24,2), avg_length_of_stay_hours double"
)

LANDING_EVENTS = Table(
    "landing",
    "patient_events",
    "Parquet files of patient events written by producers (the event contract).",
    _columns(f"event_id string, {_CONTRACT}"),
)

BRONZE_EVENTS = Table(
    "bronze",
    "patient_events",
    "Every row of every ingested landing file exactly once, as it arrived, with ingest metadata.",
    _columns(
        f"event_id string, {_CONTRACT}, bronze_ingestion_ts timestamp, source_file string, "
        "ingest_run_id string, rescued_data string"
    ),
    stats_columns=("event_id", "ingest_run_id"),
    streamed=True,
)

LANDING_FILES = Table(
    "bronze",
    "landing_files",
    "Ledger of every version of every landing file bronze has seen (a file rewritten under its "
    "name is a new version): ingested, or rejected with the reason, and where it was archived.",
    _columns(
        "file_name string, file_size bigint, file_modified timestamp, footer_rows bigint, "
        "status string, reason string, batch bigint, audit_run_id string, "
        "audited_at timestamp, archived_as string"
    ),
    keys=("file_name", "file_size", "file_modified"),
)

SILVER_EVENTS = Table(
    "silver",
    "patient_events",
    "Typed, validated and enriched events, one row per event_id.",
    _columns(
        f"event_id string, {_TYPED}, admission_time_ts timestamp, "
        "discharge_time_ts timestamp, event_time_ts timestamp, length_of_stay_hours double, "
        "admission_hour int, "
        "admission_day_of_week int, admission_month int, stay_category string, "
        f"quality_warnings array<string>, {_LINEAGE}"
    ),
    keys=("event_id",),
    stats_columns=("event_id", "patient_id", "silver_run_id"),
    streamed=True,
)

QUARANTINE = Table(
    "silver",
    "patient_events_quarantine",
    "Events that break a quarantine rule, with the rules they break and why.",
    _columns(
        f"event_id string, {_TYPED}, broken_rules array<string>, "
        f"quarantine_reasons {REASON_TYPE}, quality_warnings array<string>, {_LINEAGE}"
    ),
    keys=("event_id",),
    stats_columns=("event_id", "silver_run_id"),
)

DIM_PATIENT = Table(
    "gold",
    "dim_patient",
    "Patients as SCD type 2: a new version when gender or age changes.",
    _columns(
        "patient_sk bigint, patient_pseudonym string, gender string, age int, "
        "valid_from timestamp, valid_to timestamp, is_current boolean"
    ),
    keys=("patient_sk",),
    stats_columns=("patient_pseudonym", "valid_from"),
    streamed=True,
)

DIM_HOSPITAL = Table(
    "gold",
    "dim_hospital",
    "Hospitals with their names and time zones, from the reference data (SCD type 1).",
    _columns("hospital_id int, hospital_name string, time_zone string"),
    keys=("hospital_id",),
)

DIM_DEPARTMENT = Table(
    "gold",
    "dim_department",
    "Departments per hospital with their bed capacity (SCD type 1).",
    _columns(
        "department_sk bigint, department string, hospital_id int, bed_capacity int, "
        "inpatient boolean"
    ),
    keys=("department_sk",),
    streamed=True,
)

FACT_ADMISSIONS = Table(
    "gold",
    "fact_admissions",
    "One row per encounter with its current state, keyed to the patient version valid at "
    "admission and to its admitting and current departments.",
    _columns(
        "encounter_pseudonym string, patient_sk bigint, department_sk bigint, "
        "current_department_sk bigint, hospital_id int, bed_id int, current_bed_id int, "
        "admission_time_ts timestamp, discharge_time_ts timestamp, status string, "
        "transfers int, event_count int, length_of_stay_hours double, admission_hour int, "
        "admission_day_of_week int, admission_month int, admission_date date, "
        "stay_category string, is_currently_admitted boolean",
        department_sk="Surrogate key of the admitting department (dim_department).",
        status="admitted, discharged or cancelled (CANCEL_ADMIT: kept for audit, in no KPI).",
        bed_id="Bed the patient was admitted to.",
        length_of_stay_hours="Hours from admission to discharge; null while admitted.",
        admission_hour="Hour of day of the admission on the hospital's clock (0-23).",
        admission_day_of_week="Day of week of the admission, local (1 = Sunday ... 7 = Saturday).",
        admission_month="Month of the admission, local (1-12).",
    ),
    keys=("encounter_pseudonym",),
    stats_columns=("encounter_pseudonym", "patient_sk", "department_sk"),
    change_feed=True,
    streamed=True,
)

FACT_MOVEMENTS = Table(
    "gold",
    "fact_patient_movements",
    "One row per segment of an encounter in one department and bed: admission, transfers "
    "and discharge split an encounter into segments that tile it without overlap.",
    _columns(
        "encounter_pseudonym string, segment int, department_sk bigint, hospital_id int, "
        "bed_id int, start_ts timestamp, end_ts timestamp, length_of_stay_hours double, "
        "stay_category string",
        length_of_stay_hours="Hours of the segment; null while the patient is there.",
        stay_category="Short (< 24 h), Medium (24-72 h) or Long (> 72 h) segment; null while open.",
    ),
    keys=("encounter_pseudonym", "segment"),
    stats_columns=("encounter_pseudonym", "start_ts"),
)

PATIENT_IDENTITY = Table(
    "identity",
    "patients",
    "The identity map of patients (restricted): each pseudonym of the analytics zone with the "
    "patient identifier it stands for. Care coordination re-identifies a patient through it.",
    _columns("patient_pseudonym string, patient_id string"),
    keys=("patient_pseudonym",),
)

ENCOUNTER_IDENTITY = Table(
    "identity",
    "encounters",
    "The identity map of encounters (restricted): each pseudonym of the analytics zone with the "
    "visit number it stands for.",
    _columns("encounter_pseudonym string, encounter_id string"),
    keys=("encounter_pseudonym",),
)

CUBE_GENDER_DEPARTMENT = Table(
    "gold",
    "cube_admissions_gender_department",
    "Admissions and length of stay per gender x department.",
    _columns(f"gender string, department string, {_CUBE_FIGURES}"),
    keys=("gender", "department"),
)

CUBE_DEPARTMENT_HOSPITAL = Table(
    "gold",
    "cube_admissions_department_hospital",
    "Admissions and length of stay per department x hospital.",
    _columns(f"department string, hospital_id int, {_CUBE_FIGURES}"),
    keys=("department", "hospital_id"),
)

DEPARTMENT_CENSUS_HOURLY = Table(
    "gold",
    "department_census_hourly",
    "Hourly census per hospital x department from the movement segments: arrivals, departures, "
    "patients present and occupancy at the end of each hour.",
    _columns(
        "hospital_id int, department string, hour_start timestamp, hour_end timestamp, "
        "local_hour_start timestamp_ntz, admissions bigint, discharges bigint, "
        "present_at_end bigint, bed_capacity int, occupancy double",
        admissions="Patients who arrived in the department in the hour (admitted or "
        "transferred in).",
        discharges="Patients who left the department in the hour (discharged or transferred out).",
    ),
    keys=("hospital_id", "department", "hour_start"),
    stats_columns=("hour_start", "hospital_id", "department"),
    streamed=True,
)

CURRENT_OCCUPANCY = Table(
    "gold",
    "current_occupancy",
    "The latest census hour per hospital x department and per hospital.",
    _columns(
        "scope string, hospital_id int, department string, as_of timestamp, "
        "present bigint, bed_capacity bigint, occupancy double",
        department="Department; null on a hospital's total row.",
    ),
    keys=("scope", "hospital_id", "department"),
)

LENGTH_OF_STAY_STATS = Table(
    "gold",
    "length_of_stay_stats",
    "Length-of-stay distribution of the completed stays in each department x hospital "
    "(movement segments: a transferred patient's time in each department).",
    _columns(
        "department string, hospital_id int, completed_stays bigint, mean_hours double, "
        "median_hours double, p90_hours double, max_hours double, short_stays bigint, "
        "medium_stays bigint, long_stays bigint"
    ),
    keys=("department", "hospital_id"),
)

DAILY_FLOW = Table(
    "gold",
    "daily_flow",
    "Admissions and discharges per hospital and local day.",
    _columns("hospital_id int, day date, admissions bigint, discharges bigint, net_change bigint"),
    keys=("hospital_id", "day"),
)

DIM_DATE = Table(
    "gold",
    "dim_date",
    "One row per calendar date: what reports group a hospital's local dates by (week, month, "
    "quarter, fiscal year). Every daily table's local_date joins to it.",
    _columns(
        "local_date date, day_of_week int, day_name string, is_weekend boolean, iso_week int, "
        "iso_year int, month int, month_name string, quarter int, year int, fiscal_year int, "
        "fiscal_quarter int",
        local_date="The calendar date.",
    ),
    keys=("local_date",),
)

_UNIT_DAY = "hospital_id int, department string, local_date date"

MIDNIGHT_CENSUS = Table(
    "gold",
    "midnight_census",
    "The official daily census: patients present at the local midnight that ends each day, per "
    "hospital x department, with bed capacity and occupancy.",
    _columns(
        f"{_UNIT_DAY}, midnight_utc timestamp, present bigint, bed_capacity int, occupancy double",
        present="Patients present at the midnight (admitted before it, not gone before it).",
    ),
    keys=("hospital_id", "department", "local_date"),
    stats_columns=("local_date", "hospital_id", "department"),
)

PATIENT_DAYS = Table(
    "gold",
    "patient_days",
    "Per hospital x department x local month: patient days (the month's midnight census, "
    "summed), admissions, discharges and the average length of stay of the month's discharges.",
    _columns(
        "hospital_id int, department string, local_month date, patient_days bigint, "
        "admissions bigint, discharges bigint, average_length_of_stay_days double",
        admissions="Encounters admitted to the department in the month.",
        discharges="Encounters discharged from the department in the month.",
    ),
    keys=("hospital_id", "department", "local_month"),
)

ED_BOARDING = Table(
    "gold",
    "ed_boarding",
    "Per encounter that arrived in an emergency (non-inpatient) department and moved on to an "
    "inpatient one: how long it boarded, from arrival to leaving for the inpatient bed.",
    _columns(
        "encounter_pseudonym string, hospital_id int, emergency_department string, "
        "inpatient_department string, arrival_ts timestamp, left_emergency_ts timestamp, "
        "boarding_minutes double, local_date date",
        local_date="Local date the patient left the emergency department.",
    ),
    keys=("encounter_pseudonym",),
    stats_columns=("local_date", "hospital_id"),
)

ED_BOARDING_DAILY = Table(
    "gold",
    "ed_boarding_daily",
    "Per hospital x local day: patients who left the emergency department for an inpatient "
    "bed, their median, p90 and longest boarding, and how many boarded over four hours.",
    _columns(
        "hospital_id int, local_date date, boarded bigint, median_minutes double, "
        "p90_minutes double, max_minutes double, over_4h bigint",
        local_date="Local date the patients left the emergency department.",
    ),
    keys=("hospital_id", "local_date"),
)

DISCHARGE_TIMING = Table(
    "gold",
    "discharge_timing",
    "Per hospital x department discharged from x local day: discharges, those before noon on "
    "the hospital's clock, and their share.",
    _columns(
        f"{_UNIT_DAY}, discharges bigint, before_noon bigint, share_before_noon double",
        discharges="Encounters discharged from the department that day.",
    ),
    keys=("hospital_id", "department", "local_date"),
)

BED_TURNOVER = Table(
    "gold",
    "bed_turnover",
    "Per hospital x department x local day: beds that took a new patient after standing empty, "
    "and how long they stood empty between two patients.",
    _columns(
        f"{_UNIT_DAY}, turnovers bigint, mean_empty_minutes double, median_empty_minutes double",
        local_date="Local date the next patient arrived in the bed.",
    ),
    keys=("hospital_id", "department", "local_date"),
)

READMISSIONS = Table(
    "gold",
    "readmissions",
    "Per discharged encounter: the same patient's next admission (to any hospital), the days "
    "between, and whether it came within 30 days.",
    _columns(
        "encounter_pseudonym string, patient_pseudonym string, hospital_id int, "
        "local_date date, discharge_time_ts timestamp, next_admission_ts timestamp, "
        "days_to_readmission int, readmitted_30d boolean",
        local_date="Local date of the discharge.",
    ),
    keys=("encounter_pseudonym",),
    stats_columns=("local_date", "patient_pseudonym"),
)

READMISSION_RATES = Table(
    "gold",
    "readmission_rates",
    "Per hospital x local month of discharge: discharges, readmissions within 30 days and the "
    "30-day readmission rate.",
    _columns(
        "hospital_id int, local_month date, discharges bigint, readmissions_30d bigint, "
        "readmission_rate double, follow_up_complete_on date",
        discharges="Encounters discharged in the month.",
    ),
    keys=("hospital_id", "local_month"),
)

CHECK_RESULTS = Table(
    "quality",
    "check_results",
    "Every evaluation of every asset check, appended by the steps that evaluate them: the "
    "quality history stewards query for trends.",
    _columns(
        "check_run_id string, check_name string, table_name string, table_version bigint, "
        "evaluated bigint, failed bigint, failed_ratio double, passed boolean, "
        "severity string, evaluated_at timestamp"
    ),
    keys=("check_run_id", "table_name", "check_name"),
)

LAKE_TABLES: tuple[Table, ...] = (
    BRONZE_EVENTS,
    LANDING_FILES,
    SILVER_EVENTS,
    QUARANTINE,
    PATIENT_IDENTITY,
    ENCOUNTER_IDENTITY,
    DIM_PATIENT,
    DIM_HOSPITAL,
    DIM_DEPARTMENT,
    DIM_DATE,
    FACT_ADMISSIONS,
    FACT_MOVEMENTS,
    CUBE_GENDER_DEPARTMENT,
    CUBE_DEPARTMENT_HOSPITAL,
    DEPARTMENT_CENSUS_HOURLY,
    CURRENT_OCCUPANCY,
    LENGTH_OF_STAY_STATS,
    DAILY_FLOW,
    MIDNIGHT_CENSUS,
    PATIENT_DAYS,
    ED_BOARDING,
    ED_BOARDING_DAILY,
    DISCHARGE_TIMING,
    BED_TURNOVER,
    READMISSIONS,
    READMISSION_RATES,
    CHECK_RESULTS,
)
BY_KEY: dict[AssetKey, Table] = {table.key: table for table in (LANDING_EVENTS, *LAKE_TABLES)}
