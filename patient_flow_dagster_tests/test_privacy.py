"""The analytics zone holds no patient or visit identifier: gold keys patients and encounters by
keyed pseudonyms (HMAC-SHA-256), the identity maps behind them are restricted, a deployment
without its own key stops, and rotating the key re-keys gold (docs/privacy.md)."""

import hashlib
import hmac
import re
from pathlib import Path

import hcl2
import pytest
from dagster import DagsterInstance, EnvVar, asset, materialize
from pyspark.sql import functions as F

from patient_flow_dagster.definitions import FULL_REFRESH_STEPS
from patient_flow_dagster.environments import resources_for
from patient_flow_dagster.ingestion.landing_writer import write_events
from patient_flow_dagster.ingestion.simulator import simulate
from patient_flow_dagster.model import access
from patient_flow_dagster.model import tables as t
from patient_flow_dagster.resources.pseudonyms import DEMO_KEY
from patient_flow_dagster.settings import Settings, SettingsError
from patient_flow_dagster.transforms.keys import hmac_sha256_hex, pseudonym, pseudonym_of
from patient_flow_dagster_tests.conftest import SUITE_KEY, Lakehouse, recent_now
from patient_flow_dagster_tests.leaks import scan_analytics

TERRAFORM = Path(__file__).resolve().parents[1] / "infra" / "terraform"
IDENTIFYING = {"patient_id", "encounter_id", "name", "birth_date", "source_file", "rescued_data"}


