"""Patient-flow KPIs: hand-built stays with known answers, and the assets on seeded data."""

import base64
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from pyspark.sql import functions as F

from patient_flow_dagster.assets.daily import DAY_KPIS, DayInputs
from patient_flow_dagster.assets.kpis import FACT_KPIS, FactRows, gold_kpis
from patient_flow_dagster.definitions import LAKE_ASSETS
from patient_flow_dagster.ingestion.landing_writer import write_events
from patient_flow_dagster.ingestion.simulator import DIRTY_KINDS, simulate
from patient_flow_dagster.model import tables as t
from patient_flow_dagster.transforms import census, flow

CLEAN = {kind: 0.0 for kind in DIRTY_KINDS}


def stays_frame(spark, *stays):
    """(event_id, department, hospital, capacity, admitted, discharged) in UTC text."""
    rows = spark.createDataFrame(
        [(e, d, h, c, a, x) for e, d, h, c, a, x in stays],
        "event_id string, department string, hospital_id int, bed_capacity int, a string, x string",
    )
    hours = (F.unix_seconds(F.to_timestamp("x")) - F.unix_seconds(F.to_timestamp("a"))) / 3600
    return rows.select(
        "event_id",
        "department",
        "hospital_id",
        "bed_capacity",
        F.to_timestamp("a").alias("admission_time_ts"),
        F.to_timestamp("x").alias("discharge_time_ts"),
        F.round(hours, 2).alias("length_of_stay_hours"),
        F.lit(None).cast("string").alias("stay_category"),
        F.lit("UTC").alias("time_zone"),
    )


def png_of(markdown: str) -> bytes:
    """The PNG image embedded in a Markdown metadata value."""
    assert markdown.startswith("![") and "](data:image/png;base64," in markdown, markdown[:80]
    return base64.b64decode(markdown.split("base64,", 1)[1].rstrip(")"))


def materialized(result, key):
    """The materializations of one asset of the KPI step in a run's result."""
    return [m for m in result.asset_materializations_for_node("gold_kpis") if m.asset_key == key]


def census_by_hour(hourly):
    return {
        r.hour: (r.admissions, r.discharges, r.present_at_end, r.occupancy)
        for r in hourly.select(
            F.date_format("hour_start", "HH:mm").alias("hour"),
            "admissions",
            "discharges",
            "present_at_end",
            "occupancy",
        ).collect()
    }


AS_OF = datetime(2025, 3, 1, 12, 30, tzinfo=timezone.utc)


def test_a_stay_is_present_at_the_end_of_each_hour_it_spans(spark):
    stays = stays_frame(spark, ("s1", "ICU", 1, 10, "2025-03-01 09:30:00", "2025-03-01 11:10:00"))
    assert census_by_hour(census.hourly_census(stays, AS_OF)) == {
        "09:00": (1, 0, 1, 0.1),
        "10:00": (0, 0, 1, 0.1),
        "11:00": (0, 1, 0, 0.0),
        "12:00": (0, 0, 0, 0.0),
    }


def test_occupancy_is_present_over_capacity_and_still_admitted_stays_count(spark):
    stays = stays_frame(
        spark,
        ("s1", "ICU", 1, 10, "2025-03-01 08:00:00", None),
        ("s2", "ICU", 1, 10, "2025-03-01 08:15:00", None),
        ("s3", "ICU", 1, 10, "2025-03-01 09:59:59", "2025-03-01 12:00:00"),
        ("s4", "ICU", 1, 10, "2025-03-01 10:00:00", "2025-03-01 11:00:00"),  # boundaries
    )
    hours = census_by_hour(census.hourly_census(stays, AS_OF))
    assert hours["09:00"] == (1, 0, 3, 0.3)
    assert hours["10:00"] == (1, 0, 4, 0.4)
    assert hours["11:00"] == (0, 1, 3, 0.3)
    assert hours["12:00"] == (0, 1, 2, 0.2)
    snapshot = {
        (r.scope, r.department): (r.present, r.occupancy)
        for r in census.current_occupancy(census.hourly_census(stays, AS_OF)).collect()
    }
    assert snapshot == {("department", "ICU"): (2, 0.2), ("hospital", None): (2, 0.2)}


