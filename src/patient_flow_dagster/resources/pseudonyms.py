"""The secret key of the analytics zone's pseudonyms (docs/privacy.md).

Every patient and visit identifier that reaches gold is replaced by its keyed hash
(`transforms.keys.pseudonym`, HMAC-SHA-256). Without the key a pseudonym cannot be traced back,
even by hashing every possible medical record number; with the same key, every run and every
environment gives the same pseudonym. The key comes from PATIENT_FLOW_PSEUDONYM_KEY (on
Databricks from the secret scope) and is never logged. Only the embedded default, run on
simulated data, falls back to a built-in demo key, and says so.
"""

from __future__ import annotations

from dagster import ConfigurableResource

from patient_flow_dagster.variables import DECLARED, resource_field

# The declared default: public, so fit only for simulated patients; a deployment sets its own.
DEMO_KEY = DECLARED["PATIENT_FLOW_PSEUDONYM_KEY"].default


class PseudonymKey(ConfigurableResource):
    """The key the gold steps (and their checks) pseudonymize identifiers with."""

    key: str = resource_field("PATIENT_FLOW_PSEUDONYM_KEY")

    def setup_for_execution(self, context) -> None:
        if self.is_demo and context.log:
            context.log.warning(
                "PATIENT_FLOW_PSEUDONYM_KEY is not set: pseudonyms use the built-in demo key, "
                "fit for simulated patients only"
            )

    @property
    def secret(self) -> bytes:
        return self.key.encode()

    @property
    def is_demo(self) -> bool:
        return self.key == DEMO_KEY
