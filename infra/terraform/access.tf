# Who reads what (src/patient_flow_dagster/model/access.py declares the same; a test holds the
# two equal). Unity Catalog grants per schema: the restricted zone (bronze, silver, identity)
# holds patient and visit identifiers, the analytics zone (gold, quality) only pseudonyms.
# Groups are account groups (row filters and column masks test account membership).

locals {
  # group => the schemas it reads
  readers = {
    "patient-flow-analysts"          = ["gold", "quality"]
    "patient-flow-care-coordination" = ["gold", "quality", "identity"]
    "patient-flow-engineers"         = ["landing", "bronze", "silver", "identity", "gold", "quality"]
    "patient-flow-pipeline"          = ["landing", "bronze", "silver", "identity", "gold", "quality"]
  }
  # One analyst group per hospital: the analytics zone, and only its hospital's rows there
  # (the row filter `gold.hospital_rows` the pipeline puts on every gold table with hospital_id).
  hospital_groups = {
    for id in var.hospital_ids : tostring(id) => "patient-flow-hospital-${id}-analysts"
  }
  schemas = toset(["bronze", "silver", "identity", "gold", "quality"])
  # schema => groups reading it
  schema_readers = {
    for schema in local.schemas : schema => concat(
      [for group, layers in local.readers : group if contains(layers, schema)],
      schema == "gold" ? values(local.hospital_groups) : [],
    )
  }
}

resource "databricks_group" "reader" {
  for_each     = merge({ for group in keys(local.readers) : group => group }, { for id, group in local.hospital_groups : group => group })
  display_name = each.value
}

# The pipeline's service principal is the pipeline group's only member.
resource "databricks_group_member" "pipeline" {
  group_id  = databricks_group.reader["patient-flow-pipeline"].id
  member_id = databricks_service_principal.dagster.id
}

resource "databricks_grants" "catalog" {
  catalog = databricks_catalog.patient_flow.name
  grant {
    principal  = "patient-flow-pipeline"
    privileges = ["USE_CATALOG", "USE_SCHEMA", "CREATE_SCHEMA", "CREATE_TABLE", "CREATE_FUNCTION", "MODIFY", "SELECT", "EXECUTE"]
  }
  dynamic "grant" {
    for_each = setsubtract(keys(databricks_group.reader), ["patient-flow-pipeline"])
    content {
      principal  = grant.value
      privileges = ["USE_CATALOG"]
    }
  }
}

resource "databricks_grants" "schema" {
  for_each = local.schemas
  schema   = "${databricks_catalog.patient_flow.name}.${each.key}"
  dynamic "grant" {
    for_each = setsubtract(local.schema_readers[each.key], ["patient-flow-pipeline"])
    content {
      principal  = grant.value
      privileges = ["USE_SCHEMA", "SELECT"]
    }
  }
  depends_on = [databricks_schema.layer, databricks_group.reader]
}

# -- identities instead of keys ---------------------------------------------------------------
# The Dagster deployment runs as this managed identity: it lists and archives the landing
# container, consumes Event Hubs and keeps the consumer's checkpoints, reads its secrets. No
# storage account key or Event Hubs SAS exists in Key Vault, the secret scope or the code.

resource "azurerm_user_assigned_identity" "dagster" {
  name                = "id-${local.name}-dagster"
  resource_group_name = azurerm_resource_group.this.name
  location            = azurerm_resource_group.this.location
  tags                = local.tags
}

locals {
  container_scope = {
    for zone in local.containers :
    zone => "${azurerm_storage_account.lake.id}/blobServices/default/containers/${zone}"
  }
  dagster_roles = {
    landing     = { scope = local.container_scope["landing"], role = "Storage Blob Data Contributor" }
    checkpoints = { scope = local.container_scope["checkpoints"], role = "Storage Blob Data Contributor" }
    events      = { scope = azurerm_eventhub.patient_events.id, role = "Azure Event Hubs Data Receiver" }
    secrets     = { scope = azurerm_key_vault.this.id, role = "Key Vault Secrets User" }
  }
}

resource "azurerm_role_assignment" "dagster" {
  for_each             = local.dagster_roles
  scope                = each.value.scope
  role_definition_name = each.value.role
  principal_id         = azurerm_user_assigned_identity.dagster.principal_id
}

# The hospital's interface engine (or the simulator) sends with its own Entra identity.
resource "azurerm_role_assignment" "event_senders" {
  for_each             = toset(var.event_sender_principal_ids)
  scope                = azurerm_eventhub.patient_events.id
  role_definition_name = "Azure Event Hubs Data Sender"
  principal_id         = each.value
}

# The key of the analytics zone's pseudonyms: generated here, kept in Key Vault only (the secret
# scope hands it to the remote steps as PATIENT_FLOW_PSEUDONYM_KEY). Rotating it (taint and
# re-apply) means a full refresh of gold (docs/privacy.md).
resource "random_password" "pseudonym_key" {
  length  = 48
  special = false
}