def test_hmac_in_spark_is_rfc_4231_hmac_sha256(spark):
    """RFC 4231's test cases 1, 2 and 6 (a key longer than the block), computed by Spark's own
    functions, and Python's hmac for a pseudonym."""
    cases = [
        (
            b"\x0b" * 20,
            b"Hi There",
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        (
            b"Jefe",
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            b"\xaa" * 131,
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
    ]
    for key, message, expected in cases:
        frame = spark.createDataFrame([(message.decode(),)], "m string")
        assert frame.select(hmac_sha256_hex(F.col("m"), key)).first()[0] == expected
    frame = spark.createDataFrame([("V000000000042",)], "id string")
    got = frame.select(pseudonym("encounter", "id", b"k")).first()[0]
    expected = hmac.new(b"k", b"encounter:V000000000042", hashlib.sha256).hexdigest()[:32]
    assert got == expected == pseudonym_of("encounter", "V000000000042", b"k")
    other = frame.select(pseudonym("patient", "id", b"k")).first()[0]
    assert other != got  # one identifier, unrelated pseudonyms per kind


def test_every_table_is_in_one_zone_and_analytics_declares_no_identifier():
    zones = {table: table.zone for table in t.LAKE_TABLES}
    assert {str(table) for table, zone in zones.items() if zone == t.RESTRICTED} == {
        "bronze.patient_events",
        "bronze.landing_files",
        "silver.patient_events",
        "silver.patient_events_quarantine",
        "identity.patients",
        "identity.encounters",
    }
    for table in t.LAKE_TABLES:
        if table.zone == t.ANALYTICS:
            assert not IDENTIFYING & set(table.column_names), table
    assert t.PATIENT_IDENTITY.column_names == ("patient_pseudonym", "patient_id")
    assert t.ENCOUNTER_IDENTITY.column_names == ("encounter_pseudonym", "encounter_id")


@pytest.fixture(scope="module")
def house(tmp_path_factory, spark):
    """A dirty simulated batch under the suite's key (the pipeline's and the lifecycles' scenarios,
    with returning patients and every kind of event, are scanned in their own modules)."""
    house = Lakehouse(tmp_path_factory.mktemp("privacy"), spark)
    house.landing_dir.mkdir(parents=True)
    write_events(simulate(500, seed=71, now=recent_now(), span_days=10).events, house.landing_dir)
    assert house.materialize().success
    return house


def test_no_identifier_or_unkeyed_hash_of_one_in_any_analytics_table(house):
    found = scan_analytics(house)
    scanned = found.pop("_columns_scanned")
    assert found == {}
    assert scanned >= 60  # every string and numeric column of every analytics table


def test_the_identity_maps_reidentify_exactly_the_patients_and_encounters_of_gold(house):
    silver = house.table(t.SILVER_EVENTS)
    fact = house.reidentified(t.FACT_ADMISSIONS)
    assert fact.filter("encounter_id IS NULL").count() == 0
    assert {r[0] for r in fact.select("encounter_id").collect()} == {
        r[0] for r in silver.select("encounter_id").distinct().collect()
    }
    patients = house.reidentified(t.DIM_PATIENT)
    assert patients.filter("patient_id IS NULL").count() == 0
    for row in patients.select("patient_pseudonym", "patient_id").limit(20).collect():
        assert row.patient_pseudonym == pseudonym_of("patient", row.patient_id, SUITE_KEY.encode())
    # One pair per pseudonym, and no identifier under two pseudonyms.
    for identity, identifier in (
        (t.PATIENT_IDENTITY, "patient_id"),
        (t.ENCOUNTER_IDENTITY, "encounter_id"),
    ):
        rows = house.table(identity)
        assert rows.count() == rows.select(identifier).distinct().count()


def test_rotating_the_key_rekeys_gold_and_changes_no_figure(house):
    """A new key and a full refresh of gold (the analytics zone): every pseudonym changes, every
    count, census hour and identity stays."""
    before_fact = {
        r[0] for r in house.table(t.FACT_ADMISSIONS).select("encounter_pseudonym").collect()
    }
    before_ids = {
        r[0] for r in house.reidentified(t.FACT_ADMISSIONS).select("encounter_id").collect()
    }
    census = house.table(t.DEPARTMENT_CENSUS_HOURLY).drop("hour_end")
    before_census = census.collect()
    house.pseudonym_key = "a rotated key"
    try:
        gold_steps = [step for step in FULL_REFRESH_STEPS if step.startswith("gold")]
        assert gold_steps == ["gold_dimensions", "gold_facts", "gold_kpis"]
        refresh = {"ops": {step: {"config": {"full_refresh": True}} for step in gold_steps}}
        assert house.materialize(run_config=refresh).success
        after_fact = {
            r[0] for r in house.table(t.FACT_ADMISSIONS).select("encounter_pseudonym").collect()
        }
        assert len(after_fact) == len(before_fact) and not after_fact & before_fact
        after_ids = {
            r[0] for r in house.reidentified(t.FACT_ADMISSIONS).select("encounter_id").collect()
        }
        assert after_ids == before_ids
        assert sorted(house.table(t.DEPARTMENT_CENSUS_HOURLY).drop("hour_end").collect()) == sorted(
            before_census
        )
        found = scan_analytics(house)
        found.pop("_columns_scanned")
        assert found == {}
    finally:
        house.pseudonym_key = SUITE_KEY


def test_a_deployment_without_its_key_stops_with_one_line_and_local_says_demo(
    tmp_path, monkeypatch
):
    with pytest.raises(SettingsError) as error:
        Settings.from_env({"PATIENT_FLOW_ENV": "databricks", "PATIENT_FLOW_LAKE": str(tmp_path)})
    assert str(error.value).startswith("PATIENT_FLOW_PSEUDONYM_KEY is not set: ")
    assert "\n" not in str(error.value)
    monkeypatch.delenv("PATIENT_FLOW_PSEUDONYM_KEY", raising=False)
    resources = resources_for(Settings.from_env({"PATIENT_FLOW_LAKE": str(tmp_path)}))
    assert resources["pseudonyms"].is_demo and resources["pseudonyms"].key == DEMO_KEY

    @asset(required_resource_keys={"pseudonyms"})
    def probe(context) -> None:
        assert context.resources.pseudonyms.secret == DEMO_KEY.encode()

    instance = DagsterInstance.ephemeral()
    result = materialize(
        [probe], resources={"pseudonyms": resources["pseudonyms"]}, instance=instance
    )
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("built-in demo key" in message for message in messages)
    assert not any(DEMO_KEY in message for message in messages)
    monkeypatch.setenv("PATIENT_FLOW_PSEUDONYM_KEY", "a deployment's key")
    keyed = resources_for(Settings.from_env({"PATIENT_FLOW_LAKE": str(tmp_path)}))["pseudonyms"]
    assert isinstance(keyed.key, EnvVar)  # a secret: resolved when the resource starts


def test_unity_catalog_gets_the_row_filter_and_the_age_mask_on_gold():
    """What the lake runs on a gold table it creates in Unity Catalog (Databricks only)."""
    statements = access.statements("patient_flow_prod", t.FACT_ADMISSIONS)
    assert statements[-1] == (
        "ALTER TABLE `patient_flow_prod`.`gold`.`fact_admissions` SET ROW FILTER "
        "`patient_flow_prod`.gold.hospital_rows ON (hospital_id)"
    )
    assert (
        "concat('patient-flow-hospital-', CAST(hospital_id AS STRING), '-analysts')"
        in statements[0]
    )
    assert "patient-flow-pipeline" in statements[0]  # the pipeline sees every row it merges
    mask = access.statements("c", t.DIM_PATIENT)
    assert (
        mask[-1]
        == "ALTER TABLE `c`.`gold`.`dim_patient` ALTER COLUMN age SET MASK `c`.gold.age_band"
    )
    assert "floor(age / 10) * 10" in mask[1]
    assert access.statements("c", t.SILVER_EVENTS) == []  # the restricted zone: grants only
    keyed = {str(table) for table in access.GUARDED_TABLES}
    assert (
        "gold.department_census_hourly" in keyed
        and "gold.cube_admissions_gender_department" not in keyed
    )


def _unquote(value):
    return value.strip('"') if isinstance(value, str) else value


def test_terraform_grants_each_group_exactly_the_schemas_the_model_declares():
    with (TERRAFORM / "access.tf").open() as handle:
        parsed = hcl2.load(handle)
    readers = {}
    for block in parsed["locals"]:
        for group, layers in block.get("readers", {}).items():
            readers[_unquote(group)] = {_unquote(layer) for layer in layers}
    declared = {r.group: set(r.layers) - {"landing"} for r in access.READERS}
    assert {group: layers - {"landing"} for group, layers in readers.items()} == declared
    text = (TERRAFORM / "access.tf").read_text()
    assert access.HOSPITAL_ANALYSTS.replace("{hospital_id}", "${id}") in text
    main = (TERRAFORM / "main.tf").read_text()
    # No account key or SAS anywhere: Entra identities only.
    assert "primary_connection_string" not in main and "authorization_rule" not in main
    assert re.search(r"shared_access_key_enabled\s*=\s*false", main)
    assert re.search(r"local_authentication_enabled\s*=\s*false", main)
    roles = re.findall(r'role = "([^"]+)"', text)
    assert sorted(roles) == sorted(
        [
            "Storage Blob Data Contributor",
            "Storage Blob Data Contributor",
            "Azure Event Hubs Data Receiver",
            "Key Vault Secrets User",
        ]
    )
