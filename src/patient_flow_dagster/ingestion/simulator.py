"""Seeded patient-flow simulator (docs/architecture.md, "Event contract").

Models a population rather than independent rows: people come back for later stays (so their
age grows and dim_patient gets real history), a few have their gender corrected, departments
admit plausible ages (Pediatrics 0-18, Maternity women 18-45), stays have department-typical
lengths, and stays not yet over at `now` have no discharge. Dirty rows are injected at
configurable rates, and the simulator returns which event got which defect so tests can check
that each one ends where it should.
"""
from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

GENDERS = ("Male", "Female")


@dataclass(frozen=True)
class DepartmentProfile:
    name: str
    min_age: int
    max_age: int
    median_stay_hours: float
    weight: float
    genders: tuple[str, ...] = GENDERS


DEPARTMENTS = (
    DepartmentProfile("Emergency", 0, 100, 6, 30),
    DepartmentProfile("Surgery", 18, 95, 72, 15),
    DepartmentProfile("ICU", 16, 100, 96, 8),
    DepartmentProfile("Pediatrics", 0, 18, 36, 12),
    DepartmentProfile("Maternity", 18, 45, 60, 10, ("Female",)),
    DepartmentProfile("Oncology", 20, 100, 120, 10),
    DepartmentProfile("Cardiology", 30, 100, 84, 15),
)
UNKNOWN_DEPARTMENTS = ("Radiology", "Psychiatry", "Unknown", "emergency", "ER")
MISSING_FIELDS = ("patient_id", "department", "hospital_id", "bed_id", "admission_time")

# Dirty kind -> the quarantine rule that must catch it (None: not a quarantine case).
DIRTY_KINDS: dict[str, str | None] = {
    "bad_age": "valid_age",
    "future_admission": "admission_not_in_future",
    "discharge_before_admission": "valid_discharge_time",
    "missing_field": None,  # required_ids, or valid_admission_time for a missing admission
    "unknown_department": "known_department",
    "duplicate": None,  # removed as a duplicate in silver
    "late": None,  # valid, arrives out of order
    "adult_in_pediatrics": None,  # valid, warns valid_pediatric_age
}
DEFAULT_DIRTY_RATES = {kind: 0.05 for kind in DIRTY_KINDS} | {"adult_in_pediatrics": 0.01}


@dataclass(frozen=True)
class Person:
    patient_id: str
    gender: str
    born: datetime
    gender_corrected_at: datetime | None  # from then on the record carries the other gender

    def age_at(self, moment: datetime) -> int:
        years = moment.year - self.born.year
        if (moment.month, moment.day) < (self.born.month, self.born.day):
            years -= 1
        return max(0, years)

    def gender_at(self, moment: datetime) -> str:
        if self.gender_corrected_at is not None and moment >= self.gender_corrected_at:
            return GENDERS[1 - GENDERS.index(self.gender)]
        return self.gender


@dataclass
class Simulation:
    """Events in arrival order, and the truth about each injected defect."""

    events: list[dict]
    kinds: dict[str, str] = field(default_factory=dict)  # event_id -> dirty kind
    expected_rule: dict[str, str] = field(default_factory=dict)  # event_id -> quarantine rule
    duplicates: int = 0

    @property
    def distinct_event_ids(self) -> int:
        return len({e["event_id"] for e in self.events})


def iso(moment: datetime, with_offset: bool) -> str:
    text = moment.replace(tzinfo=None).isoformat(timespec="microseconds")
    return text + "+00:00" if with_offset else text


