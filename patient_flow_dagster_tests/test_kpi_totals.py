"""KPI tables kept as totals: stored totals plus the totals of the fact's signed changes equal
the totals of the changed fact, for inserts, deletes and updates (both images), a cancelled
encounter included (it leaves every total)."""

from pyspark.sql import functions as F

from patient_flow_dagster.transforms import census, cubes, flow
from patient_flow_dagster.transforms.changes import add_totals, signed_changes

FACT = (
    "encounter_pseudonym string, patient_sk string, department_sk string, hospital_id int, "
    "a string, x string, length_of_stay_hours double, stay_category string, status string"
)


def fact_rows(spark, rows, change_types=None):
    """Fact rows, or with `change_types` a change-feed frame: the rows with Delta's three
    extra columns."""
    if change_types is not None:
        rows = [(*row, kind) for row, kind in zip(rows, change_types, strict=True)]
    schema = FACT + (", _change_type string" if change_types is not None else "")
    df = (
        spark.createDataFrame(rows, schema)
        .withColumn("admission_time_ts", F.to_timestamp("a"))
        .withColumn("discharge_time_ts", F.to_timestamp("x"))
        .drop("a", "x")
    )
    if change_types is not None:
        df = df.withColumn("_commit_version", F.lit(3).cast("long")).withColumn(
            "_commit_timestamp", F.current_timestamp()
        )
    return df


def test_stored_totals_plus_signed_changes_equal_the_changed_fact(spark):
    patients = spark.createDataFrame([("p1", "F"), ("p2", "M")], "patient_sk string, gender string")
    departments = spark.createDataFrame(
        [("d1", "ICU", 1, 10), ("d2", "Surgery", 2, 20)],
        "department_sk string, department string, hospital_id int, bed_capacity int",
    ).withColumn("inpatient", F.lit(True))
    hospitals = spark.createDataFrame([(1, "UTC"), (2, "UTC")], "hospital_id int, time_zone string")
    before = [
        ("e1", "p1", "d1", 1, "2025-03-01 08:00:00", None, None, None, "admitted"),
        (
            "e2",
            "p2",
            "d1",
            1,
            "2025-03-01 09:00:00",
            "2025-03-02 09:00:00",
            24.0,
            "Medium Stay",
            "discharged",
        ),
        (
            "e3",
            "p2",
            "d2",
            2,
            "2025-03-02 09:00:00",
            "2025-03-02 10:30:00",
            1.5,
            "Short Stay",
            "discharged",
        ),
        ("e5", "p2", "d1", 1, "2025-03-02 11:00:00", None, None, None, "admitted"),
    ]
    discharged_e1 = (
        "e1",
        "p1",
        "d1",
        1,
        "2025-03-01 08:00:00",
        "2025-03-03 08:00:00",
        48.0,
        "Long Stay",
        "discharged",
    )
    cancelled_e5 = (*before[3][:-1], "cancelled")
    new_e4 = (
        "e4",
        "p1",
        "d2",
        2,
        "2025-03-03 07:00:00",
        "2025-03-03 09:15:00",
        2.25,
        "Short Stay",
        "discharged",
    )
    # e1 discharged, e3 deleted, e4 inserted, e5 cancelled (kept, counted nowhere)
    after = [discharged_e1, before[1], new_e4, cancelled_e5]
    changes = signed_changes(
        fact_rows(
            spark,
            [before[0], discharged_e1, before[2], new_e4, before[3], cancelled_e5],
            [
                "update_preimage",
                "update_postimage",
                "delete",
                "insert",
                "update_preimage",
                "update_postimage",
            ],
        )
    )

    def cube(fact):
        return cubes.admission_totals(
            cubes.gender_department_rows(census.counted(fact), patients, departments),
            "gender",
            "department",
        )

    kept = cubes.admission_cube(
        add_totals(
            cube(fact_rows(spark, before)),
            cube(changes),
            ["gender", "department"],
            cubes.CUBE_TOTALS,
        )
    )
    recomputed = cubes.admissions_by_gender_department(
        census.counted(fact_rows(spark, after)), patients, departments
    )
    assert sorted(map(tuple, kept.collect())) == sorted(map(tuple, recomputed.collect()))
    by_group = {
        (r.gender, r.department): (r.num_admissions, r.completed_stays, r.avg_length_of_stay_hours)
        for r in kept.collect()
    }
    # ("M", "Surgery") lost its only admission: the group is gone, as in a recomputation.
    assert by_group == {
        ("F", "ICU"): (1, 1, 48.0),
        ("M", "ICU"): (1, 1, 24.0),
        ("F", "Surgery"): (1, 1, 2.25),
    }

    def daily(fact):
        return flow.daily_flow_totals(
            census.admitted_encounters(census.counted(fact), departments, hospitals)
        )

    kept_flow = flow.daily_flow_from_totals(
        add_totals(
            daily(fact_rows(spark, before)),
            daily(changes),
            ["hospital_id", "day"],
            flow.DAILY_FLOW_TOTALS,
        )
    )
    recomputed_flow = flow.daily_flow(
        census.admitted_encounters(census.counted(fact_rows(spark, after)), departments, hospitals)
    )
    assert sorted(map(tuple, kept_flow.collect())) == sorted(map(tuple, recomputed_flow.collect()))
    assert {
        (r.hospital_id, str(r.day)): (r.admissions, r.discharges) for r in kept_flow.collect()
    } == {
        (1, "2025-03-01"): (2, 0),
        (1, "2025-03-02"): (0, 1),
        (1, "2025-03-03"): (0, 1),
        (2, "2025-03-03"): (1, 1),
    }


def test_the_mean_is_exact_in_decimal(spark):
    """103.665 must round up whatever order the hours are added in (a double sum may not)."""
    hours = [("e1", 100.11), ("e2", 107.22)]  # mean 103.665
    rows = spark.createDataFrame(
        [
            (
                e,
                "p1",
                "d1",
                1,
                "2025-03-01 00:00:00",
                "2025-03-05 00:00:00",
                h,
                "Long Stay",
                "discharged",
            )
            for e, h in hours
        ],
        FACT,
    )
    totals = cubes.admission_totals(rows, "department_sk")
    [row] = cubes.admission_cube(totals).collect()
    assert row.avg_length_of_stay_hours == 103.67
    assert str(row.total_length_of_stay_hours) == "207.33"
