"""Every asset check of the lake, gathered from beside the assets they check: what alerting and
the jobs need to know of all of them (their names, which are audit-only)."""

from patient_flow_dagster.assets.bronze_checks import BRONZE_CHECKS
from patient_flow_dagster.assets.daily_checks import DAY_CHECKS
from patient_flow_dagster.assets.gold_checks import DIMENSION_CHECKS, FACT_CHECKS
from patient_flow_dagster.assets.kpi_checks import KPI_CHECKS
from patient_flow_dagster.assets.silver_checks import SILVER_CHECKS

ALL_CHECKS = [
    *BRONZE_CHECKS,
    *SILVER_CHECKS,
    *DIMENSION_CHECKS,
    *FACT_CHECKS,
    *KPI_CHECKS,
    *DAY_CHECKS,
]
AUDIT_ONLY = [check.key for check in ALL_CHECKS if check.audit_only]
