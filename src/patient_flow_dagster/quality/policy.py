"""How strict the quality checks are, as a resource so each environment can set it."""

from dagster import ConfigurableResource
from pydantic import Field


class QualityPolicy(ConfigurableResource):
    """A quarantine rule's check is WARN while the share of the batch it quarantines is at or
    under `error_ratio`, and ERROR (blocking gold) above it: a few bad rows are normal, a flood
    means the source is broken. Events of an encounter whose admission has not arrived wait for
    it; after `admission_grace_seconds` a check warns."""

    error_ratio: float = Field(default=0.10, ge=0.0, le=1.0)
    sample_size: int = Field(default=5, ge=0, le=50)
    admission_grace_seconds: float = Field(default=21_600, gt=0)