def simulate(
    events: int = 10_000,
    seed: int = 42,
    now: datetime | None = None,
    span_days: float = 365.0,
    dirty_rates: dict[str, float] | None = None,
    patients: int | None = None,
) -> Simulation:
    """Generate `events` rows (duplicates included) deterministically for (seed, now)."""
    rng = random.Random(seed)
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    rates = DEFAULT_DIRTY_RATES if dirty_rates is None else {**DEFAULT_DIRTY_RATES, **dirty_rates}
    unknown = set(rates) - set(DIRTY_KINDS)
    if unknown:
        raise ValueError(f"unknown dirty kinds {sorted(unknown)}; known: {sorted(DIRTY_KINDS)}")
    if sum(rates.values()) > 1:
        raise ValueError("dirty rates add up to more than 1")
    population = _population(rng, patients or max(1, events // 3), now, span_days)
    start = now - timedelta(days=span_days)
    moments = sorted(
        start + timedelta(seconds=rng.uniform(0, span_days * 86_400)) for _ in range(events)
    )
    sim = Simulation(events=[])
    kinds = list(rates)
    weights = [rates[k] for k in kinds]
    clean_share = 1 - sum(weights)
    for moment in moments:
        kind = rng.choices([None, *kinds], weights=[clean_share, *weights])[0]
        if kind == "duplicate" and sim.events:
            original = sim.events[rng.randrange(max(0, len(sim.events) - 200), len(sim.events))]
            sim.events.append(dict(original))
            sim.duplicates += 1
            continue
        if kind == "late":
            moment = moment - timedelta(days=rng.uniform(1, 10))
        event = _stay(rng, rng.choice(population), moment, now)
        if kind not in (None, "duplicate", "late"):
            rule = _make_dirty(rng, event, kind, now)
            if rule:
                sim.expected_rule[event["event_id"]] = rule
        if kind not in (None, "duplicate"):
            sim.kinds[event["event_id"]] = kind
        sim.events.append(event)
    return sim


def _population(rng: random.Random, size: int, now: datetime, span_days: float) -> list[Person]:
    people = []
    for _ in range(size):
        born = now - timedelta(days=rng.uniform(0, 95 * 365.25))
        corrected = None
        if rng.random() < 0.02:
            corrected = now - timedelta(days=rng.uniform(0, span_days))
        people.append(Person(_uuid(rng), rng.choice(GENDERS), born, corrected))
    return people


def _stay(rng: random.Random, person: Person, admitted: datetime, now: datetime) -> dict:
    age = person.age_at(admitted)
    gender = person.gender_at(admitted)
    fitting = [d for d in DEPARTMENTS if d.min_age <= age <= d.max_age and gender in d.genders]
    department = rng.choices(fitting, weights=[d.weight for d in fitting])[0]
    hours = max(0.25, rng.lognormvariate(math.log(department.median_stay_hours), 0.7))
    discharged = admitted + timedelta(hours=hours)
    with_offset = rng.random() < 0.5
    return {
        "event_id": _uuid(rng),
        "patient_id": person.patient_id,
        "gender": gender,
        "age": age,
        "department": department.name,
        "admission_time": iso(admitted, with_offset),
        "discharge_time": iso(discharged, with_offset) if discharged <= now else None,
        "bed_id": rng.randint(1, 500),
        "hospital_id": rng.randint(1, 7),
    }


def _make_dirty(rng: random.Random, event: dict, kind: str, now: datetime) -> str | None:
    """Damage `event` in place; return the quarantine rule expected to catch it."""
    if kind == "bad_age":
        event["age"] = rng.randint(101, 150)
    elif kind == "future_admission":
        admitted = now + timedelta(days=rng.uniform(1, 30))
        event["admission_time"] = iso(admitted, False)
        event["discharge_time"] = None
    elif kind == "discharge_before_admission":
        admitted = datetime.fromisoformat(event["admission_time"]).replace(tzinfo=None)
        event["discharge_time"] = iso(admitted - timedelta(hours=rng.uniform(1, 48)), False)
    elif kind == "missing_field":
        missing = rng.choice(MISSING_FIELDS)
        event[missing] = None
        return "valid_admission_time" if missing == "admission_time" else "required_ids"
    elif kind == "unknown_department":
        event["department"] = rng.choice(UNKNOWN_DEPARTMENTS)
    elif kind == "adult_in_pediatrics":
        event["department"] = "Pediatrics"
        event["age"] = rng.randint(19, 60)
        return None
    return DIRTY_KINDS[kind]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))
