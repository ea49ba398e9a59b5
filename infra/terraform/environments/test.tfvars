environment = "test"
location    = "westeurope"
name_prefix = "patflow"

# Unity Catalog metastore of the region (Databricks account console -> Catalog -> Metastores).
metastore_id = "00000000-0000-0000-0000-000000000000"

eventhub_partitions     = 2
eventhub_retention_days = 3
log_retention_days      = 30
alert_emails            = ["patient-flow-test@hospital.example"]
