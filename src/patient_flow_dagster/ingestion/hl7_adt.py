"""HL7 v2 ADT messages as events of the contract (v2), the mapping declared once.

`TRIGGERS` says which event type each trigger event (MSH-9.2) becomes, `FIELDS` where each
contract column comes from; `to_event` applies both and says which field is wrong when it
cannot (an AE acknowledgement names it). Parsing is python-hl7's.

Identifiers (PID-3, PV1-19) go where every input's do: landing, then the restricted zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import hl7
from hl7.datatypes import parse_datetime

from patient_flow_dagster.model.contract import (
    ADMIT,
    CANCEL_ADMIT,
    CANCEL_DISCHARGE,
    CANCEL_TRANSFER,
    DISCHARGE,
    TRANSFER,
    UPDATE,
)
from patient_flow_dagster.model.reference import Reference

# Trigger event (MSH-9.2) -> the contract's event type. Any other trigger is acknowledged and
# lands with the trigger as its event type, so the known_event_type rule quarantines it by name.
TRIGGERS = {
    "A01": ADMIT,
    "A02": TRANSFER,
    "A03": DISCHARGE,
    "A08": UPDATE,
    "A11": CANCEL_ADMIT,
    "A12": CANCEL_TRANSFER,
    "A13": CANCEL_DISCHARGE,
}
# Many emergency departments register (A04) rather than admit: an A04 of an emergency patient
# (PV1-2 patient class E) opens the encounter.
REGISTRATION, EMERGENCY_CLASS = "A04", "E"

GENDERS = {"M": "Male", "F": "Female"}  # PID-8 (HL7 table 0001); others arrive as sent


@dataclass(frozen=True)
class Field:
    column: str
    source: str
    meaning: str


FIELDS = (
    Field(
        "event_id",
        "MSH-4 + MSH-10",
        "sending facility and message control id: a resent message is the same event",
    ),
    Field("event_type", "MSH-9.2", "the trigger, through TRIGGERS"),
    Field("sequence", "MSH-13", "sequence number, when the sender keeps one"),
    Field("event_time", "EVN-6, else EVN-2", "when it happened, else when it was recorded"),
    Field("encounter_id", "PV1-19", "visit number"),
    Field("patient_id", "PID-3.1", "the first patient identifier"),
    Field("gender", "PID-8", "M and F as Male and Female, others as sent"),
    Field("age", "PID-7", "whole years from the birth date to the event time"),
    Field("hospital_id", "PV1-3.4", "facility, through hospitals.csv"),
    Field("department", "PV1-3.1", "point of care, through departments.csv"),
    Field("bed_id", "PV1-3.3", "bed, a number"),
    Field("admission_time", "PV1-44", "admit date/time"),
    Field("discharge_time", "PV1-45", "discharge date/time"),
)


class NotHL7(ValueError):
    """Bytes that are not an HL7 v2 message at all: rejected (AR) or the connection closed."""


class ContentError(ValueError):
    """An HL7 message the contract cannot take: `field` names the HL7 field (e.g. PV1-19)."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def parse(text: str) -> hl7.Message:
    """The message, or NotHL7."""
    text = text.strip("\r\n").replace("\r\n", "\r").replace("\n", "\r")
    if not text.startswith("MSH") or len(text) < 8:
        raise NotHL7("does not start with an MSH segment")
    try:
        message = hl7.parse(text)
        message.segment("MSH")
    except Exception as error:  # python-hl7 raises several kinds on garbage
        raise NotHL7(f"not parseable as HL7 v2: {error}") from None
    return message


def _value(message: hl7.Message, segment: str, field: int, component: int = 1) -> str:
    """The text of SEG-field.component, first repetition ('' when absent)."""
    try:
        return str(message[f"{segment}.F{field}.R1.C{component}"]).strip()
    except (IndexError, KeyError):
        return ""


