"""Thin Dagster assets: wire the transforms to the lake and report what they did."""
