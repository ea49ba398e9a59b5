"""Quality: the Dagster asset checks built from the rules of `model/rules.py`, and the Spark
measures they share."""
