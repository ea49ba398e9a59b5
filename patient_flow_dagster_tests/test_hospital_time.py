"""Hospital-local figures on hand-made stays with known answers: the clocks changing in New
York, a half-hour zone, ED boarding, discharges before noon, an empty bed, readmissions on day
30 and day 31, and the calendar."""

from datetime import date, datetime, timezone

from pyspark.sql import functions as F

from patient_flow_dagster.transforms import census, daily_figures, flow

NEW_YORK, KOLKATA = "America/New_York", "Asia/Kolkata"
UNIT = {"Surgery": (True, 10), "ICU": (True, 5), "Emergency": (False, 20)}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def placements(spark, *segments, zone=NEW_YORK):
    """(encounter, segment, department, bed, start, end) in UTC text, in hospital 1 of `zone`."""
    return spark.createDataFrame(
        [(e, n, d, 1, b, UNIT[d][1], UNIT[d][0], zone, s, x) for e, n, d, b, s, x in segments],
        "encounter_pseudonym string, segment int, department string, hospital_id int, "
        "bed_id int, bed_capacity int, inpatient boolean, time_zone string, s string, x string",
    ).select(
        "*",
        F.to_timestamp("s").alias("admission_time_ts"),
        F.to_timestamp("x").alias("discharge_time_ts"),
    )


def by_date(frame, *columns, key="local_date"):
    """Rows by `key`; timestamps as UTC text (collected datetimes are in the process's zone)."""
    frame = frame.select(
        *(
            F.date_format(c, "yyyy-MM-dd HH:mm").alias(c) if c.endswith(("_utc", "_ts")) else c
            for c in frame.columns
        )
    )
    return {str(r[key]): tuple(r[c] for c in columns) for r in frame.collect()}


def test_midnight_census_across_both_clock_changes_in_new_york(spark):
    rows = placements(
        spark,
        # In 22:00 EST on Sat 7 March, out 00:30 EDT on Mon 9 March (the 23-hour day between).
        ("spring", 1, "Surgery", 1, "2026-03-08 03:00:00", "2026-03-09 04:30:00"),
        # In 23:00 EDT on Sat 31 October, out 23:30 EST on Sun 1 November (the 25-hour day).
        ("autumn", 1, "Surgery", 2, "2026-11-01 03:00:00", "2026-11-02 04:30:00"),
    )
    as_of = utc("2026-11-05 12:00:00")
    midnights = daily_figures.midnight_census(rows, as_of, None).cache()
    figures = by_date(midnights, "present", "midnight_utc")
    # The midnight ending 7 March is 05:00 UTC (EST), the one ending 8 March 04:00 UTC (EDT).
    assert figures["2026-03-07"] == (1, "2026-03-08 05:00")
    assert figures["2026-03-08"] == (1, "2026-03-09 04:00")
    assert figures["2026-03-09"][0] == 0
    # 31 October ends at 04:00 UTC (EDT): present. 1 November ends at 05:00 UTC (EST): the
    # patient left at 04:30 UTC, 23:30 local, before it.
    assert figures["2026-10-31"] == (1, "2026-11-01 04:00")
    assert figures["2026-11-01"] == (0, "2026-11-02 05:00")
    # Every day from the unit's first patient's date through the last midnight before as_of.
    assert midnights.count() == (date(2026, 11, 4) - date(2026, 3, 7)).days + 1
    assert max(figures) == "2026-11-04"
    months = daily_figures.patient_days(rows, as_of, None)
    assert by_date(months, "patient_days", "admissions", "discharges", key="local_month") == {
        "2026-03-01": (2, 1, 1),
        "2026-10-01": (1, 1, 0),
        "2026-11-01": (0, 0, 1),
    }
    # Incremental: from a date on, exactly the full computation's rows from that date.
    since = date(2026, 10, 30)
    tail = daily_figures.midnight_census(rows, as_of, since)
    assert sorted(tail.collect()) == sorted(
        midnights.filter(F.col("local_date") >= since).collect()
    )
    midnights.unpersist()


def test_hourly_census_has_23_and_25_local_hours_on_the_days_the_clocks_change(spark):
    rows = placements(
        spark,
        ("long stay", 1, "Surgery", 1, "2026-03-07 12:00:00", "2026-11-03 12:00:00"),
    )
    hourly = census.hourly_census(rows, utc("2026-11-03 00:00:00"))
    hours = {
        str(r.day): r.hours
        for r in hourly.groupBy(F.to_date("local_hour_start").alias("day"))
        .agg(F.count(F.lit(1)).alias("hours"))
        .collect()
    }
    assert (hours["2026-03-08"], hours["2026-03-09"], hours["2026-11-01"]) == (23, 24, 25)


