"""Development tools beside the product: the benchmark, the engine floor, the local Kafka broker,
the JVM class-archive builder and the warm Spark driver's server.

They depend on `patient_flow_dagster`; the product never imports them. Their commands join the
`patient-flow` CLI through the `patient_flow.commands` entry point. They run from a checkout
(`CHECKOUT` holds `tools/`, `config/` and `workspace.yaml`).
"""

from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