def test_occupancy_trend_pools_the_beds_of_a_department_across_hospitals(spark):
    stays = stays_frame(
        spark,
        ("s1", "ICU", 1, 10, "2025-03-01 08:00:00", None),
        ("s2", "ICU", 2, 30, "2025-03-01 10:30:00", None),  # a unit whose first stay is later
        ("s3", "Surgery", 1, 4, "2025-03-01 09:30:00", "2025-03-01 11:30:00"),
    )
    hourly = census.hourly_census(stays, AS_OF)
    since = datetime(2025, 3, 1, 9, tzinfo=timezone.utc)
    trend = {
        (r.department, r.hour_end[11:16]): r.occupancy
        for r in census.occupancy_trend(hourly, since).collect()
    }
    assert trend == {
        ("ICU", "10:00"): 1 / 40,
        ("ICU", "11:00"): 2 / 40,
        ("ICU", "12:00"): 2 / 40,
        ("ICU", "13:00"): 2 / 40,
        ("Surgery", "10:00"): 1 / 4,
        ("Surgery", "11:00"): 1 / 4,
        ("Surgery", "12:00"): 0.0,
        ("Surgery", "13:00"): 0.0,
    }


def test_length_of_stay_statistics_on_a_known_list(spark):
    stays = stays_frame(
        spark,
        *[
            (f"s{h}", "Surgery", 2, 20, "2025-03-01 00:00:00", f"2025-03-01 {h:02d}:00:00")
            for h in range(1, 11)
        ],
        ("open", "Surgery", 2, 20, "2025-03-01 00:00:00", None),
    )
    [row] = flow.length_of_stay_stats(stays).collect()
    assert row.completed_stays == 10
    assert (row.mean_hours, row.median_hours, row.p90_hours, row.max_hours) == (5.5, 5.5, 9.1, 10.0)


def test_daily_flow_counts_the_days_of_the_hospitals_zone(spark):
    stays = stays_frame(
        spark,
        ("s1", "ICU", 1, 10, "2025-03-01 23:30:00", "2025-03-02 00:30:00"),
        ("s2", "ICU", 1, 10, "2025-03-01 10:00:00", None),
    )
    rows = {
        str(r.day): (r.admissions, r.discharges, r.net_change)
        for r in flow.daily_flow(stays).collect()
    }
    assert rows == {"2025-03-01": (2, 0, 2), "2025-03-02": (0, 1, -1)}


def test_flow_conservation_on_seeded_data(spark):
    now = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
    sim = simulate(3_000, seed=9, now=now, span_days=20, dirty_rates=CLEAN)
    stays = stays_frame(
        spark,
        *[
            (
                e["event_id"],
                e["department"],
                e["hospital_id"],
                25,
                e["admission_time"][:26].replace("T", " "),
                e["discharge_time"][:26].replace("T", " ") if e["discharge_time"] else None,
            )
            for e in sim.events
        ],
    )
    hourly = census.hourly_census(stays, now).cache()
    assert census.conservation_breaks(hourly).count() == 0
    assert hourly.filter("present_at_end < 0").count() == 0
    assert hourly.agg(F.sum("admissions")).first()[0] == 3_000
    for hours_back in (1, 50, 300):
        instant = now - timedelta(hours=hours_back)
        direct = {
            (r.hospital_id, r.department): r.present
            for r in census.present_at(stays, instant).collect()
        }
        at_hour = hourly.filter(F.col("hour_end") == census.utc_literal(instant))
        from_census = {
            (r.hospital_id, r.department): r.present_at_end
            for r in at_hour.collect()
            if r.present_at_end
        }
        assert from_census == direct
    # Incremental: the census from an hour on, started from the patients present at that hour,
    # is exactly the full census's tail.
    since = now - timedelta(hours=100)
    tail = census.hourly_census(stays, now, since)
    full_tail = hourly.filter(F.col("hour_start") >= census.utc_literal(since))
    assert tail.count() == full_tail.count() > 0
    assert tail.exceptAll(full_tail).count() == 0
    hourly.unpersist()