@dataclass(frozen=True)
class Places:
    """How a message's facility and point of care become the contract's hospital and
    department: by the codes of the reference data (or the names, or the hospital's number)."""

    hospitals: dict[str, int]
    zones: dict[int, str]
    departments: dict[tuple[int, str], str]

    @classmethod
    def of(cls, reference: Reference) -> Places:
        hospitals: dict[str, int] = {}
        for h in reference.hospitals:
            for code in (str(h.hospital_id), h.name, h.facility_code):
                if code:
                    hospitals[code.upper()] = h.hospital_id
        departments: dict[tuple[int, str], str] = {}
        for d in reference.departments:
            for code in (d.department, d.location_code):
                if code:
                    departments[(d.hospital_id, code.upper())] = d.department
        return cls(
            hospitals, {h.hospital_id: h.time_zone for h in reference.hospitals}, departments
        )


def _instant(text: str, field: str, zone: str) -> datetime:
    """An HL7 DTM as a UTC instant: without an offset it is the hospital's local time."""
    try:
        parsed = parse_datetime(text)
    except ValueError:
        raise ContentError(field, f"{text!r} is not an HL7 date/time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(zone))
    return parsed.astimezone(timezone.utc)


def _iso(instant: datetime | None) -> str | None:
    return None if instant is None else instant.replace(tzinfo=None).isoformat()


def event_type(message: hl7.Message) -> str:
    trigger = _value(message, "MSH", 9, 2) or _value(message, "EVN", 1)
    if trigger == REGISTRATION and _value(message, "PV1", 2) == EMERGENCY_CLASS:
        return ADMIT
    return TRIGGERS.get(trigger, trigger)


def to_event(message: hl7.Message, places: Places) -> dict:
    """The contract's event for one ADT message, or ContentError naming the field."""
    facility_text, control_id = _value(message, "MSH", 4), _value(message, "MSH", 10)
    if not control_id:
        raise ContentError("MSH-10", "no message control id")
    patient_id = _value(message, "PID", 3)
    if not patient_id:
        raise ContentError("PID-3", "no patient identifier")
    encounter_id = _value(message, "PV1", 19)
    if not encounter_id:
        raise ContentError("PV1-19", "no visit number")
    facility = _value(message, "PV1", 3, 4)
    hospital_id = places.hospitals.get(facility.upper())
    if hospital_id is None:
        raise ContentError("PV1-3.4", f"facility {facility!r} is not in hospitals.csv")
    zone = places.zones[hospital_id]
    point_of_care = _value(message, "PV1", 3, 1)
    department = places.departments.get((hospital_id, point_of_care.upper()))
    if department is None:
        raise ContentError(
            "PV1-3.1",
            f"point of care {point_of_care!r} is not a department of hospital {hospital_id}",
        )
    bed_text = _value(message, "PV1", 3, 3)
    if not bed_text.isdigit():
        raise ContentError("PV1-3.3", f"bed {bed_text!r} is not a bed number")
    occurred = _value(message, "EVN", 6)
    recorded = _value(message, "EVN", 2)
    if not (occurred or recorded):
        raise ContentError("EVN-2", "no event time (EVN-6 or EVN-2)")
    at = _instant(occurred, "EVN-6", zone) if occurred else _instant(recorded, "EVN-2", zone)
    admitted_text, discharged_text = _value(message, "PV1", 44), _value(message, "PV1", 45)
    admitted = _instant(admitted_text, "PV1-44", zone) if admitted_text else None
    discharged = _instant(discharged_text, "PV1-45", zone) if discharged_text else None
    born_text = _value(message, "PID", 7)
    age = None
    if born_text:
        born = _instant(born_text, "PID-7", zone).astimezone(ZoneInfo(zone)).date()
        day = at.astimezone(ZoneInfo(zone)).date()
        age = day.year - born.year - ((day.month, day.day) < (born.month, born.day))
    sequence_text = _value(message, "MSH", 13)
    gender = _value(message, "PID", 8)
    return {
        "event_id": f"{facility_text}:{control_id}",
        "event_type": event_type(message),
        "encounter_id": encounter_id,
        "event_time": _iso(at),
        "sequence": int(sequence_text) if sequence_text.isdigit() else None,
        "patient_id": patient_id,
        "gender": GENDERS.get(gender, gender or None),
        "age": age,
        "department": department,
        "bed_id": int(bed_text),
        "hospital_id": hospital_id,
        "admission_time": _iso(admitted),
        "discharge_time": _iso(discharged),
    }


def acknowledgement(message: hl7.Message, code: str, error: ContentError | None = None) -> str:
    """The ACK (MSA-1 `code`: AA, AE or AR) for `message`; with `error`, an ERR segment naming
    the field (ERR-2 location, ERR-3 101 required field missing or 102 data type error)."""
    ack = message.create_ack(code)
    text = str(ack).rstrip("\r")
    if error is not None:
        segment, _, position = error.field.partition("-")
        field, _, component = position.partition(".")
        location = f"{segment}^1^{field}" + (f"^1^{component}" if component else "")
        kind = (
            "101^Required field missing^HL70357"
            if "no " in error.reason[:3]
            else ("102^Data type error^HL70357")
        )
        text += f"\rERR||{location}|{kind}|E||||{_escape(error.reason)}"
    return text + "\r"


def _escape(text: str) -> str:
    """HL7 escapes for the delimiters (|^~\\&) in free text."""
    for raw, escaped in (
        ("\\", "\\E\\"),
        ("|", "\\F\\"),
        ("^", "\\S\\"),
        ("~", "\\R\\"),
        ("&", "\\T\\"),
    ):
        text = text.replace(raw, escaped)
    return text


# The simulator's way back: a contract event as the ADT message an interface engine would send.
EVENT_TRIGGERS = {event: trigger for trigger, event in TRIGGERS.items()}
SEXES = {name: code for code, name in GENDERS.items()}


def _moment(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def _dtm(text: str | None) -> str:
    """An ISO-8601 UTC time as an HL7 DTM with its offset (+0000), to the 1/10,000 second HL7
    carries; a time that does not parse is sent as it is (the listener answers AE)."""
    moment = _moment(text)
    if moment is None:
        return text or ""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y%m%d%H%M%S") + f".{moment.microsecond // 100:04d}+0000"


def to_message(event: dict, control_id: str, places: Places) -> str:
    """The ADT message of one contract event, for the simulator (hospital by number, department
    by name: the reference data's defaults). Fields the event lacks stay empty, so the listener
    answers AE for what a real feed would get wrong."""
    kind = event.get("event_type")
    trigger = EVENT_TRIGGERS.get(kind, kind) if kind else "A01"
    at = event.get("event_time") or event.get("admission_time")
    born, moment = "", _moment(at)
    zone = places.zones.get(event.get("hospital_id"))  # type: ignore[arg-type]
    if event.get("age") is not None and moment is not None and zone:
        day = moment.replace(tzinfo=moment.tzinfo or timezone.utc).astimezone(ZoneInfo(zone)).date()
        try:
            born = day.replace(year=day.year - int(event["age"])).strftime("%Y%m%d")
        except ValueError:  # 29 February, or an age out of any calendar
            born = ""
    place = "^".join(
        [str(event.get("department") or ""), "", str(event.get("bed_id") or ""),
         str(event.get("hospital_id") or "")]
    )  # fmt: skip
    pv1 = ["PV1", "1", "I", place] + [""] * 15 + [str(event.get("encounter_id") or "")]
    pv1 += [""] * 24 + [_dtm(event.get("admission_time")), _dtm(event.get("discharge_time"))]
    sequence = "" if event.get("sequence") is None else str(event["sequence"])
    return "\r".join(
        [
            f"MSH|^~\\&|SIMULATOR|{event.get('hospital_id') or ''}|PFLOW|LAKE|"
            f"{_dtm(at)[:14]}||ADT^{trigger}^ADT_A01|{control_id}|P|2.5.1|{sequence}",
            f"EVN|{trigger}|{_dtm(at)}||||{_dtm(event.get('event_time'))}",
            f"PID|1||{event.get('patient_id') or ''}^^^SIM^MR||||{born}|"
            f"{SEXES.get(event.get('gender') or '', event.get('gender') or '')}",
            "|".join(pv1),
        ]
    )
