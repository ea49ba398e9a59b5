"""The front door: Definitions load for each setting, and the demo command runs the main job."""
import pytest
from dagster import AssetKey

from patient_flow_dagster import cli
from patient_flow_dagster.definitions import build_definitions
from patient_flow_dagster.settings import Settings

LINEAGE = {
    "landing/patient_events": set(),
    "bronze/patient_events": {"landing/patient_events"},
    "silver/patient_events": {"bronze/patient_events"},
    "silver/patient_events_quarantine": {"bronze/patient_events"},
    "gold/dim_patient": {"silver/patient_events"},
    "gold/dim_department": {"silver/patient_events"},
    "gold/fact_admissions": {"silver/patient_events", "gold/dim_patient", "gold/dim_department"},
    "gold/cube_admissions_gender_department": {
        "gold/fact_admissions", "gold/dim_patient", "gold/dim_department"},
    "gold/cube_admissions_department_hospital": {"gold/fact_admissions", "gold/dim_department"},
    "gold/department_census_hourly": {"gold/fact_admissions", "gold/dim_department",
                                     "silver/patient_events"},
    "gold/current_occupancy": {"gold/department_census_hourly"},
    "gold/length_of_stay_stats": {"gold/fact_admissions", "gold/dim_department"},
    "gold/daily_flow": {"gold/fact_admissions", "gold/dim_department"},
}


def test_settings_defaults_and_errors(tmp_path):
    settings = Settings.from_env({"PATIENT_FLOW_LAKE": str(tmp_path)})
    assert settings.env == "local"
    assert settings.landing == f"{tmp_path}/landing/patient_events"
    url = "abfss://landing@acct.dfs.core.windows.net/patient_events"
    assert Settings.from_env({"PATIENT_FLOW_LANDING": url}).landing == url
    with pytest.raises(ValueError, match="PATIENT_FLOW_ENV='staging'"):
        Settings.from_env({"PATIENT_FLOW_ENV": "staging"})


def test_lineage_landing_to_gold(tmp_path):
    defs = build_definitions(Settings.from_env({"PATIENT_FLOW_LAKE": str(tmp_path)}))
    graph = defs.resolve_asset_graph()
    lineage = {
        key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }
    assert lineage == LINEAGE
    job = defs.resolve_job_def("patient_flow")
    assert job.executor_def.name == "in_process"
    assert AssetKey(["gold", "fact_admissions"]) in graph.get_all_asset_keys()


def test_demo_command_runs_the_main_job(tmp_path, monkeypatch, capsys, spark):
    monkeypatch.setenv("PATIENT_FLOW_LAKE", str(tmp_path / "lake"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert cli.main(["demo", "--events", "400", "--seed", "11", "--span-days", "20"]) == 0
    out = capsys.readouterr().out
    assert "SUCCESS" in out
    assert "gold/fact_admissions" in out and "valid_age" in out
    assert f"lake:    {tmp_path / 'lake'}" in out
    fact_rows = spark.read.format("delta").load(str(tmp_path / "lake/gold/fact_admissions")).count()
    silver_rows = spark.read.format("delta").load(str(tmp_path / "lake/silver/patient_events")).count()
    assert fact_rows == silver_rows > 0
