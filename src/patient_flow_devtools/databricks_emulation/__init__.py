"""A local emulation of the Databricks workspace the step launcher talks to (REST API, job runs on
the cluster's Python, start delays per compute mode, injected faults): for the tests and the
compute-mode benchmark, never for the product."""
