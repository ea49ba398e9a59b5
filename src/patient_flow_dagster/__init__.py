"""Real-time hospital patient-flow lakehouse on Dagster, PySpark and Delta Lake."""
