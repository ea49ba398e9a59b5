"""Who may read what, declared once (docs/privacy.md): the reader groups, the layers each reads,
and the row filter and column mask of the analytics zone. Terraform grants these on Unity
Catalog (infra/terraform/access.tf, held equal by a test); the lake applies the filter and the
mask to the tables it creates there (`resources/lake.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from patient_flow_dagster.model.tables import ANALYTICS, LAKE_TABLES, ZONES, Table


@dataclass(frozen=True)
class Readers:
    group: str  # the Unity Catalog (account) group
    layers: tuple[str, ...]  # the schemas it may read
    sees_identifying: bool  # exact ages (the column mask lets it through)


ANALYSTS = Readers("patient-flow-analysts", ("gold", "quality"), sees_identifying=False)
CARE_COORDINATION = Readers(
    "patient-flow-care-coordination", ("gold", "quality", "identity"), sees_identifying=True
)
ENGINEERS = Readers("patient-flow-engineers", tuple(ZONES), sees_identifying=True)
# The principal the pipeline runs as (Dagster's service principal) is the only member: it writes
# every layer, and the filter and the mask must hide nothing from it (a MERGE reads its target).
PIPELINE = Readers("patient-flow-pipeline", tuple(ZONES), sees_identifying=True)
READERS = (ANALYSTS, CARE_COORDINATION, ENGINEERS, PIPELINE)

# An analyst group of one hospital: reads the analytics zone, and of each table there only its
# hospital's rows (the row filter); named by the hospital's number.
HOSPITAL_ANALYSTS = "patient-flow-hospital-{hospital_id}-analysts"

# The functions the row filter and the column mask call, in the gold schema.
ROW_FILTER = "hospital_rows"
AGE_MASK = "age_band"


def row_filter_sql(catalog: str) -> str:
    """Every reader group but a hospital's sees all rows; a hospital's analysts their own."""
    everyone = " OR ".join(f"is_account_group_member('{r.group}')" for r in READERS)
    hospital = HOSPITAL_ANALYSTS.replace("{hospital_id}", "', CAST(hospital_id AS STRING), '")
    return (
        f"CREATE FUNCTION IF NOT EXISTS `{catalog}`.gold.{ROW_FILTER}(hospital_id INT) "
        f"RETURN {everyone} OR is_account_group_member(concat('{hospital}'))"
    )


def age_mask_sql(catalog: str) -> str:
    """Exact age for the groups that may identify; the decade for everyone else (an age is
    identifying in combination with a department and a day)."""
    exact = " OR ".join(
        f"is_account_group_member('{r.group}')" for r in READERS if r.sees_identifying
    )
    return (
        f"CREATE FUNCTION IF NOT EXISTS `{catalog}`.gold.{AGE_MASK}(age INT) "
        f"RETURN CASE WHEN {exact} THEN age ELSE CAST(floor(age / 10) * 10 AS INT) END"
    )


def guarded(table: Table) -> bool:
    return table.zone == ANALYTICS and table.layer == "gold"


def policies(catalog: str, table: Table) -> list[str]:
    """The statements that put the row filter and the age mask on `table` (a gold table of a
    Unity Catalog catalog): a filter where it has hospital_id, a mask on age."""
    if not guarded(table):
        return []
    name = f"`{catalog}`.`{table.layer}`.`{table.name}`"
    statements = []
    if "hospital_id" in table.column_names:
        statements.append(
            f"ALTER TABLE {name} SET ROW FILTER `{catalog}`.gold.{ROW_FILTER} ON (hospital_id)"
        )
    if "age" in table.column_names:
        statements.append(
            f"ALTER TABLE {name} ALTER COLUMN age SET MASK `{catalog}`.gold.{AGE_MASK}"
        )
    return statements


def statements(catalog: str, table: Table) -> list[str]:
    """What a new gold table of the catalog gets: the two functions (once per catalog; created
    if missing) and its policies."""
    guards = policies(catalog, table)
    return [row_filter_sql(catalog), age_mask_sql(catalog), *guards] if guards else []


GUARDED_TABLES = tuple(table for table in LAKE_TABLES if policies("c", table))
