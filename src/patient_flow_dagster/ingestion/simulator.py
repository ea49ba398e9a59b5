"""Seeded patient-flow simulator (docs/architecture.md, "Event contract").

Two formats: `simulate_lifecycles` sends each stay as ADT events over time (the default of
`patient-flow simulate`), `simulate` sends complete stay records (the public tutorial simulator's v1
format). Both model a population rather than independent rows: people come back for later stays (so
their age grows and dim_patient gets real history), a few have their gender corrected, departments
admit plausible ages (Pediatrics 0-18, Maternity women 18-45), stays have department-typical
lengths, and stays not yet over at `now` have no discharge. Dirty rows are injected at configurable
rates, and the simulator returns which event got which defect so tests can check that each one ends
where it should.
"""

from __future__ import annotations

import bisect
import math
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from typing import Any

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

    def resend(self, rng: random.Random) -> None:
        """A copy of one of the last 200 events, as a producer's retry sends it again."""
        original = self.events[rng.randrange(max(0, len(self.events) - 200), len(self.events))]
        self.events.append(dict(original))
        self.duplicates += 1

    def summary(self) -> str:
        """The distinct events per type and the encounters they belong to, in one line."""
        distinct = {e["event_id"]: e for e in self.events}.values()
        types = Counter(e.get("event_type") or "STAY" for e in distinct)
        encounters = len({e.get("encounter_id") for e in distinct if e.get("encounter_id")})
        kinds = ", ".join(f"{n} {t}" for t, n in sorted(types.items()))
        return f"{kinds}; {encounters} encounters" if encounters else kinds


class Beds:
    """Which bed of each hospital is taken when, so that a simulated patient gets a free bed
    (a random one; after 50 taken ones, the last tried). Each bed's bookings are kept sorted,
    so a free bed is found by looking at the two bookings around the new one."""

    BEDS_PER_HOSPITAL = 500

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.taken: dict[tuple[int, int], list[tuple[datetime, datetime]]] = {}

    def take(self, hospital: int, start: datetime, end: datetime) -> int:
        for _ in range(50):
            bed = self.rng.randint(1, self.BEDS_PER_HOSPITAL)
            busy = self.taken.setdefault((hospital, bed), [])
            at = bisect.bisect_left(busy, (start, end))
            if (at == 0 or busy[at - 1][1] <= start) and (at == len(busy) or end <= busy[at][0]):
                break
        bisect.insort(busy, (start, end))
        return bed


def _dirty_rates(
    given: dict[str, float] | None, defaults: dict[str, float], kinds
) -> dict[str, float]:
    """The defaults overridden by `given`, checked: known kinds, adding up to at most 1."""
    rates = defaults if given is None else {**defaults, **given}
    unknown = set(rates) - set(kinds)
    if unknown:
        raise ValueError(f"unknown dirty kinds {sorted(unknown)}; known: {sorted(kinds)}")
    if sum(rates.values()) > 1:
        raise ValueError("dirty rates add up to more than 1")
    return rates


