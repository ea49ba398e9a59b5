"""The smallest shim over dagster-databricks (volume staging, which it has no hook for) still
fits the library it was written against: an upgrade that moves what the shim relies on fails
here, loudly, rather than in a production step."""

import inspect
from importlib.metadata import version

from dagster_databricks.databricks import DatabricksJobRunner
from dagster_databricks.databricks_pyspark_step_launcher import DatabricksPySparkStepLauncher

from patient_flow_dagster.resources.databricks import SHIM_WRITTEN_AGAINST, VolumeStaging


def test_the_volume_staging_shim_fits_the_installed_dagster_databricks():
    assert version("dagster-databricks") == SHIM_WRITTEN_AGAINST, (
        "dagster-databricks changed: check the overrides in resources/databricks.py "
        "(CheckedStepLauncher, VolumeStaging) against it, then update SHIM_WRITTEN_AGAINST"
    )
    # The two path methods the launcher overrides, with the arguments it passes on.
    for name in ("_dbfs_path", "_internal_dbfs_path"):
        parameters = inspect.signature(getattr(DatabricksPySparkStepLauncher, name)).parameters
        assert list(parameters) == ["self", "run_id", "step_key", "filename"], name
    assert DatabricksPySparkStepLauncher._sanitize_step_key(None, "a[0]") == "a__0__"
    # The runner keeps its client in `_client` and hands it out as `client`; the launcher's file
    # transfer calls put_file and read_file on it, which VolumeStaging provides.
    assert "self._client" in inspect.getsource(DatabricksJobRunner.__init__)
    assert "return self._client" in inspect.getsource(DatabricksJobRunner)
    launcher_source = inspect.getsource(DatabricksPySparkStepLauncher)
    for call in ("client.put_file(", "client.read_file("):
        assert call in launcher_source, call
        assert callable(getattr(VolumeStaging, call.split(".")[1].rstrip("(")))
