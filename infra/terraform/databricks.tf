# Workspace side: Unity Catalog (storage credential, external locations, the catalog of this
# environment with its bronze / silver / identity / gold / quality schemas; grants in access.tf), the Key Vault-backed secret scope the
# step launcher reads, and the service principal Dagster runs as (OAuth machine-to-machine).

resource "databricks_metastore_assignment" "this" {
  metastore_id = var.metastore_id
  workspace_id = azurerm_databricks_workspace.this.workspace_id
}

resource "databricks_storage_credential" "lake" {
  name    = "patient-flow-${var.environment}"
  comment = "ADLS access of patient_flow_dagster through the access connector's identity"

  azure_managed_identity {
    access_connector_id = azurerm_databricks_access_connector.unity.id
  }

  depends_on = [databricks_metastore_assignment.this]
}

locals {
  zone_urls = {
    for zone in local.containers :
    zone => "abfss://${zone}@${azurerm_storage_account.lake.name}.dfs.core.windows.net/"
  }
}

resource "databricks_external_location" "zone" {
  for_each        = local.zone_urls
  name            = "patient-flow-${var.environment}-${each.key}"
  url             = each.value
  credential_name = databricks_storage_credential.lake.name
  comment         = "patient_flow_dagster ${each.key} zone"

  depends_on = [
    azurerm_role_assignment.unity_storage,
    azurerm_storage_data_lake_gen2_filesystem.zone,
  ]
}

resource "databricks_catalog" "patient_flow" {
  name         = "patient_flow_${var.environment}"
  storage_root = "${local.zone_urls["lake"]}catalog"
  comment      = "Patient-flow lakehouse (${var.environment}): bronze, silver, gold, quality history"

  depends_on = [databricks_external_location.zone]
}

resource "databricks_schema" "layer" {
  for_each     = toset(["bronze", "silver", "identity", "gold", "quality"])
  catalog_name = databricks_catalog.patient_flow.name
  name         = each.key
  comment      = "patient_flow_dagster ${each.key} layer"
}

resource "databricks_secret_scope" "pipeline" {
  name = "patient-flow"

  keyvault_metadata {
    resource_id = azurerm_key_vault.this.id
    dns_name    = azurerm_key_vault.this.vault_uri
  }
}

resource "databricks_service_principal" "dagster" {
  display_name         = "patient-flow-dagster-${var.environment}"
  allow_cluster_create = true
}

# The OAuth secret of the service principal (stored in Key Vault); rotate by re-applying.
resource "databricks_service_principal_secret" "dagster" {
  service_principal_id = databricks_service_principal.dagster.id
  lifetime             = "${var.dagster_secret_lifetime_days * 24}h"
}

resource "databricks_secret_acl" "dagster" {
  scope      = databricks_secret_scope.pipeline.name
  principal  = databricks_service_principal.dagster.application_id
  permission = "READ"
}

# -- Compute: warm VMs for the job clusters, under a policy ------------------------------------
# A job cluster on new VMs takes minutes to start; drawn from a pool with idle instances it
# starts in well under a minute. Idle instances cost VM time (not DBUs) while they wait.

resource "databricks_instance_pool" "jobs" {
  instance_pool_name                    = "patient-flow-${var.environment}"
  node_type_id                          = var.job_node_type
  min_idle_instances                    = var.pool_min_idle_instances
  max_capacity                          = var.pool_max_capacity
  idle_instance_autotermination_minutes = var.pool_idle_minutes
  preloaded_spark_versions              = [var.spark_version]
  custom_tags                           = { project = "patient-flow" }
}

resource "databricks_cluster_policy" "jobs" {
  name = "patient-flow-jobs-${var.environment}"
  definition = jsonencode({
    "spark_version"           = { type = "fixed", value = var.spark_version }
    "instance_pool_id"        = { type = "fixed", value = databricks_instance_pool.jobs.id }
    "driver_instance_pool_id" = { type = "fixed", value = databricks_instance_pool.jobs.id }
    "num_workers"             = { type = "range", maxValue = var.pool_max_capacity - 1 }
    "data_security_mode"      = { type = "fixed", value = "DATA_SECURITY_MODE_DEDICATED" }
    "custom_tags.project"     = { type = "fixed", value = "patient-flow" }
  })
}

resource "databricks_permissions" "dagster_pool" {
  instance_pool_id = databricks_instance_pool.jobs.id
  access_control {
    service_principal_name = databricks_service_principal.dagster.application_id
    permission_level       = "CAN_ATTACH_TO"
  }
}

resource "databricks_permissions" "dagster_policy" {
  cluster_policy_id = databricks_cluster_policy.jobs.id
  access_control {
    service_principal_name = databricks_service_principal.dagster.application_id
    permission_level       = "CAN_USE"
  }
}
