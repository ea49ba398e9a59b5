"""How strict the quality checks are, as a resource so each environment can set it."""

from dagster import ConfigurableResource
from pydantic import Field

from patient_flow_dagster.variables import resource_field


class QualityPolicy(ConfigurableResource):
    """A quarantine rule's check is WARN while the share of the batch it quarantines is at or
    under `error_ratio`, and ERROR (blocking gold) above it: a few bad rows are normal, a flood
    means the source is broken. Events of an encounter whose admission has not arrived wait for
    it; after `admission_grace_seconds` a check warns."""

    error_ratio: float = resource_field(
        "PATIENT_FLOW_QUARANTINE_ERROR_RATIO", float, ge=0.0, le=1.0
    )
    sample_size: int = Field(
        default=5, ge=0, le=50, description="Event ids of failing rows a check shows, at most."
    )
    admission_grace_seconds: float = resource_field("PATIENT_FLOW_ADMISSION_GRACE", float, gt=0)