@pytest.fixture(scope="module")
def kpi_lake(tmp_path_factory, spark):
    from patient_flow_dagster_tests.conftest import Lakehouse

    house = Lakehouse(tmp_path_factory.mktemp("kpis"), spark)
    # Four hours back, so a later batch can come after a quiet spell and still be in the past.
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=4)
    write_events(simulate(600, seed=61, now=now, span_days=10).events, house.landing_dir)
    as_of = {"ops": {"gold_kpis": {"config": {"as_of": now.isoformat()}}}}
    return house, now, as_of


def test_kpi_assets_and_checks_on_seeded_data(kpi_lake):
    house, now, as_of = kpi_lake
    first = house.materialize(run_config=as_of)
    assert first.success
    checks = {e.check_name: e for e in first.get_asset_check_evaluations()}
    for name in (
        "census_not_negative",
        "census_flow_conservation",
        "daily_flow_matches_fact",
        "length_of_stay_stats_consistent",
        "current_occupancy_consistent",
        "gender_department_cube_matches_fact",
        "department_hospital_cube_matches_fact",
        "census_matches_movements",
        "midnight_census_matches_movements",
        "local_dates_in_calendar",
        "patient_days_match_midnight_census",
        "ed_boarding_daily_matches_encounters",
        "discharge_timing_consistent",
        "discharge_timing_matches_fact",
        "bed_turnover_not_negative",
        "readmission_rates_match_readmissions",
    ):
        assert checks[name].passed, (name, checks[name].metadata)
    # 48 complete hours x the units with patients: compared against a direct count.
    assert checks["census_matches_movements"].metadata["evaluated"].value >= 48
    census_meta = {
        m.asset_key.to_user_string(): m.metadata
        for m in first.get_asset_materialization_events()
        and [
            e.step_materialization_data.materialization
            for e in first.get_asset_materialization_events()
        ]
    }
    assert "| hospital_id |" in census_meta["gold/department_census_hourly"]["latest_hour"].value
    assert (
        "| hospital_id |" in census_meta["gold/current_occupancy"]["occupancy_per_hospital"].value
    )
    chart = census_meta["gold/department_census_hourly"]["occupancy_trend"].value
    assert png_of(chart).startswith(b"\x89PNG") and len(png_of(chart)) > 5_000

    # Same data, same clock: nothing changes.
    before = {
        (r.hospital_id, r.department, r.hour_start): tuple(r)
        for r in house.table(t.DEPARTMENT_CENSUS_HOURLY).collect()
    }
    again = house.materialize(
        [gold_kpis],
        run_config=as_of,
        checks=False,
        selection=[t.DEPARTMENT_CENSUS_HOURLY.key, t.CURRENT_OCCUPANCY.key],
    )
    assert {m.asset_key for m in again.asset_materializations_for_node("gold_kpis")} == {
        t.DEPARTMENT_CENSUS_HOURLY.key,
        t.CURRENT_OCCUPANCY.key,
    }
    [census_run] = materialized(again, t.DEPARTMENT_CENSUS_HOURLY.key)
    assert (
        census_run.metadata["rows_updated"].value,
        census_run.metadata["rows_inserted"].value,
        census_run.metadata["rows_deleted"].value,
    ) == (0, 0, 0)

    # The KPIs from the fact are one step that can be subset: selecting daily_flow touches
    # only it, and with the fact unchanged it writes nothing (no new version anywhere).
    versions = {kpi.table: house.lake.version(house.spark, kpi.table) for kpi in FACT_KPIS.values()}
    alone = house.materialize([gold_kpis], selection=[t.DAILY_FLOW.key], checks=False)
    [daily] = alone.asset_materializations_for_node("gold_kpis")
    assert daily.asset_key == t.DAILY_FLOW.key
    assert daily.metadata["update"].value == "unchanged"
    assert daily.metadata["dagster/row_count"].value == house.count(t.DAILY_FLOW) > 0
    assert {table: house.lake.version(house.spark, table) for table in versions} == versions

    # A new batch of stays in the last 6 hours rewrites only the hours from its first admission.
    recent = simulate(40, seed=62, now=now, span_days=0.25, dirty_rates=CLEAN)
    write_events(recent.events, house.landing_dir)
    third = house.materialize(LAKE_ASSETS, run_config=as_of)
    assert third.success
    first_new_hour = now - timedelta(hours=6)
    after = {
        (r.hospital_id, r.department, r.hour_start): tuple(r)
        for r in house.table(t.DEPARTMENT_CENSUS_HOURLY).collect()
    }
    changed = [key for key, row in after.items() if before.get(key) != row]
    assert changed
    cutoff = first_new_hour.astimezone().replace(tzinfo=None) - timedelta(hours=1)
    assert all(hour >= cutoff for _, _, hour in changed)
    [census_run] = materialized(third, t.DEPARTMENT_CENSUS_HOURLY.key)
    assert (
        census_run.metadata["rows_updated"].value + census_run.metadata["rows_inserted"].value > 0
    )
    assert census_run.metadata["rows_updated"].value < len(before) / 10

    # The cubes and daily flow added the fact's changes (its change data feed) to their totals,
    # and hold exactly what a recomputation from the whole fact gives; the percentiles of
    # length_of_stay_stats were recomputed.
    updates = {
        m.asset_key: m.metadata["update"].value
        for m in third.asset_materializations_for_node("gold_kpis")
        if m.asset_key in FACT_KPIS
    }
    assert updates == {
        **{key: "changes added" for key in FACT_KPIS},
        t.LENGTH_OF_STAY_STATS.key: "recomputed",
    }
    whole_fact = FactRows(house.spark, house.lake, house.table(t.FACT_ADMISSIONS))
    for kpi in FACT_KPIS.values():
        stored, recomputed = house.table(kpi.table), kpi.compute(whole_fact)
        assert stored.count() == recomputed.count() > 0
        assert stored.exceptAll(recomputed.select(*stored.columns)).count() == 0, kpi.table

    # The day's figures rewrote their rows from the first date the new stays touch, and hold
    # exactly what a computation from the whole fact gives.
    day_updates = {
        m.asset_key: m.metadata["update"].value
        for m in third.asset_materializations_for_node("gold_kpis")
        if m.asset_key in DAY_KPIS
    }
    assert day_updates == {key: "rewritten" for key in DAY_KPIS}
    inputs = DayInputs(whole_fact, now)
    for kpi in DAY_KPIS.values():
        stored, recomputed = house.table(kpi.table), kpi.compute(inputs, None)
        assert stored.count() == recomputed.count(), kpi.table
        assert stored.exceptAll(recomputed.select(*stored.columns)).count() == 0, kpi.table
    assert house.count(t.MIDNIGHT_CENSUS) > 0 and house.count(t.BED_TURNOVER) > 0


