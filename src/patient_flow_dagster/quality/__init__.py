"""Quality: the Spark measures the asset checks compute (pure DataFrame -> figures) and the
quality policy resource. The checks themselves are declared beside the assets they check
(`assets/*_checks.py`)."""
