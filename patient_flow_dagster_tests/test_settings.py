"""Every setting is read in one module, declared once, documented in docs/configuration.md,
and a bad value names its variable."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from patient_flow_dagster import settings
from patient_flow_dagster.resources.spark import local_spark_config
from patient_flow_dagster.settings import Settings, SettingsError

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


def test_every_variable_the_code_names_is_declared_and_in_the_readme():
    named = set()
    for path in PACKAGE.rglob("*.py"):
        named |= set(re.findall(r"\bPATIENT_FLOW_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    assert named - DECLARED == set()
    assert DECLARED - documented_variables() == set(), "docs/configuration.md is missing these"
    assert documented_variables() - DECLARED == set(), (
        "docs/configuration.md lists variables the code never reads"
    )


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
    assert local_spark_config()["spark.sql.adaptive.enabled"] == "false"
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
