"""The hospital's reference data as a resource: read and checked when a run starts, so a
malformed file stops the run before any step writes (model/reference.py)."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import PrivateAttr

from patient_flow_dagster.model.reference import Reference, load
from patient_flow_dagster.variables import resource_field


class ReferenceData(ConfigurableResource):
    folder: str | None = resource_field("PATIENT_FLOW_REFERENCE_DIR")
    fiscal_year_start_month: int = resource_field("PATIENT_FLOW_FISCAL_YEAR_START_MONTH", int)
    _loaded: Reference | None = PrivateAttr(default=None)

    def setup_for_execution(self, context) -> None:
        self._loaded = load(self.folder)

    @property
    def data(self) -> Reference:
        if self._loaded is None:
            self._loaded = load(self.folder)
        return self._loaded
