variable "environment" {
  description = "Deployment: dev, test or prod. Names the resources and the Unity Catalog catalog."
  type        = string

  validation {
    condition     = contains(["dev", "test", "prod"], var.environment)
    error_message = "environment must be dev, test or prod."
  }
}

variable "location" {
  description = "Azure region."
  type        = string
  default     = "westeurope"
}

variable "name_prefix" {
  description = "Short lowercase prefix of every resource name (storage account names allow 3-24 lowercase letters and digits)."
  type        = string
  default     = "patflow"
}

variable "metastore_id" {
  description = "Id of the region's Unity Catalog metastore the workspace is assigned to."
  type        = string
}

variable "eventhub_partitions" {
  description = "Partitions of the patient-events hub (the unit of consumer parallelism)."
  type        = number
  default     = 4
}

variable "eventhub_retention_days" {
  description = "Days the hub keeps events (replay window after a consumer outage)."
  type        = number
  default     = 7
}

variable "eventhub_sku" {
  description = "Event Hubs tier: Standard has the Kafka endpoint the Kafka-protocol consumer uses."
  type        = string
  default     = "Standard"
}

variable "databricks_sku" {
  description = "Databricks workspace tier (premium is required for Unity Catalog)."
  type        = string
  default     = "premium"
}

variable "dagster_secret_lifetime_days" {
  description = "Lifetime of the OAuth secret of Dagster's service principal (stored in Key Vault); rotate by re-applying."
  type        = number
  default     = 90
}

variable "spark_version" {
  description = "Databricks runtime of the job clusters (the packaged cluster spec's)."
  type        = string
  default     = "17.3.x-scala2.13"
}

variable "job_node_type" {
  description = "VM size of the job clusters' pool."
  type        = string
  default     = "Standard_D4ds_v5"
}

variable "pool_min_idle_instances" {
  description = "Warm VMs the pool keeps idle (0: no idle cost, cold starts)."
  type        = number
  default     = 1
}

variable "pool_max_capacity" {
  description = "Most VMs the pool holds (drivers and workers of every job cluster at once)."
  type        = number
  default     = 12
}

variable "pool_idle_minutes" {
  description = "Minutes an idle VM above min_idle_instances stays in the pool."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags added to every Azure resource."
  type        = map(string)
  default     = {}
}

variable "log_retention_days" {
  description = "Days the Log Analytics workspace keeps logs."
  type        = number
  default     = 30
}

variable "alert_emails" {
  description = "Addresses the action group e-mails (the people on call for the pipeline)."
  type        = list(string)
  default     = []
}

variable "alert_webhook_url" {
  description = "Incoming webhook (Teams or Slack) of the action group; a secret, pass it as TF_VAR_alert_webhook_url."
  type        = string
  default     = null
  sensitive   = true
}

variable "hospital_ids" {
  description = "Hospital numbers (hospital_id) that get an analyst group of their own, which sees only that hospital's rows of the analytics zone."
  type        = list(number)
  default     = []
}

variable "event_sender_principal_ids" {
  description = "Object ids of the Entra identities that send patient events (the interface engine, the simulator): Azure Event Hubs Data Sender on the hub."
  type        = list(string)
  default     = []
}