def test_census_has_no_gap_after_a_quiet_spell(kpi_lake):
    """Events that start two hours after the latest stored hour: the hours in between are
    computed too (the clock moved through them), not only those the new events touch."""
    house, now, _ = kpi_lake
    later = now + timedelta(hours=3)
    write_events(
        simulate(30, seed=63, now=later, span_days=1 / 24, dirty_rates=CLEAN).events,
        house.landing_dir,
    )
    as_of = {"ops": {"gold_kpis": {"config": {"as_of": later.isoformat()}}}}
    result = house.materialize(LAKE_ASSETS, run_config=as_of)
    assert result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["census_flow_conservation"].passed
    units = (
        house.table(t.DEPARTMENT_CENSUS_HOURLY)
        .groupBy("hospital_id", "department")
        .agg(
            F.count(F.lit(1)).alias("hours"),
            (
                (F.unix_seconds(F.max("hour_start")) - F.unix_seconds(F.min("hour_start"))) / 3600
                + 1
            ).alias("span"),
            F.date_format(F.max("hour_start"), "yyyy-MM-dd HH:mm").alias("last"),
        )
        .collect()
    )
    assert units and all(u.hours == u.span for u in units)
    assert {u.last for u in units} == {later.strftime("%Y-%m-%d %H:00")}


