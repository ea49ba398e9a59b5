# Workspace side: Unity Catalog (storage credential, external locations, the catalog of this
# environment with its bronze / silver / gold schemas), the Key Vault-backed secret scope the
# step launcher reads, and the token Dagster uses.

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
  comment      = "Patient-flow lakehouse (${var.environment}): bronze, silver, gold"

  depends_on = [databricks_external_location.zone]
}

resource "databricks_schema" "layer" {
  for_each     = toset(["bronze", "silver", "gold"])
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

resource "databricks_token" "dagster" {
  comment          = "Dagster step launcher (${var.environment})"
  lifetime_seconds = var.dagster_token_lifetime_days * 24 * 60 * 60
}
