"""Reference data the hospital owns: its hospitals (with their time zones) and departments
(with bed capacity, and whether a department is an inpatient unit).

Read from the folder PATIENT_FLOW_REFERENCE_DIR names (a local folder, or a Unity Catalog
volume path on Databricks), or the sample shipped with the package. Checked as a whole before
anything uses it: a malformed file is one `ReferenceDataError` naming the file, the row and the
column.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

HOSPITALS_FILE, DEPARTMENTS_FILE = "hospitals.csv", "departments.csv"
HOSPITAL_COLUMNS = ("hospital_id", "name", "time_zone")
DEPARTMENT_COLUMNS = ("hospital_id", "department", "bed_capacity")  # `inpatient` optional


class ReferenceDataError(ValueError):
    """A reference file the product cannot use; the message names file, row and column."""


@dataclass(frozen=True)
class Hospital:
    hospital_id: int
    name: str
    time_zone: str  # an IANA zone name
    facility_code: str = ""  # how HL7 messages name it (PV1-3.4); optional column


@dataclass(frozen=True)
class Department:
    hospital_id: int
    department: str
    bed_capacity: int
    inpatient: bool  # Emergency is not: a patient boards there until an inpatient bed is free
    location_code: str = ""  # how HL7 messages name it (PV1-3.1 point of care); optional column


@dataclass(frozen=True)
class Reference:
    hospitals: tuple[Hospital, ...]
    departments: tuple[Department, ...]

    def department_names(self) -> tuple[str, ...]:
        """Department names in reference order, without duplicates."""
        return tuple(dict.fromkeys(d.department for d in self.departments))


def _rows(text: Iterable[str], file: str, required: tuple[str, ...]) -> list[tuple[int, dict]]:
    reader = csv.DictReader(text)
    header = [name.strip() for name in reader.fieldnames or []]
    for column in required:
        if column not in header:
            raise ReferenceDataError(f"{file}: missing column {column}")
    rows = []
    for row in reader:
        values = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        rows.append((reader.line_num, values))
    return rows


def _whole(file: str, line: int, column: str, text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ReferenceDataError(
            f"{file} row {line}, column {column}: {text!r} is not a whole number"
        ) from None
    if value < minimum:
        raise ReferenceDataError(
            f"{file} row {line}, column {column}: {value} must be at least {minimum}"
        )
    return value


def parse(hospitals_text: Iterable[str], departments_text: Iterable[str]) -> Reference:
    """Both files' rows, checked: every column present and typed, zones known to the IANA
    database, no key twice, capacities not negative, every department's hospital declared."""
    hospitals: dict[int, Hospital] = {}
    for line, row in _rows(hospitals_text, HOSPITALS_FILE, HOSPITAL_COLUMNS):
        hospital_id = _whole(HOSPITALS_FILE, line, "hospital_id", row["hospital_id"], 0)
        if hospital_id in hospitals:
            raise ReferenceDataError(
                f"{HOSPITALS_FILE} row {line}, column hospital_id: {hospital_id} appears twice"
            )
        zone = row["time_zone"]
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ReferenceDataError(
                f"{HOSPITALS_FILE} row {line}, column time_zone: {zone!r} is not an IANA time "
                "zone (e.g. America/New_York)"
            ) from None
        if not row["name"]:
            raise ReferenceDataError(f"{HOSPITALS_FILE} row {line}, column name: empty")
        hospitals[hospital_id] = Hospital(
            hospital_id, row["name"], zone, row.get("facility_code", "")
        )
    departments: dict[tuple[int, str], Department] = {}
    for line, row in _rows(departments_text, DEPARTMENTS_FILE, DEPARTMENT_COLUMNS):
        hospital_id = _whole(DEPARTMENTS_FILE, line, "hospital_id", row["hospital_id"], 0)
        if hospital_id not in hospitals:
            raise ReferenceDataError(
                f"{DEPARTMENTS_FILE} row {line}, column hospital_id: {hospital_id} is not in "
                f"{HOSPITALS_FILE}"
            )
        name = row["department"]
        if not name:
            raise ReferenceDataError(f"{DEPARTMENTS_FILE} row {line}, column department: empty")
        if (hospital_id, name) in departments:
            raise ReferenceDataError(
                f"{DEPARTMENTS_FILE} row {line}, column department: {name} appears twice for "
                f"hospital {hospital_id}"
            )
        capacity = _whole(DEPARTMENTS_FILE, line, "bed_capacity", row["bed_capacity"], 0)
        inpatient_text = row.get("inpatient", "").lower() or "true"
        if inpatient_text not in ("true", "false"):
            raise ReferenceDataError(
                f"{DEPARTMENTS_FILE} row {line}, column inpatient: {row['inpatient']!r} is not "
                "true or false"
            )
        departments[(hospital_id, name)] = Department(
            hospital_id, name, capacity, inpatient_text == "true", row.get("location_code", "")
        )
    return Reference(tuple(hospitals.values()), tuple(departments.values()))


def load(folder: str | None = None) -> Reference:
    """The reference data of `folder`, or the sample shipped with the package."""
    if folder is None:
        return packaged()
    base = Path(folder)
    try:
        with (base / HOSPITALS_FILE).open() as h, (base / DEPARTMENTS_FILE).open() as d:
            return parse(h, d)
    except FileNotFoundError as missing:
        raise ReferenceDataError(f"{missing.filename}: no such file") from None


@lru_cache(maxsize=1)
def packaged() -> Reference:
    files = resources.files(__package__)
    with (
        files.joinpath(HOSPITALS_FILE).open() as hospitals,
        files.joinpath(DEPARTMENTS_FILE).open() as departments,
    ):
        return parse(hospitals, departments)


def department_capacity() -> tuple[tuple[str, int, int], ...]:
    """(department, hospital_id, bed_capacity) rows of the packaged sample."""
    return tuple((d.department, d.hospital_id, d.bed_capacity) for d in packaged().departments)


def known_departments() -> tuple[str, ...]:
    """Department names of the packaged sample, in reference order, without duplicates."""
    return packaged().department_names()
