"""Every setting is read in one module, declared once, documented in docs/configuration.md,
and a bad value names its variable."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import ConfigurableResource, EnvVar

from patient_flow_dagster import settings
from patient_flow_dagster.environments import resources_for
from patient_flow_dagster.resources.azure_landing import AzureBlobLandingZone
from patient_flow_dagster.resources.databricks import SERVICE_PRINCIPAL, step_launcher_config
from patient_flow_dagster.resources.spark import local_spark_config
from patient_flow_dagster.settings import (
    DatabricksSettings,
    Settings,
    SettingsError,
    SparkSettings,
)
from patient_flow_dagster.variables import describe
from patient_flow_devtools import config_reference

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "patient_flow_dagster"
DECLARED = {variable.name for variable in settings.VARIABLES}


def documented_variables() -> set[str]:
    """The variable names in the first column of the configuration reference's table."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", text, re.M))


def test_only_the_settings_module_touches_the_environment():
    readers = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if re.search(r"os\.environ|os\.getenv|getenv\(", path.read_text())
    )
    assert readers == ["settings.py"]


def test_resources_assets_and_sensors_take_settings_as_fields_never_read_them():
    """Dagster's resources carry every setting they use (the UI shows it); a read of the
    environment behind their back would not show."""
    dagster_side = [
        *PACKAGE.joinpath("resources").glob("*.py"),
        *PACKAGE.joinpath("assets").glob("*.py"),
        *(PACKAGE / name for name in ("sensors.py", "schedules.py", "alerting.py")),
    ]
    readers = sorted(
        str(path.relative_to(PACKAGE))
        for path in dagster_side
        if re.search(
            r"\bsettings\.(read|environment|forwarded|secret|sourced)|\.from_env\("
            r"|from patient_flow_dagster\.settings import [^\n]*"
            r"\b(read\w*|environment|forwarded)\b",
            path.read_text(),
        )
    )
    assert readers == []


