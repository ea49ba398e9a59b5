environment = "dev"
location    = "westeurope"
name_prefix = "patflow"

# Unity Catalog metastore of the region (Databricks account console -> Catalog -> Metastores).
metastore_id = "00000000-0000-0000-0000-000000000000"

eventhub_partitions     = 2
eventhub_retention_days = 1
pool_min_idle_instances = 0  # no idle VM cost; a batch pays cold starts
log_retention_days      = 30
alert_emails            = []
