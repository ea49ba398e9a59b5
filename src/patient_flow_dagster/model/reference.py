"""Reference data shipped with the project: departments and their bed capacity per hospital."""

from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def department_capacity() -> tuple[tuple[str, int, int], ...]:
    """(department, hospital_id, bed_capacity) rows from departments.csv."""
    with resources.files(__package__).joinpath("departments.csv").open() as handle:
        return tuple(
            (row["department"], int(row["hospital_id"]), int(row["bed_capacity"]))
            for row in csv.DictReader(handle)
        )


def known_departments() -> tuple[str, ...]:
    """Department names in reference order, without duplicates."""
    return tuple(dict.fromkeys(name for name, _, _ in department_capacity()))