def test_every_variable_the_code_names_is_declared_and_in_the_readme():
    named = set()
    for path in PACKAGE.rglob("*.py"):
        named |= set(re.findall(r"\bPATIENT_FLOW_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    assert named - DECLARED == set()
    assert DECLARED - documented_variables() == set(), "docs/configuration.md is missing these"
    assert documented_variables() - DECLARED == set(), (
        "docs/configuration.md lists variables the code never reads"
    )


def test_the_reference_is_generated_from_the_declarations_word_for_word():
    assert config_reference.current() == config_reference.render(), (
        "docs/configuration.md differs from variables.py: run .venv/bin/patient-flow "
        "config-reference"
    )


def resource_fields(resources: dict) -> dict[str, object]:
    """`<key>.<field>` of every field of the resources, with its pydantic field info (None for
    the step launcher's config keys)."""
    fields: dict[str, object] = {}
    for key, resource in resources.items():
        if isinstance(resource, ConfigurableResource):
            for name, info in type(resource).model_fields.items():
                fields[f"{key}.{name}"] = info
    return fields


def test_every_variable_a_resource_takes_is_a_described_field_of_it(tmp_path, monkeypatch):
    """What the UI's resource pages show: each field a variable fills exists, and (where the
    field is the product's own) says what it means and which variable sets it."""
    lake = str(tmp_path / "lake")
    blob = "wasbs://landing@acct.blob.core.windows.net/patient_events"
    fields = {}
    for environ in (
        {"PATIENT_FLOW_LAKE": lake},
        {"PATIENT_FLOW_LAKE": lake, "PATIENT_FLOW_LANDING": blob},
        {
            "PATIENT_FLOW_LAKE": lake,
            "PATIENT_FLOW_ENV": "databricks",
            "PATIENT_FLOW_PSEUDONYM_KEY": "k",
        },
    ):
        fields |= resource_fields(resources_for(Settings.from_env(environ)))
    launcher = step_launcher_config(DatabricksSettings.from_env({}))
    fields |= {f"step_launcher.{key}": None for key in [*launcher, SERVICE_PRINCIPAL]}
    fields["landing.url"] = AzureBlobLandingZone.model_fields["url"]
    for variable in settings.VARIABLES:
        if variable.fills is None:
            continue
        assert variable.fills in fields, variable
        info = fields[variable.fills]
        if info is not None and variable.fills.split(".")[0] != "pyspark":
            assert info.description == describe(variable.name), variable
    assert AzureBlobLandingZone.model_fields["url"].description == describe("PATIENT_FLOW_LANDING")


def test_a_resource_field_set_by_its_variable_is_an_envvar(monkeypatch, tmp_path):
    """The UI shows such a field as `EnvVar` with the variable's name; a secret is never a value
    in the definitions; a value the product converts is passed as the value."""
    monkeypatch.setenv("PATIENT_FLOW_CATALOG", "hospital")
    monkeypatch.setenv("PATIENT_FLOW_SMTP_PORT", "2525")
    monkeypatch.setenv("PATIENT_FLOW_SMTP_PASSWORD", "s3cr3t")
    monkeypatch.setenv("PATIENT_FLOW_LAKE", "relative/lake")
    monkeypatch.setenv("PATIENT_FLOW_MAX_FILES_PER_TRIGGER", "2")
    assert settings.sourced("PATIENT_FLOW_CATALOG", "hospital") == EnvVar("PATIENT_FLOW_CATALOG")
    assert isinstance(settings.sourced("PATIENT_FLOW_CATALOG", "hospital"), EnvVar)
    port = settings.sourced("PATIENT_FLOW_SMTP_PORT", 2525)
    assert type(port) is type(EnvVar.int("PATIENT_FLOW_SMTP_PORT"))
    assert settings.sourced("PATIENT_FLOW_LAKE", "/abs/relative/lake") == "/abs/relative/lake"
    assert settings.sourced("PATIENT_FLOW_SMTP_HOST", None) is None  # unset: the default
    assert isinstance(settings.secret("PATIENT_FLOW_SMTP_PASSWORD"), EnvVar)
    assert settings.secret("PATIENT_FLOW_ALERT_WEBHOOK_URL") is None
    monkeypatch.chdir(tmp_path)
    resources = resources_for(Settings.from_env())
    assert isinstance(resources["lake"].catalog, EnvVar)
    assert resources["lake"].root == str(tmp_path / "relative" / "lake")
    assert isinstance(resources["alerts"].smtp_password, EnvVar)
    files = resources["landing"].max_files_per_trigger  # a whole number: EnvVar.int
    assert type(files) is type(EnvVar.int("PATIENT_FLOW_MAX_FILES_PER_TRIGGER"))
    assert "s3cr3t" not in repr(resources)


def test_an_undeclared_variable_cannot_be_read():
    with pytest.raises(KeyError):
        settings.read("PATIENT_FLOW_NOT_A_SETTING")


def test_defaults_and_values(tmp_path):
    defaults = Settings.from_env({"PATIENT_FLOW_LAKE": str(tmp_path)})
    assert (
        defaults.env,
        defaults.landing_reader,
        defaults.sensor_interval,
        defaults.quarantine_error_ratio,
        defaults.max_files_per_trigger,
    ) == ("local", "files", 10, 0.10, 1000)
    assert defaults.landing == f"{tmp_path}/landing/patient_events"
    chosen = Settings.from_env(
        {
            "PATIENT_FLOW_ENV": "Databricks",
            "PATIENT_FLOW_PSEUDONYM_KEY": "a deployment key",
            "PATIENT_FLOW_SENSOR_INTERVAL": "3",
            "PATIENT_FLOW_QUARANTINE_ERROR_RATIO": "0.5",
        }
    )
    assert (
        chosen.env,
        chosen.landing_reader,
        chosen.sensor_interval,
        chosen.quarantine_error_ratio,
    ) == ("databricks", "autoloader", 3, 0.5)
    url = "abfss://landing@acct.dfs.core.windows.net/patient_events"
    assert Settings.from_env({"PATIENT_FLOW_LANDING": url}).landing == url


@pytest.mark.parametrize(
    "name, value, message",
    [
        (
            "PATIENT_FLOW_ENV",
            "staging",
            "PATIENT_FLOW_ENV='staging' is not one of local, databricks",
        ),
        (
            "PATIENT_FLOW_QUARANTINE_ERROR_RATIO",
            "abc",
            "PATIENT_FLOW_QUARANTINE_ERROR_RATIO='abc' is not a number between 0 and 1",
        ),
        (
            "PATIENT_FLOW_QUARANTINE_ERROR_RATIO",
            "1.5",
            "PATIENT_FLOW_QUARANTINE_ERROR_RATIO='1.5' is not a number between 0 and 1",
        ),
        (
            "PATIENT_FLOW_SENSOR_INTERVAL",
            "ten",
            "PATIENT_FLOW_SENSOR_INTERVAL='ten' is not a whole number",
        ),
        (
            "PATIENT_FLOW_MAX_FILES_PER_TRIGGER",
            "0",
            "PATIENT_FLOW_MAX_FILES_PER_TRIGGER=0 must be at least 1",
        ),
        (
            "PATIENT_FLOW_LANDING_READER",
            "ftp",
            "PATIENT_FLOW_LANDING_READER='ftp' is not one of files, autoloader",
        ),
    ],
)
def test_a_bad_value_names_its_variable(name, value, message):
    with pytest.raises(SettingsError) as error:
        Settings.from_env({name: value})
    assert str(error.value) == message


def test_spark_settings_are_a_json_object_that_reaches_the_session(spark):
    assert settings.read_spark_conf(
        {"PATIENT_FLOW_SPARK_CONF": '{"spark.sql.adaptive.enabled": false, "spark.x.n": 3}'}
    ) == {"spark.sql.adaptive.enabled": "false", "spark.x.n": "3"}
    assert settings.read_spark_conf({}) == {}
    with pytest.raises(SettingsError, match=r"^PATIENT_FLOW_SPARK_CONF='a=b' is not a JSON object"):
        settings.read_spark_conf({"PATIENT_FLOW_SPARK_CONF": "a=b"})
    # the suite's own (conftest): on the shared session, over the project's settings
    assert local_spark_config(SparkSettings.from_env())["spark.sql.adaptive.enabled"] == "false"
    assert spark.conf.get("spark.sql.adaptive.enabled") == "false"


def test_the_cli_answers_a_bad_value_with_one_line_and_exit_code_2(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "PATIENT_FLOW_QUARANTINE_ERROR_RATIO": "abc",
        "PATIENT_FLOW_LAKE": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "patient_flow_dagster.cli", "demo", "--skip-simulate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: PATIENT_FLOW_QUARANTINE_ERROR_RATIO='abc' is not a number between 0 and 1"
    ]
