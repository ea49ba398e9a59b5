# The Dagster deployment's environment variables (docs/databricks.md).

output "dagster_environment" {
  description = "Non-secret environment variables for the Dagster code location."
  value       = {
    PATIENT_FLOW_ENV                 = "databricks"
    DATABRICKS_HOST                  = "https://${azurerm_databricks_workspace.this.workspace_url}"
    DATABRICKS_CLIENT_ID             = databricks_service_principal.dagster.application_id
    PATIENT_FLOW_CATALOG             = databricks_catalog.patient_flow.name
    PATIENT_FLOW_LAKE                = "${local.zone_urls["checkpoints"]}patient_flow"
    PATIENT_FLOW_LANDING             = "${local.zone_urls["landing"]}patient_events"
    PATIENT_FLOW_LANDING_SCHEMAS     = "${local.zone_urls["checkpoints"]}autoloader_schemas"
    PATIENT_FLOW_SECRET_SCOPE        = databricks_secret_scope.pipeline.name
    PATIENT_FLOW_DATABRICKS_INSTANCE_POOL = databricks_instance_pool.jobs.id
    PATIENT_FLOW_DATABRICKS_CLUSTER_POLICY = databricks_cluster_policy.jobs.id
    EVENTHUBS_NAMESPACE              = "${azurerm_eventhub_namespace.this.name}.servicebus.windows.net"
    EVENTHUBS_CHECKPOINT_ACCOUNT_URL = azurerm_storage_account.lake.primary_blob_endpoint
    EVENTHUBS_CHECKPOINT_CONTAINER   = "checkpoints"
  }
}

output "dagster_identity" {
  description = "The managed identity the Dagster deployment runs as (set AZURE_CLIENT_ID to its client id): landing, Event Hubs, checkpoints and Key Vault by Entra ID, no key."
  value = {
    client_id    = azurerm_user_assigned_identity.dagster.client_id
    principal_id = azurerm_user_assigned_identity.dagster.principal_id
  }
}

output "eventhubs_ingest" {
  description = "The landing consumer's hub and consumer group: patient-flow ingest --from eventhubs-amqp --topic <hub> --group <consumer_group>."
  value       = {
    hub            = azurerm_eventhub.patient_events.name
    consumer_group = azurerm_eventhub_consumer_group.landing.name
  }
}

output "key_vault_uri" {
  description = "Key Vault with databricks-client-secret and pseudonym-key (read them into DATABRICKS_CLIENT_SECRET and PATIENT_FLOW_PSEUDONYM_KEY of the Dagster deployment; the secret scope hands them to the remote steps)."
  value       = azurerm_key_vault.this.vault_uri
}

output "databricks_workspace_url" {
  value = azurerm_databricks_workspace.this.workspace_url
}