def test_a_half_hour_zone_has_its_own_midnights(spark):
    rows = placements(
        spark,
        # In 23:30 IST on 10 June (18:00 UTC), out 00:15 IST on 12 June (18:45 UTC on the 11th).
        ("kolkata", 1, "ICU", 4, "2026-06-10 18:00:00", "2026-06-11 18:45:00"),
        zone=KOLKATA,
    )
    as_of = utc("2026-06-13 00:00:00")
    figures = by_date(daily_figures.midnight_census(rows, as_of, None), "present", "midnight_utc")
    assert figures == {
        "2026-06-10": (1, "2026-06-10 18:30"),
        "2026-06-11": (1, "2026-06-11 18:30"),
        "2026-06-12": (0, "2026-06-12 18:30"),
    }
    hourly = census.hourly_census(rows, utc("2026-06-10 19:10:00"))
    assert {str(r.local_hour_start) for r in hourly.collect()} == {
        "2026-06-10 23:30:00",
        "2026-06-11 00:30:00",
    }
    days = flow.daily_flow(rows.withColumnRenamed("encounter_pseudonym", "e"))
    assert by_date(days, "admissions", "discharges", key="day") == {
        "2026-06-10": (1, 0),
        "2026-06-12": (0, 1),
    }


def test_ed_boarding_of_five_hours_forty(spark):
    rows = placements(
        spark,
        # Emergency 08:00 EDT, ICU from 13:40 EDT: boarded 5 h 40 min.
        ("boarded", 1, "Emergency", 1, "2026-06-10 12:00:00", "2026-06-10 17:40:00"),
        ("boarded", 2, "ICU", 2, "2026-06-10 17:40:00", None),
        # Emergency 09:00, a second emergency bed, Surgery from 11:00: 2 hours.
        ("short", 1, "Emergency", 3, "2026-06-10 13:00:00", "2026-06-10 14:00:00"),
        ("short", 2, "Emergency", 4, "2026-06-10 14:00:00", "2026-06-10 15:00:00"),
        ("short", 3, "Surgery", 5, "2026-06-10 15:00:00", "2026-06-11 15:00:00"),
        # Sent home from Emergency, and admitted straight to Surgery: neither boarded.
        ("home", 1, "Emergency", 6, "2026-06-10 13:00:00", "2026-06-10 16:00:00"),
        ("direct", 1, "Surgery", 7, "2026-06-10 13:00:00", None),
    )
    boarding = daily_figures.ed_boarding(rows, None)
    assert by_date(
        boarding, "boarding_minutes", "inpatient_department", key="encounter_pseudonym"
    ) == {
        "boarded": (340.0, "ICU"),
        "short": (120.0, "Surgery"),
    }
    [day] = daily_figures.ed_boarding_daily(boarding).collect()
    assert (str(day.local_date), day.boarded, day.median_minutes, day.p90_minutes) == (
        "2026-06-10",
        2,
        230.0,
        318.0,
    )
    assert (day.max_minutes, day.over_4h) == (340.0, 1)


def test_discharges_before_noon_on_the_hospitals_clock(spark):
    rows = placements(
        spark,
        ("a", 1, "Surgery", 1, "2026-06-09 12:00:00", "2026-06-10 15:59:00"),  # 11:59 EDT
        ("b", 1, "Surgery", 2, "2026-06-09 12:00:00", "2026-06-10 16:00:00"),  # 12:00 EDT
        ("c", 1, "Surgery", 3, "2026-06-09 12:00:00", "2026-06-10 14:00:00"),
        ("c", 2, "ICU", 1, "2026-06-10 14:00:00", "2026-06-11 03:30:00"),  # 23:30 EDT, 10 June
    )
    timing = daily_figures.discharge_timing(rows, None)
    assert {
        (r.department, str(r.local_date)): (r.discharges, r.before_noon, r.share_before_noon)
        for r in timing.collect()
    } == {("Surgery", "2026-06-10"): (2, 1, 0.5), ("ICU", "2026-06-10"): (1, 0, 0.0)}