def test_the_midnight_census_follows_the_clock(kpi_lake):
    """No new events, two days later: the clock's run adds each hospital's new midnights, each
    in its own zone, and a second run at the same clock changes nothing."""
    house, now, _ = kpi_lake
    later = now + timedelta(days=2)
    selection = [t.MIDNIGHT_CENSUS.key, t.PATIENT_DAYS.key]
    as_of = {"ops": {"gold_kpis": {"config": {"as_of": later.isoformat()}}}}
    result = house.materialize([gold_kpis], run_config=as_of, checks=False, selection=selection)
    assert {m.asset_key: m.metadata["update"].value for m in materialized_all(result)} == {
        key: "rewritten" for key in selection
    }
    zones = {r.hospital_id: r.time_zone for r in house.table(t.DIM_HOSPITAL).collect()}
    last = {
        r.hospital_id: r.last
        for r in house.table(t.MIDNIGHT_CENSUS)
        .groupBy("hospital_id")
        .agg(F.max("local_date").alias("last"))
        .collect()
    }
    assert last == {
        h: (later.astimezone(ZoneInfo(zones[h])).date() - timedelta(days=1)) for h in last
    }
    inputs = DayInputs(FactRows(house.spark, house.lake, house.table(t.FACT_ADMISSIONS)), later)
    for key in selection:
        kpi = DAY_KPIS[key]
        assert house.table(kpi.table).exceptAll(kpi.compute(inputs, None)).count() == 0
        assert house.count(kpi.table) == kpi.compute(inputs, None).count()
    versions = [house.lake.version(house.spark, DAY_KPIS[key].table) for key in selection]
    again = house.materialize([gold_kpis], run_config=as_of, checks=False, selection=selection)
    assert {m.metadata["update"].value for m in materialized_all(again)} == {"unchanged"}
    assert [house.lake.version(house.spark, DAY_KPIS[key].table) for key in selection] == versions


def materialized_all(result):
    return result.asset_materializations_for_node("gold_kpis")


def test_a_missing_hour_breaks_conservation(spark):
    """Present counts that add up row to row, but 02:00 is missing: one break, at 03:00."""
    hourly = spark.createDataFrame(
        [
            (1, "ICU", f"2025-03-01 0{h}:00:00", a, d, p)
            for h, a, d, p in [(0, 2, 0, 2), (1, 1, 1, 2), (3, 0, 1, 1)]
        ],
        "hospital_id int, department string, hour string, admissions long, discharges long, "
        "present_at_end long",
    ).withColumn("hour_start", F.to_timestamp("hour"))
    breaks = census.conservation_breaks(hourly).select("hour").collect()
    assert [r.hour for r in breaks] == ["2025-03-01 03:00:00"]


def test_kpis_recompute_when_the_fact_changes_are_not_recorded(kpi_lake):
    """A fact whose change data feed was off for a while (an older lake, or a user's ALTER):
    its changes since the KPI tables' version cannot be read, so the tables are recomputed from
    the whole fact (never left stale); the fact step turns the feed back on, and the next run
    adds changes again."""
    house, now, _ = kpi_lake
    house.spark.sql(
        f"ALTER TABLE delta.`{house.lake.location(t.FACT_ADMISSIONS)}` "
        "SET TBLPROPERTIES ('delta.enableChangeDataFeed' = 'false')"
    )
    updates = []
    for seed in (64, 65):
        write_events(
            simulate(30, seed=seed, now=now, span_days=0.2, dirty_rates=CLEAN).events,
            house.landing_dir,
        )
        result = house.materialize(LAKE_ASSETS, checks=False)
        assert result.success
        updates.append(
            {
                m.asset_key: (m.metadata["update"].value, m.metadata["update_reason"].value)
                for m in result.asset_materializations_for_node("gold_kpis")
                if m.asset_key in FACT_KPIS
            }
        )
    how, reason = updates[0][t.DAILY_FLOW.key]
    assert how == "recomputed" and "not readable" in reason, reason
    assert updates[1][t.DAILY_FLOW.key][0] == "changes added"
    whole_fact = FactRows(house.spark, house.lake, house.table(t.FACT_ADMISSIONS))
    for kpi in FACT_KPIS.values():
        recomputed = kpi.compute(whole_fact)
        assert house.table(kpi.table).exceptAll(recomputed).count() == 0, kpi.table
        assert house.count(kpi.table) == recomputed.count()