def _draw_kind(rng: random.Random, rates: dict[str, float]) -> str | None:
    """A dirty kind by its rate, or None (clean) for the rest."""
    kinds = list(rates)
    weights = [rates[k] for k in kinds]
    return rng.choices([None, *kinds], weights=[1 - sum(weights), *weights])[0]


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
    rates = _dirty_rates(dirty_rates, DEFAULT_DIRTY_RATES, DIRTY_KINDS)
    population = _population(rng, patients or max(1, events // 3), now, span_days)
    start = now - timedelta(days=span_days)
    moments = sorted(
        start + timedelta(seconds=rng.uniform(0, span_days * 86_400)) for _ in range(events)
    )
    sim = Simulation(events=[])
    beds = Beds(rng)
    for moment in moments:
        kind = _draw_kind(rng, rates)
        if kind == "duplicate" and sim.events:
            sim.resend(rng)
            continue
        if kind == "late":
            moment = moment - timedelta(days=rng.uniform(1, 10))
        event = _stay(rng, rng.choice(population), moment, now, beds)
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


def _stay(
    rng: random.Random, person: Person, admitted: datetime, now: datetime, beds: Beds
) -> dict:
    age = person.age_at(admitted)
    gender = person.gender_at(admitted)
    fitting = [d for d in DEPARTMENTS if d.min_age <= age <= d.max_age and gender in d.genders]
    department = rng.choices(fitting, weights=[d.weight for d in fitting])[0]
    hours = max(0.25, rng.lognormvariate(math.log(department.median_stay_hours), 0.7))
    discharged = admitted + timedelta(hours=hours)
    with_offset = rng.random() < 0.5
    hospital = rng.randint(1, 7)
    return {
        "event_id": _uuid(rng),
        "patient_id": person.patient_id,
        "gender": gender,
        "age": age,
        "department": department.name,
        "admission_time": iso(admitted, with_offset),
        "discharge_time": iso(discharged, with_offset) if discharged <= now else None,
        "bed_id": beds.take(hospital, admitted, discharged),
        "hospital_id": hospital,
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


# -- lifecycles: a stay's life as ADT events over time ----------------------------------------

# Where patients go next from a department, with the probability of each move (plausible
# pathways: Emergency -> ICU -> Surgery, Emergency -> Cardiology, ...).
PATHWAYS: dict[str, tuple[tuple[str, float], ...]] = {
    "Emergency": (("ICU", 0.12), ("Cardiology", 0.12), ("Surgery", 0.12), ("Oncology", 0.04)),
    "ICU": (("Surgery", 0.25), ("Cardiology", 0.2)),
    "Surgery": (("ICU", 0.1),),
    "Cardiology": (("ICU", 0.08), ("Surgery", 0.08)),
}
# Defects of single events in a lifecycle -> the quarantine rule that must catch them.
LIFECYCLE_DIRTY_KINDS: dict[str, str | None] = {
    "bad_age": "valid_age",
    "missing_field": "required_ids",
    "unknown_department": "known_department",
    "unknown_event_type": "known_event_type",
    "bad_event_time": "valid_event_time",
    "duplicate": None,  # re-sent: removed as a duplicate in silver
}
DEFAULT_LIFECYCLE_DIRTY_RATES = {kind: 0.01 for kind in LIFECYCLE_DIRTY_KINDS}
# Cancels and corrections per encounter (and per transfer, for CANCEL_TRANSFER).
CANCEL_RATES = {"CANCEL_ADMIT": 0.01, "CANCEL_TRANSFER": 0.05, "CANCEL_DISCHARGE": 0.02}
UPDATE_RATE = 0.03
LATE_SHARE = 0.05  # events delivered hours late (an interface engine's queue, a resend)


def simulate_lifecycles(
    events: int = 10_000,
    seed: int = 42,
    now: datetime | None = None,
    span_days: float = 30.0,
    dirty_rates: dict[str, float] | None = None,
    patients: int | None = None,
) -> Simulation:
    """About `events` ADT events of encounters admitted over `span_days` before `now`, in
    arrival order: admissions, transfers along PATHWAYS, discharges hours later, some cancels
    and corrections, delivery minutes (sometimes hours) after the fact, duplicates and dirty
    events. Only what has happened and arrived by `now` is sent, so a stay still open at `now`
    has no discharge yet, and a later run with a later `now` sends the rest."""
    rng = random.Random(seed)
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    rates = _dirty_rates(dirty_rates, DEFAULT_LIFECYCLE_DIRTY_RATES, LIFECYCLE_DIRTY_KINDS)
    population = _population(rng, patients or max(1, events // 8), now, span_days)
    start = now - timedelta(days=span_days)
    arrivals: list[tuple[datetime, dict]] = []
    sim = Simulation(events=[])
    beds = Beds(rng)
    while len(arrivals) < events:
        admitted = start + timedelta(seconds=rng.uniform(0, span_days * 86_400))
        for event in _lifecycle(rng, rng.choice(population), admitted, now, beds):
            delay = rng.uniform(1, 6) * 3600 if rng.random() < LATE_SHARE else rng.uniform(5, 600)
            arrived = _parse(event["event_time"]) + timedelta(seconds=delay)
            if arrived <= now:
                arrivals.append((arrived, event))
    arrivals.sort(key=lambda pair: pair[0])
    for _, event in arrivals[:events]:
        kind = _draw_kind(rng, rates)
        if kind == "duplicate" and sim.events:
            sim.resend(rng)
            continue
        if kind is not None:
            _damage(rng, event, kind)
            sim.kinds[event["event_id"]] = kind
            if rule := LIFECYCLE_DIRTY_KINDS[kind]:
                sim.expected_rule[event["event_id"]] = rule
        sim.events.append(event)
    return sim


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def _lifecycle(
    rng: random.Random, person: Person, admitted: datetime, now: datetime, beds: Beds
) -> list[dict]:
    """The events of one encounter that have happened by `now`, in event-time order."""
    age, gender = person.age_at(admitted), person.gender_at(admitted)
    fitting = [d for d in DEPARTMENTS if d.min_age <= age <= d.max_age and gender in d.genders]
    by_name = {d.name: d for d in fitting}
    department = (
        "Emergency"
        if "Emergency" in by_name and rng.random() < 0.6
        else rng.choices(fitting, weights=[d.weight for d in fitting])[0].name
    )
    hospital = rng.randint(1, 7)
    stamp: dict[str, Any] = {
        "encounter_id": f"V{rng.getrandbits(40):012d}",
        "patient_id": person.patient_id,
        "gender": gender,
        "age": age,
        "hospital_id": hospital,
        "admission_time": iso(admitted, False),
    }
    # The path first (each place and when the patient leaves it), then a bed free for each.
    path, moment = [(department, admitted)], admitted
    while True:
        hours = max(
            0.25,
            rng.lognormvariate(
                math.log(by_name.get(department, DEPARTMENTS[0]).median_stay_hours), 0.7
            ),
        )
        moment += timedelta(hours=hours)
        options = [(name, p) for name, p in PATHWAYS.get(department, ()) if name in by_name]
        following = next((name for name, p in options if rng.random() < p), None)
        if following is None or moment > now:
            break
        department = following
        path.append((department, moment))
    discharged = moment
    ends = [start for _, start in path[1:]] + [discharged]
    places = [
        (name, start, beds.take(hospital, start, end))
        for (name, start), end in zip(path, ends, strict=True)
    ]
    lifecycle: list[dict] = []

    def emit(kind: str, at: datetime, place: tuple, **fields) -> None:
        lifecycle.append(
            {
                "event_id": _uuid(rng),
                "event_type": kind,
                **stamp,
                "department": place[0],
                "bed_id": place[2],
                "event_time": iso(at, False),
                "sequence": len(lifecycle) + 1,
                "discharge_time": None,
                **fields,
            }
        )

    emit("ADMIT", admitted, places[0])
    if rng.random() < CANCEL_RATES["CANCEL_ADMIT"]:
        emit("CANCEL_ADMIT", admitted + timedelta(minutes=rng.uniform(5, 60)), places[0])
        return [e for e in lifecycle if _parse(e["event_time"]) <= now]
    for previous, place in pairwise(places):
        entered = place[1] - timedelta(minutes=40)
        if entered > previous[1] and rng.random() < CANCEL_RATES["CANCEL_TRANSFER"]:
            # a transfer entered in error, then undone, before the real one
            wrong = (rng.choice(list(by_name)), place[1], rng.randint(1, Beds.BEDS_PER_HOSPITAL))
            emit("TRANSFER", entered, wrong)
            emit("CANCEL_TRANSFER", place[1] - timedelta(minutes=rng.uniform(10, 30)), previous)
        emit("TRANSFER", place[1], place)
    if rng.random() < UPDATE_RATE:  # a demographics correction during the stay
        stamp["age"] = min(100, stamp["age"] + 1)
        emit("UPDATE", admitted + (min(discharged, now) - admitted) / 2, places[-1])
    if discharged <= now:
        if rng.random() < CANCEL_RATES["CANCEL_DISCHARGE"]:  # discharged too early, undone
            early = discharged - timedelta(hours=rng.uniform(1, 3))
            if early > places[-1][1]:
                emit("DISCHARGE", early, places[-1], discharge_time=iso(early, False))
                emit("CANCEL_DISCHARGE", early + timedelta(minutes=rng.uniform(10, 40)), places[-1])
        emit("DISCHARGE", discharged, places[-1], discharge_time=iso(discharged, False))
    lifecycle.sort(key=lambda e: (e["event_time"], e["sequence"]))
    return [e for e in lifecycle if _parse(e["event_time"]) <= now]


def _damage(rng: random.Random, event: dict, kind: str) -> None:
    """Damage one lifecycle event in place."""
    if kind == "bad_age":
        event["age"] = rng.randint(101, 150)
    elif kind == "missing_field":
        event[rng.choice(("patient_id", "department", "hospital_id", "bed_id"))] = None
    elif kind == "unknown_department":
        event["department"] = rng.choice(UNKNOWN_DEPARTMENTS)
    elif kind == "unknown_event_type":
        event["event_type"] = rng.choice(("MOVE", "A02", "SWAP_BEDS"))
    elif kind == "bad_event_time":
        event["event_time"] = rng.choice(("yesterday", "2025-13-45T99:00:00", "soon"))
