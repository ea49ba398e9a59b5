# Monitoring: one Log Analytics workspace per environment receives the diagnostic logs and
# metrics of the Databricks workspace, Event Hubs and the lake's storage; an action group
# reaches the people on call by e-mail and webhook (the same recipients as Dagster's alerts).

resource "azurerm_log_analytics_workspace" "this" {
  name                = "log-${local.name}"
  resource_group_name = azurerm_resource_group.this.name
  location            = azurerm_resource_group.this.location
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  tags                = local.tags
}

locals {
  # Everything each service logs, and all its metrics.
  diagnosed = {
    databricks = azurerm_databricks_workspace.this.id
    eventhubs  = azurerm_eventhub_namespace.this.id
    lake_blobs = "${azurerm_storage_account.lake.id}/blobServices/default"
  }
}

resource "azurerm_monitor_diagnostic_setting" "this" {
  for_each                   = local.diagnosed
  name                       = "diag-${each.key}-to-log-analytics"
  target_resource_id         = each.value
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id

  enabled_log {
    category_group = "allLogs"
  }

  dynamic "enabled_metric" {
    # Databricks workspaces publish logs only.
    for_each = each.key == "databricks" ? [] : ["AllMetrics"]
    content {
      category = enabled_metric.value
    }
  }
}

resource "azurerm_monitor_action_group" "on_call" {
  name                = "ag-${local.name}-on-call"
  resource_group_name = azurerm_resource_group.this.name
  short_name          = "patflow-${substr(var.environment, 0, 3)}"
  tags                = local.tags

  dynamic "email_receiver" {
    for_each = var.alert_emails
    content {
      name                    = "email-${email_receiver.key}"
      email_address           = email_receiver.value
      use_common_alert_schema = true
    }
  }

  dynamic "webhook_receiver" {
    for_each = var.alert_webhook_url == null ? [] : [var.alert_webhook_url]
    content {
      name                    = "webhook"
      service_uri             = webhook_receiver.value
      use_common_alert_schema = true
    }
  }
}

# A Databricks job run (a pipeline step) that failed, from the workspace's job logs.
resource "azurerm_monitor_scheduled_query_rules_alert_v2" "failed_job_runs" {
  name                 = "alert-${local.name}-failed-job-runs"
  resource_group_name  = azurerm_resource_group.this.name
  location             = azurerm_resource_group.this.location
  scopes               = [azurerm_log_analytics_workspace.this.id]
  description          = "A Databricks job run of the pipeline failed."
  severity             = 1
  evaluation_frequency = "PT5M"
  window_duration      = "PT5M"
  tags                 = local.tags

  criteria {
    query                   = <<-KQL
      DatabricksJobs
      | where ActionName == "runFailed"
    KQL
    time_aggregation_method = "Count"
    operator                = "GreaterThan"
    threshold               = 0
  }

  action {
    action_groups = [azurerm_monitor_action_group.on_call.id]
  }

  depends_on = [azurerm_monitor_diagnostic_setting.this]
}

# Events arriving but none read: the landing consumer is down.
resource "azurerm_monitor_metric_alert" "events_not_consumed" {
  name                = "alert-${local.name}-events-not-consumed"
  resource_group_name = azurerm_resource_group.this.name
  scopes              = [azurerm_eventhub_namespace.this.id]
  description         = "Patient events arrive on Event Hubs but no consumer reads them."
  severity            = 2
  frequency           = "PT5M"
  window_size         = "PT15M"
  tags                = local.tags

  criteria {
    metric_namespace = "Microsoft.EventHub/namespaces"
    metric_name      = "OutgoingMessages"
    aggregation      = "Total"
    operator         = "LessThanOrEqual"
    threshold        = 0
  }

  action {
    action_group_id = azurerm_monitor_action_group.on_call.id
  }
}

# Throttled or failed calls to the lake's storage (the landing writer, Spark, Auto Loader).
resource "azurerm_monitor_metric_alert" "storage_availability" {
  name                = "alert-${local.name}-lake-availability"
  resource_group_name = azurerm_resource_group.this.name
  scopes              = [azurerm_storage_account.lake.id]
  description         = "The lake's storage answered less than 99% of requests successfully."
  severity            = 2
  frequency           = "PT5M"
  window_size         = "PT15M"
  tags                = local.tags

  criteria {
    metric_namespace = "Microsoft.Storage/storageAccounts"
    metric_name      = "Availability"
    aggregation      = "Average"
    operator         = "LessThan"
    threshold        = 99
  }

  action {
    action_group_id = azurerm_monitor_action_group.on_call.id
  }
}
