# Azure side of patient_flow_dagster: resource group, ADLS Gen2 (landing, lake, checkpoints),
# Event Hubs, Key Vault with the secrets the pipeline reads, Databricks workspace. Storage and
# Event Hubs accept Entra identities only (access.tf).

data "azurerm_client_config" "current" {}

# Storage and Key Vault names allow lowercase letters and digits only (`compact`).
locals {
  name       = "${var.name_prefix}-${var.environment}"
  compact    = "${var.name_prefix}${var.environment}"
  containers = ["landing", "lake", "checkpoints"]
  tags = merge(var.tags, {
    project     = "patient-flow"
    environment = var.environment
  })
}

resource "azurerm_resource_group" "this" {
  name     = "rg-${local.name}"
  location = var.location
  tags     = local.tags
}

# -- storage: ADLS Gen2 ------------------------------------------------------------------------

resource "azurerm_storage_account" "lake" {
  name                            = "st${local.compact}"
  resource_group_name             = azurerm_resource_group.this.name
  location                        = azurerm_resource_group.this.location
  account_tier                    = "Standard"
  account_replication_type        = var.environment == "prod" ? "ZRS" : "LRS"
  account_kind                    = "StorageV2"
  is_hns_enabled                  = true
  min_tls_version                 = "TLS1_2"
  allow_nested_items_to_be_public = false
  shared_access_key_enabled       = false # Entra ID only: no account key, no SAS
  tags                            = local.tags

  blob_properties {
    delete_retention_policy {
      days = 14
    }
  }
}

resource "azurerm_storage_data_lake_gen2_filesystem" "zone" {
  for_each           = toset(local.containers)
  name               = each.key
  storage_account_id = azurerm_storage_account.lake.id
}

# -- Event Hubs: the patient-events stream ---------------------------------------------------

resource "azurerm_eventhub_namespace" "this" {
  name                = "evhns-${local.name}"
  resource_group_name = azurerm_resource_group.this.name
  location            = azurerm_resource_group.this.location
  sku                 = var.eventhub_sku
  capacity            = 1
  minimum_tls_version = "1.2"
  local_authentication_enabled = false # Entra ID only: SAS keys are refused
  tags                = local.tags
}

resource "azurerm_eventhub" "patient_events" {
  name              = "patient-events"
  namespace_id      = azurerm_eventhub_namespace.this.id
  partition_count   = var.eventhub_partitions
  message_retention = var.eventhub_retention_days
}

resource "azurerm_eventhub_consumer_group" "landing" {
  name                = "landing-writer"
  namespace_name      = azurerm_eventhub_namespace.this.name
  eventhub_name       = azurerm_eventhub.patient_events.name
  resource_group_name = azurerm_resource_group.this.name
  user_metadata       = "patient-flow consumer that writes landing Parquet files"
}

# No shared access keys: producers send and the landing consumer receives with their Entra
# identities (access.tf: Azure Event Hubs Data Sender / Receiver on this hub only).

# -- Key Vault: every credential the pipeline uses ---------------------------------------------

resource "azurerm_key_vault" "this" {
  name                       = "kv-${local.compact}"
  resource_group_name        = azurerm_resource_group.this.name
  location                   = azurerm_resource_group.this.location
  tenant_id                  = data.azurerm_client_config.current.tenant_id
  sku_name                   = "standard"
  enable_rbac_authorization  = true
  purge_protection_enabled   = var.environment == "prod"
  soft_delete_retention_days = 30
  tags                       = local.tags
}

resource "azurerm_role_assignment" "deployer_secrets" {
  scope                = azurerm_key_vault.this.id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = data.azurerm_client_config.current.object_id
}

# The AzureDatabricks first-party application reads the vault behind the secret scope.
data "azuread_service_principal" "azure_databricks" {
  client_id = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"
}

resource "azurerm_role_assignment" "databricks_secrets" {
  scope                = azurerm_key_vault.this.id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = data.azuread_service_principal.azure_databricks.object_id
}

locals {
  secrets = {
    "databricks-client-secret" = databricks_service_principal_secret.dagster.secret
    "pseudonym-key"            = random_password.pseudonym_key.result
  }
}

resource "azurerm_key_vault_secret" "pipeline" {
  for_each     = local.secrets
  name         = each.key
  value        = each.value
  key_vault_id = azurerm_key_vault.this.id
  depends_on   = [azurerm_role_assignment.deployer_secrets]
}

# -- Databricks workspace ----------------------------------------------------------------------

resource "azurerm_databricks_workspace" "this" {
  name                        = "dbw-${local.name}"
  resource_group_name         = azurerm_resource_group.this.name
  location                    = azurerm_resource_group.this.location
  sku                         = var.databricks_sku
  managed_resource_group_name = "rg-${local.name}-databricks-managed"
  tags                        = local.tags
}

# Unity Catalog reaches ADLS through this managed identity (no account key on clusters).
resource "azurerm_databricks_access_connector" "unity" {
  name                = "dbac-${local.name}"
  resource_group_name = azurerm_resource_group.this.name
  location            = azurerm_resource_group.this.location
  tags                = local.tags

  identity {
    type = "SystemAssigned"
  }
}

# Unity Catalog's identity on the three containers it serves (external locations), nothing else.
resource "azurerm_role_assignment" "unity_storage" {
  for_each             = local.container_scope
  scope                = each.value
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_databricks_access_connector.unity.identity[0].principal_id
}
