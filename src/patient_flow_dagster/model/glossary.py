"""What each column of the lake means, declared once: a name says one thing in every table
(`tables.py` describes each table's columns from here unless a table says otherwise)."""

from __future__ import annotations

# What each column means, once for the whole lake: a name says one thing in every table.
GLOSSARY: dict[str, str] = {
    # the landed event (contract)
    "event_id": "Unique id of the event; derived from its content when the producer sends none.",
    "patient_id": "The hospital's patient identifier (identifying: never shown in metadata).",
    "gender": "Patient gender as sent: M, F or O.",
    "age": "Patient age in years at admission (identifying in combination).",
    "department": "Department (care unit) of the stay.",
    "admission_time": "Admission time as sent, ISO-8601 UTC text.",
    "discharge_time": "Discharge time as sent, ISO-8601 UTC text; null while still admitted.",
    "bed_id": "Bed number within the hospital.",
    "hospital_id": "Hospital number.",
    "event_type": "ADMIT, TRANSFER, DISCHARGE, UPDATE, CANCEL_ADMIT, CANCEL_TRANSFER or "
    "CANCEL_DISCHARGE; absent (silver: STAY) for a record of the whole stay.",
    "encounter_id": "The hospital's visit number; derived from hospital, patient and admission "
    "time when the producer sends none.",
    "event_time": "When the event happened as sent, ISO-8601 UTC text (absent: the admission "
    "or discharge time it carries).",
    "sequence": "The source's order among events of one encounter at the same event_time.",
    # pseudonyms (analytics zone) and the identity maps behind them (restricted zone)
    "patient_pseudonym": "The patient's pseudonym: a keyed hash (HMAC-SHA-256) of patient_id, "
    "irreversible without the deployment's key; identity.patients maps it back (restricted).",
    "encounter_pseudonym": "The encounter's pseudonym: a keyed hash (HMAC-SHA-256) of "
    "encounter_id, irreversible without the deployment's key; identity.encounters maps it back "
    "(restricted).",
    # bronze metadata
    "bronze_ingestion_ts": "When bronze ingested the row (UTC).",
    "source_file": "The landing file the row came from.",
    "ingest_run_id": "Dagster run that ingested the row into bronze.",
    "rescued_data": "Values that did not fit the contract, as JSON (Auto Loader's rescued data).",
    # landing ledger
    "file_name": "Landing file path.",
    "file_size": "File size in bytes of this version of the file.",
    "file_modified": "Modification time of this version of the file (UTC).",
    "footer_rows": "Row count from the Parquet footer (null when unreadable).",
    "status": "pending (being ingested), ingested or rejected.",
    "reason": "Why the version was rejected, or what drifted in an ingested one (missing "
    "contract columns, extra columns kept in rescued_data).",
    "batch": "Bronze batch that ingested the version (its Delta transaction version).",
    "audit_run_id": "Dagster run that audited the file.",
    "audited_at": "When the file was audited (UTC).",
    "archived_as": "Where the version lies in the landing archive (path under it); '-' when it "
    "had left the landing zone before its retention ended (rewritten or removed); "
    "null while it is in the landing zone.",
    # silver
    "admission_time_ts": "Admission time as a UTC timestamp.",
    "discharge_time_ts": "Discharge time as a UTC timestamp; null while still admitted.",
    "event_time_ts": "When the event happened, as a UTC timestamp: the order events apply in.",
    "length_of_stay_hours": "Hours from admission to discharge; null while still admitted.",
    "admission_hour": "Hour of day of the admission (0-23, UTC).",
    "admission_day_of_week": "Day of week of the admission (1 = Sunday ... 7 = Saturday, UTC).",
    "admission_month": "Month of the admission (1-12, UTC).",
    "stay_category": "Short (< 24 h), Medium (24-72 h) or Long Stay (> 72 h); null while admitted.",
    "quality_warnings": "Names of the warn rules the row breaks (kept in silver).",
    "broken_rules": "Names of the quarantine rules the row breaks.",
    "quarantine_reasons": "Per broken rule: the rule, the columns it blames, their values as "
    "JSON (patient_id only as <present>) and what the rule requires.",
    "silver_run_id": "Dagster run that validated the row.",
    "silver_processing_time": "When silver validated the row (UTC).",
    # gold dimensions and fact
    "patient_sk": "Surrogate key of the patient version (dim_patient).",
    "valid_from": "Start of this patient version's validity (the admission that brought it).",
    "valid_to": "End of this version's validity; null for the current version.",
    "is_current": "True for the patient's current version.",
    "department_sk": "Surrogate key of the department of a hospital (dim_department).",
    "bed_capacity": "Beds of the department (or hospital) from the reference data.",
    "inpatient": "Whether the department is an inpatient unit (Emergency is not), from the "
    "reference data.",
    "hospital_name": "The hospital's name, from the reference data.",
    "time_zone": "The hospital's IANA time zone (e.g. America/New_York): its days, hours and "
    "midnights are local to it.",
    "admission_date": "Date of the admission on the hospital's calendar.",
    "is_currently_admitted": "True while the encounter is admitted (not discharged, not "
    "cancelled).",
    "current_department_sk": "Surrogate key of the department the patient is in now (or was "
    "discharged from).",
    "current_bed_id": "Bed the patient is in now (or was discharged from).",
    "transfers": "Transfers that stand (cancelled ones excluded).",
    "event_count": "Events of the encounter applied so far.",
    "segment": "Position of the segment in the encounter (1 = where it was admitted).",
    "start_ts": "When the patient arrived in the department and bed (UTC).",
    "end_ts": "When the patient left it (transfer or discharge); null while there.",
    # KPIs
    "num_admissions": "Admissions counted.",
    "completed_stays": "Stays with a discharge.",
    "total_length_of_stay_hours": "Sum of the completed stays' hours (exact decimal).",
    "avg_length_of_stay_hours": "Mean hours of the completed stays.",
    "hour_start": "Start of the UTC hour.",
    "hour_end": "End of the UTC hour (exclusive).",
    "admissions": "Admissions in the period.",
    "discharges": "Discharges in the period.",
    "present_at_end": "Patients present at the end of the hour.",
    "occupancy": "Present patients / bed capacity.",
    "scope": "department (one row per hospital x department) or hospital (its total).",
    "as_of": "The census hour the figures describe (its end).",
    "present": "Patients present.",
    "mean_hours": "Mean length of stay of completed stays, hours.",
    "median_hours": "Median length of stay, hours.",
    "p90_hours": "90th percentile length of stay, hours.",
    "max_hours": "Longest completed stay, hours.",
    "short_stays": "Completed stays under 24 hours.",
    "medium_stays": "Completed stays of 24 to 72 hours.",
    "long_stays": "Completed stays over 72 hours.",
    "day": "The hospital's local calendar day.",
    "local_hour_start": "The hospital's wall-clock time at the hour's start (a half-hour zone's "
    "hours start at :30; a day the clocks change has 23 or 25 of them).",
    "local_date": "The hospital's local calendar date (joins gold.dim_date).",
    "local_month": "First day of the hospital's local calendar month.",
    "midnight_utc": "The instant (UTC) of the local midnight that ends local_date.",
    "patient_days": "Patients present at each local midnight of the month, summed.",
    "average_length_of_stay_days": "Mean days from admission to discharge of the encounters "
    "discharged in the month (null without discharges).",
    "emergency_department": "The non-inpatient department the patient arrived in.",
    "inpatient_department": "The inpatient department the patient boarded for.",
    "arrival_ts": "Arrival in the emergency department (UTC).",
    "left_emergency_ts": "When the patient left it for the inpatient bed (UTC).",
    "boarding_minutes": "Minutes from arrival to leaving for the inpatient bed.",
    "boarded": "Patients who left the emergency department for an inpatient bed.",
    "median_minutes": "Median boarding minutes.",
    "p90_minutes": "90th percentile of boarding minutes.",
    "max_minutes": "Longest boarding, minutes.",
    "over_4h": "Patients who boarded more than four hours.",
    "before_noon": "Discharges before 12:00 on the hospital's clock.",
    "share_before_noon": "before_noon / discharges.",
    "turnovers": "Beds that took a new patient after the previous one left.",
    "mean_empty_minutes": "Mean minutes a bed stood empty between two patients.",
    "median_empty_minutes": "Median minutes a bed stood empty between two patients.",
    "next_admission_ts": "The patient's next admission after the discharge (UTC); null if none.",
    "days_to_readmission": "Local calendar days from the discharge to the next admission.",
    "readmitted_30d": "Whether the next admission came within 30 days.",
    "readmissions_30d": "Discharges followed by an admission within 30 days.",
    "readmission_rate": "readmissions_30d / discharges.",
    "follow_up_complete_on": "The day every discharge of the month has had its 30 days: the "
    "rate is final from then on.",
    "day_of_week": "ISO day of week (1 = Monday ... 7 = Sunday).",
    "day_name": "Name of the day of week.",
    "is_weekend": "Saturday or Sunday.",
    "iso_week": "ISO-8601 week number.",
    "iso_year": "The year the ISO week belongs to.",
    "month": "Calendar month (1-12).",
    "month_name": "Name of the month.",
    "quarter": "Calendar quarter (1-4).",
    "year": "Calendar year.",
    "fiscal_year": "Fiscal year (PATIENT_FLOW_FISCAL_YEAR_START_MONTH), named by the calendar "
    "year it ends in.",
    "fiscal_quarter": "Quarter of the fiscal year (1-4).",
    "net_change": "Admissions minus discharges.",
    # quality history
    "check_run_id": "Dagster run that evaluated the check.",
    "check_name": "The asset check (a rule, a reconciliation or an integrity check).",
    "table_name": "The table the check guards (<layer>/<table>).",
    "table_version": "Delta version of that table the check read.",
    "evaluated": "Rows the check evaluated (null for checks that do not count rows).",
    "failed": "Rows that failed it (null for checks that do not count rows).",
    "failed_ratio": "failed / evaluated.",
    "passed": "Whether the check passed.",
    "severity": "WARN or ERROR: what a failure of this evaluation means (ERROR blocks gold).",
    "evaluated_at": "When the check was evaluated (UTC).",
}
