"""The fact as the KPIs read it: its rows with their dimensions, and the version they reflect."""

from dataclasses import dataclass

from pyspark.sql import DataFrame

from patient_flow_dagster.model.tables import (
    DIM_DEPARTMENT,
    DIM_HOSPITAL,
    DIM_PATIENT,
    FACT_ADMISSIONS,
    FACT_MOVEMENTS,
)
from patient_flow_dagster.resources.lake import DeltaLake
from patient_flow_dagster.transforms import census
from patient_flow_dagster.transforms.local_time import with_time_zone


class FactRows:
    """Fact rows a KPI is computed from (the whole fact, or its signed changes; cancelled
    encounters left out) with the dimensions and the movements (lazy DataFrames: nothing is
    read until a KPI's query runs)."""

    def __init__(self, spark, lake: DeltaLake, fact: DataFrame):
        self.fact = census.counted(fact)
        self.dim_department = lake.read(spark, DIM_DEPARTMENT)
        self.dim_hospital = lake.read(spark, DIM_HOSPITAL)
        self.dim_patient = lake.read(spark, DIM_PATIENT)
        self.admitted = census.admitted_encounters(
            self.fact, self.dim_department, self.dim_hospital
        )
        self._movements = lambda: lake.read(spark, FACT_MOVEMENTS)

    @property
    def placements(self) -> DataFrame:
        """The movement segments in their departments (the table as it is now: the step
        reads it after the fact step that writes both)."""
        return census.placements(self._movements(), self.dim_department, self.dim_hospital)

    @property
    def with_patients(self) -> DataFrame:
        """The fact rows with their patient's pseudonym and their hospital's time zone."""
        patients = self.dim_patient.select("patient_sk", "patient_pseudonym").distinct()
        return with_time_zone(self.fact.join(patients, "patient_sk"), self.dim_hospital)


@dataclass(frozen=True)
class FactVersion:
    """The fact as a KPI table reflects it: Delta's table id (a recreated fact has a new one)
    and version."""

    table_id: str | None
    version: int | None

    @property
    def note(self) -> dict:
        return {"fact_table_id": self.table_id, "fact_version": self.version}

    @classmethod
    def of(cls, spark, lake: DeltaLake) -> "FactVersion":
        return cls(lake.table_id(spark, FACT_ADMISSIONS), lake.version(spark, FACT_ADMISSIONS))