def test_a_bed_empty_three_hours_between_two_patients(spark):
    rows = placements(
        spark,
        ("first", 1, "Surgery", 7, "2026-06-10 08:00:00", "2026-06-10 14:00:00"),
        ("next", 1, "Surgery", 7, "2026-06-10 17:00:00", "2026-06-11 10:00:00"),
        ("then", 1, "Surgery", 7, "2026-06-11 11:00:00", None),
        # A move between two beds of one patient, and a bed that had one patient only.
        ("mover", 1, "ICU", 1, "2026-06-10 08:00:00", "2026-06-10 09:00:00"),
        ("mover", 2, "ICU", 1, "2026-06-10 09:30:00", None),
        ("alone", 1, "ICU", 2, "2026-06-10 08:00:00", None),
    )
    turnover = daily_figures.bed_turnover(rows, None)
    assert {
        (r.department, str(r.local_date)): (
            r.turnovers,
            r.mean_empty_minutes,
            r.median_empty_minutes,
        )
        for r in turnover.collect()
    } == {("Surgery", "2026-06-10"): (1, 180.0, 180.0), ("Surgery", "2026-06-11"): (1, 60.0, 60.0)}


def encounters(spark, *rows):
    """(encounter, patient, admitted, discharged) in UTC text, in hospital 1 (New York)."""
    return spark.createDataFrame(
        [(e, p, 1, NEW_YORK, a, x) for e, p, a, x in rows],
        "encounter_pseudonym string, patient_pseudonym string, hospital_id int, "
        "time_zone string, a string, x string",
    ).select(
        "*",
        F.to_timestamp("a").alias("admission_time_ts"),
        F.to_timestamp("x").alias("discharge_time_ts"),
    )


def test_readmission_on_day_30_counts_and_on_day_31_does_not(spark):
    rows = encounters(
        spark,
        # Discharged 10:00 EST 1 January; back 09:00 EST on 31 January: day 30.
        ("p1", "P", "2025-12-28 15:00:00", "2026-01-01 15:00:00"),
        ("p2", "P", "2026-01-31 14:00:00", None),
        # Discharged 22:00 EST 1 January (03:00 UTC on the 2nd); back 1 February: day 31.
        ("q1", "Q", "2025-12-30 15:00:00", "2026-01-02 03:00:00"),
        ("q2", "Q", "2026-02-01 14:00:00", None),
        # Discharged and never back.
        ("r1", "R", "2026-01-05 15:00:00", "2026-01-06 15:00:00"),
    )
    readmitted = daily_figures.readmissions(rows, None).cache()
    assert by_date(
        readmitted, "local_date", "days_to_readmission", "readmitted_30d", key="encounter_pseudonym"
    ) == {
        "p1": (date(2026, 1, 1), 30, True),
        "q1": (date(2026, 1, 1), 31, False),
        "r1": (date(2026, 1, 6), None, False),
    }
    [january] = daily_figures.readmission_rates(readmitted).collect()
    assert (january.discharges, january.readmissions_30d, january.readmission_rate) == (
        3,
        1,
        0.3333,
    )
    assert january.follow_up_complete_on == date(2026, 3, 2)
    readmitted.unpersist()


def test_calendar_with_a_fiscal_year_from_july(spark):
    days = {
        str(r.local_date): r
        for r in daily_figures.calendar(spark, date(2026, 6, 29), date(2027, 1, 4), 7).collect()
    }
    assert len(days) == 190
    june, july = days["2026-06-30"], days["2026-07-01"]
    assert (june.fiscal_year, june.fiscal_quarter, july.fiscal_year, july.fiscal_quarter) == (
        2026,
        4,
        2027,
        1,
    )
    monday = days["2026-12-07"]
    assert (monday.day_of_week, monday.day_name, monday.is_weekend) == (1, "Monday", False)
    assert days["2026-12-06"].is_weekend and days["2026-12-06"].day_of_week == 7
    new_year = days["2027-01-01"]  # a Friday in the last ISO week of 2026
    assert (new_year.iso_week, new_year.iso_year, new_year.quarter, new_year.year) == (
        53,
        2026,
        1,
        2027,
    )
    assert (new_year.fiscal_year, new_year.fiscal_quarter) == (2027, 3)
    calendar_year = daily_figures.calendar(spark, date(2026, 12, 31), date(2026, 12, 31), 1)
    assert calendar_year.first().fiscal_year == 2026
