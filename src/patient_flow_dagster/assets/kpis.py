"""Gold KPI cubes: admissions and mean length of stay by gender x department and by
department x hospital, recomputed from the fact (small aggregates, overwritten each run)."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from patient_flow_dagster.assets.common import (
    CUBE_DEPARTMENT_HOSPITAL_KEY,
    CUBE_GENDER_DEPARTMENT_KEY,
    DIM_DEPARTMENT_KEY,
    DIM_PATIENT_KEY,
    FACT_ADMISSIONS_KEY,
    markdown_table,
    table_metadata,
)
from patient_flow_dagster.assets.gold import GOLD
from patient_flow_dagster.resources.lake import (
    CUBE_DEPARTMENT_HOSPITAL,
    CUBE_GENDER_DEPARTMENT,
    DIM_DEPARTMENT,
    DIM_PATIENT,
    FACT_ADMISSIONS,
    DeltaLake,
    Table,
)
from patient_flow_dagster.transforms.cubes import (
    admissions_by_department_hospital,
    admissions_by_gender_department,
)


def _publish(context, lake: DeltaLake, spark, cube, table: Table, dims: list[str]):
    lake.overwrite(cube, table)
    written = lake.read(spark, table)
    rows = [r.asDict() for r in written.orderBy(*dims).collect()]
    columns = [*dims, "num_admissions", "avg_length_of_stay_hours"]
    return MaterializeResult(
        metadata={
            **table_metadata(written, lake.location(table), columns, all_rows=rows),
            "preview": MetadataValue.md(markdown_table(rows[:60], columns)),
            "total_admissions": MetadataValue.int(sum(r["num_admissions"] for r in rows)),
        }
    )


@asset(
    key=CUBE_GENDER_DEPARTMENT_KEY,
    deps=[FACT_ADMISSIONS_KEY, DIM_PATIENT_KEY, DIM_DEPARTMENT_KEY],
    description="Admissions and average length of stay (hours) per gender and department.",
    **GOLD,
)
def cube_admissions_gender_department(context: AssetExecutionContext) -> MaterializeResult:
    spark = context.resources.pyspark.spark_session
    lake: DeltaLake = context.resources.lake
    cube = admissions_by_gender_department(
        lake.read(spark, FACT_ADMISSIONS), lake.read(spark, DIM_PATIENT),
        lake.read(spark, DIM_DEPARTMENT),
    )
    return _publish(context, lake, spark, cube, CUBE_GENDER_DEPARTMENT, ["gender", "department"])


@asset(
    key=CUBE_DEPARTMENT_HOSPITAL_KEY,
    deps=[FACT_ADMISSIONS_KEY, DIM_DEPARTMENT_KEY],
    description="Admissions and average length of stay (hours) per department and hospital.",
    **GOLD,
)
def cube_admissions_department_hospital(context: AssetExecutionContext) -> MaterializeResult:
    spark = context.resources.pyspark.spark_session
    lake: DeltaLake = context.resources.lake
    cube = admissions_by_department_hospital(
        lake.read(spark, FACT_ADMISSIONS), lake.read(spark, DIM_DEPARTMENT)
    )
    return _publish(
        context, lake, spark, cube, CUBE_DEPARTMENT_HOSPITAL, ["department", "hospital_id"]
    )
