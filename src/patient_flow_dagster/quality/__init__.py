"""Quality rules, declared once, and the Dagster asset checks generated from them."""
