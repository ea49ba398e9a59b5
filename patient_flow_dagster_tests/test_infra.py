"""infra/: the Terraform parses, declares what production needs, and feeds the variables the
code reads; the cluster spec is accepted by the step launcher's config schema."""

import json
import re
from pathlib import Path

import hcl2
from dagster_databricks.configs import define_databricks_submit_run_config

from patient_flow_dagster.resources.databricks import (
    DEFAULT_CLUSTER_SPEC,
    databricks_run_config,
    remote_secrets,
)
from patient_flow_dagster.settings import VARIABLES, DatabricksSettings

TERRAFORM = Path(__file__).resolve().parents[1] / "infra" / "terraform"
SOURCE = Path(__file__).resolve().parents[1] / "src" / "patient_flow_dagster"


def _unquote(name: str) -> str:
    return name.strip('"')


def terraform() -> dict[str, list]:
    merged: dict[str, list] = {}
    for tf in sorted(TERRAFORM.glob("*.tf")):
        with tf.open() as handle:
            for block, items in hcl2.load(handle).items():
                merged.setdefault(block, []).extend(items if isinstance(items, list) else [items])
    return merged


def test_terraform_declares_the_production_platform():
    parsed = terraform()
    resources = {_unquote(kind) for item in parsed["resource"] for kind in item}
    assert resources >= {
        "azurerm_resource_group",
        "azurerm_storage_account",
        "azurerm_storage_data_lake_gen2_filesystem",
        "azurerm_eventhub_namespace",
        "azurerm_eventhub",
        "azurerm_eventhub_consumer_group",
        "azurerm_user_assigned_identity",
        "azurerm_role_assignment",
        "databricks_group",
        "databricks_group_member",
        "databricks_grants",
        "random_password",
        "azurerm_key_vault",
        "azurerm_key_vault_secret",
        "azurerm_databricks_workspace",
        "azurerm_databricks_access_connector",
        "databricks_storage_credential",
        "databricks_external_location",
        "databricks_catalog",
        "databricks_schema",
        "databricks_secret_scope",
        "databricks_metastore_assignment",
        "azurerm_log_analytics_workspace",
        "azurerm_monitor_diagnostic_setting",
        "azurerm_monitor_action_group",
        "azurerm_monitor_scheduled_query_rules_alert_v2",
        "azurerm_monitor_metric_alert",
    }
    assert "azurerm_eventhub_authorization_rule" not in resources  # no SAS: Entra ID only
    variables = {_unquote(name) for item in parsed["variable"] for name in item}
    for environment in ("dev", "test", "prod"):
        with (TERRAFORM / "environments" / f"{environment}.tfvars").open() as handle:
            values = hcl2.load(handle)
        assert _unquote(values["environment"]) == environment
        assert set(values) - {"__comments__"} <= variables  # no unknown variable


def test_terraform_outputs_are_the_variables_the_code_reads():
    outputs = {
        _unquote(name): body for item in terraform()["output"] for name, body in item.items()
    }
    produced = set(
        re.findall(r"^\s+([A-Z][A-Z0-9_]+)\s*=", (TERRAFORM / "outputs.tf").read_text(), re.M)
    )
    assert "dagster_environment" in outputs
    assert {
        "PATIENT_FLOW_ENV",
        "PATIENT_FLOW_CATALOG",
        "PATIENT_FLOW_LAKE",
        "PATIENT_FLOW_LANDING",
        "PATIENT_FLOW_LANDING_SCHEMAS",
        "PATIENT_FLOW_SECRET_SCOPE",
        "DATABRICKS_HOST",
        "DATABRICKS_CLIENT_ID",
        "EVENTHUBS_NAMESPACE",
    } <= produced
    declared = {variable.name for variable in VARIABLES}
    assert produced <= declared, produced - declared  # every output is a setting the code reads
    # the secrets the remote step exports (as a service principal) are the ones the vault holds
    environ = {"DATABRICKS_CLIENT_ID": "app-id", "PATIENT_FLOW_ENV": "databricks"}
    keys = {secret["key"] for secret in remote_secrets(DatabricksSettings.from_env(environ))}
    main = (TERRAFORM / "main.tf").read_text()
    assert keys == {"databricks-client-secret", "pseudonym-key"}
    assert all(f'"{key}"' in main for key in keys)


def test_cluster_spec_is_valid_launcher_config():
    spec = json.loads(DEFAULT_CLUSTER_SPEC.read_text())
    assert spec["cluster"]["new"]["spark_version"].endswith("scala2.13")
    schema = define_databricks_submit_run_config()
    from dagster._config import validate_config

    assert validate_config(
        schema.config_type, databricks_run_config(DatabricksSettings.from_env({}))
    ).success
    pooled = databricks_run_config(
        DatabricksSettings.from_env(
            {
                "PATIENT_FLOW_DATABRICKS_INSTANCE_POOL": "0101-pool",
                "PATIENT_FLOW_DATABRICKS_CLUSTER_POLICY": "E0A1",
            }
        )
    )
    assert validate_config(schema.config_type, pooled).success
    assert pooled["cluster"]["new"]["nodes"] == {"instance_pool_id": "0101-pool"}
    assert pooled["cluster"]["new"]["policy_id"] == "E0A1"


def test_monitoring_covers_every_service_and_reaches_the_action_group():
    text = (TERRAFORM / "monitoring.tf").read_text()
    diagnosed = re.search(r"diagnosed = \{(.*?)\}", text, re.S).group(1)
    assert {
        "azurerm_databricks_workspace.this",
        "azurerm_eventhub_namespace.this",
        "azurerm_storage_account.lake",
    } <= set(re.findall(r"(azurerm_[a-z_]+\.[a-z_]+)", diagnosed))
    alerts = [
        body
        for item in terraform()["resource"]
        for kind, body in item.items()
        if _unquote(kind).startswith(
            ("azurerm_monitor_metric_alert", "azurerm_monitor_scheduled_query_rules_alert")
        )
    ]
    assert len(alerts) == 3
    assert text.count("azurerm_monitor_action_group.on_call.id") == 3
