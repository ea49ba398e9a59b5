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

variable "tags" {
  description = "Tags added to every Azure resource."
  type        = map(string)
  default     = {}
}
