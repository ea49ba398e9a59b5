environment = "prod"
location    = "westeurope"
name_prefix = "patflow"

# Unity Catalog metastore of the region (Databricks account console -> Catalog -> Metastores).
metastore_id = "00000000-0000-0000-0000-000000000000"

eventhub_partitions     = 8
eventhub_retention_days = 7

tags = {
  criticality = "high"
  data        = "phi"
}
pool_min_idle_instances = 2  # a batch never waits for a VM

log_retention_days = 90
alert_emails       = ["patient-flow-oncall@hospital.example"]
