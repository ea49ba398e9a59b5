"""Pure PySpark transforms, DataFrame -> DataFrame, with no Dagster import.

Each layer's logic lives here so that it can be unit-tested on small frames; the assets only wire
these functions to storage.
"""
