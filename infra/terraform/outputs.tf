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
  description = "Key Vault with databricks-client-secret, landing-connection-string and the Event Hubs connection strings (read them into DATABRICKS_CLIENT_SECRET, AZURE_STORAGE_CONNECTION_STRING and EVENTHUBS_CONNECTION_STRING of the Dagster deployment)."
  value       = azurerm_key_vault.this.vault_uri
}

output "databricks_workspace_url" {
  value = azurerm_databricks_workspace.this.workspace_url
}
