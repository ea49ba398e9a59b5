"""Azure Blob Storage / ADLS Gen2 as the landing zone.

Python lists and inspects blobs with azure-storage-blob; Spark reads them through Hadoop's Azure
connector (hadoop-azure, `wasb(s)://` for Blob endpoints, `abfss://` for ADLS Gen2). Credentials
come from the environment (a connection string), are handed to Hadoop's configuration at run
time and never appear in logs, metadata or error texts.
"""

from __future__ import annotations

import io
import time
from functools import cached_property
from urllib.parse import urlparse

from pyspark.sql import SparkSession

from patient_flow_dagster.resources.landing import (
    FileInspection,
    LandingFile,
    LandingZone,
    inspect_parquet,
    is_committed_name,
)
from patient_flow_dagster.variables import resource_field

# Hadoop's WASB driver talks to the local storage emulator (Azurite on 127.0.0.1:10000) when the
# account in the URL is this name.
EMULATOR_ACCOUNT = "storageemulator"
AZURE_SCHEMES = ("wasb", "wasbs", "abfs", "abfss")


def is_azure_url(location: str) -> bool:
    return urlparse(location).scheme in AZURE_SCHEMES


def parse_connection_string(connection_string: str) -> dict[str, str]:
    parts = dict(
        part.split("=", 1)
        for part in connection_string.strip().strip(";").split(";")
        if "=" in part
    )
    if parts.get("UseDevelopmentStorage", "").lower() == "true":
        parts.setdefault("AccountName", "devstoreaccount1")
        parts.setdefault(
            "AccountKey",
            "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
        )
        parts.setdefault("BlobEndpoint", "http://127.0.0.1:10000/devstoreaccount1")
    return parts


class AzureBlobLandingZone(LandingZone):
    """Landing files in an Azure Blob container (optionally under a prefix).

    `url` is what Spark reads, e.g. `abfss://landing@acct.dfs.core.windows.net/patient_events`,
    or `wasb://landing@storageemulator/patient_events` for Azurite; `connection_string` is the
    storage account's (AZURE_STORAGE_CONNECTION_STRING).
    """

    url: str = resource_field("PATIENT_FLOW_LANDING", default=...)
    # A secret: environments.py fills it with an EnvVar, resolved when the resource starts.
    connection_string: str | None = resource_field("AZURE_STORAGE_CONNECTION_STRING")

    @property
    def container(self) -> str:
        return urlparse(self.url).netloc.split("@", 1)[0]

    @property
    def prefix(self) -> str:
        path = urlparse(self.url).path.strip("/")
        return f"{path}/" if path else ""

    @property
    def spark_path(self) -> str:
        return self.url

    def describe(self) -> str:
        return self.url

    @property
    def account_url(self) -> str:
        """The blob endpoint of the container's account (Entra ID sign-in needs no key)."""
        host = urlparse(self.url).netloc.split("@", 1)[-1]
        return f"https://{host.split('.', 1)[0]}.blob.core.windows.net"

    @cached_property
    def _container_client(self):
        """With a connection string (Azurite, a key-based account), or else the process's Entra
        identity (`DefaultAzureCredential`: a managed identity in production), which needs
        Storage Blob Data Contributor on the landing container and nothing else."""
        from azure.storage.blob import BlobServiceClient

        if self.connection_string:
            service = BlobServiceClient.from_connection_string(self.connection_string)
        else:
            from azure.identity import DefaultAzureCredential

            service = BlobServiceClient(self.account_url, credential=DefaultAzureCredential())
        return service.get_container_client(self.container)

    @property
    def archive_location(self) -> str:
        if self.archive:
            return self.archive
        parsed = urlparse(self.url)
        return f"{parsed.scheme}://{parsed.netloc}/{self._archive_prefix}"

    @property
    def _archive_prefix(self) -> str:
        """The archive's prefix in the landing container: beside the landing prefix."""
        if self.archive:
            parsed = urlparse(self.archive)
            if parsed.netloc != urlparse(self.url).netloc:
                raise ValueError(
                    f"the archive {self.archive} must be in the landing container "
                    f"({urlparse(self.url).netloc}): blobs are moved within it"
                )
            path = parsed.path.strip("/")
            return f"{path}/" if path else ""
        return f"{self.prefix.rstrip('/')}_archive/" if self.prefix else "archive/"

    def move_to_archive(self, version: LandingFile, destination: str) -> bool:
        """Server-side copy within the container, then delete the landing blob; both only while
        the blob is still `version` (its ETag, taken with its size and time, must match)."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        source = self._container_client.get_blob_client(self.prefix + version.name)
        try:
            properties = source.get_blob_properties()
        except ResourceNotFoundError:
            return False
        found = LandingFile(version.name, properties.size, properties.last_modified.timestamp())
        if found.key != version.key:
            return False
        target = self._container_client.get_blob_client(self._archive_prefix + destination)
        unchanged = MatchConditions.IfNotModified
        try:
            _copy(
                source,
                target,
                f"archiving {version.name}",
                source_etag=properties.etag,
                source_match_condition=unchanged,
            )
        except ResourceModifiedError:  # rewritten before the copy
            return False
        try:
            source.delete_blob(etag=properties.etag, match_condition=unchanged)
        except ResourceModifiedError:  # rewritten after the copy: keep the new version to ingest
            target.delete_blob()
            return False
        return True

    def restore(self, destination: str, name: str) -> None:
        archived = self._container_client.get_blob_client(self._archive_prefix + destination)
        _copy(
            archived,
            self._container_client.get_blob_client(self.prefix + name),
            f"restoring {destination}",
        )
        archived.delete_blob()

    def in_archive(self, destination: str) -> bool:
        return self._container_client.get_blob_client(self._archive_prefix + destination).exists()

    def list_files(self) -> list[LandingFile]:
        """The committed blobs directly under the prefix (one level: a folder beside or below
        them, such as the archive at the container's root, is not listed blob by blob)."""
        files = []
        for blob in self._container_client.walk_blobs(name_starts_with=self.prefix, delimiter="/"):
            relative = blob.name[len(self.prefix) :]
            if "/" in relative or not is_committed_name(relative):
                continue
            files.append(LandingFile(relative, blob.size, blob.last_modified.timestamp()))
        return sorted(files, key=lambda f: f.name)

    def inspect(self, name: str) -> FileInspection:
        data = self._container_client.download_blob(self.prefix + name).readall()
        return inspect_parquet(io.BytesIO(data))

    def prepare(self, spark: SparkSession) -> None:
        """With a connection string, give Hadoop's Azure connector its account key: a session
        setting, which Spark hands to the file system of every read (never logged). Without
        one, Spark reaches the container as the cluster is allowed to (on Databricks: Unity
        Catalog's external location, through the access connector's identity)."""
        if not self.connection_string:
            return
        parts = parse_connection_string(self.connection_string)
        host = urlparse(self.url).netloc.split("@", 1)[-1]
        account = host.split(".", 1)[0]
        if account == EMULATOR_ACCOUNT:
            return  # the emulator's well-known account and key are built into hadoop-azure
        key = parts.get("AccountKey")
        if not key:
            raise RuntimeError(f"AZURE_STORAGE_CONNECTION_STRING has no AccountKey for {account}")
        suffix = "dfs" if urlparse(self.url).scheme.startswith("abfs") else "blob"
        spark.conf.set(f"fs.azure.account.key.{account}.{suffix}.core.windows.net", key)


def _copy(source, target, what: str, **conditions) -> None:
    """Copy blob `source` onto `target` in the same account (authorized by our credential) and
    wait until the copy has finished."""
    target.start_copy_from_url(source.url, **conditions)
    deadline = time.monotonic() + 60
    while (status := target.get_blob_properties().copy.status) == "pending":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: the copy is still pending after 60 s")
        time.sleep(0.2)
    if status != "success":
        raise RuntimeError(f"{what}: copy {status}")


def landing_blob_writer(url: str, connection_string: str):
    """A function that uploads one Parquet table as a landing blob (a single Put Blob or a block
    list commit: readers see the whole blob or nothing)."""
    import pyarrow.parquet as pq
    from azure.storage.blob import BlobServiceClient

    zone = AzureBlobLandingZone(url=url)
    container = BlobServiceClient.from_connection_string(connection_string).get_container_client(
        zone.container
    )
    if not container.exists():
        container.create_container()

    def write(table, name: str) -> str:
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="snappy")
        container.upload_blob(zone.prefix + name, buffer.getvalue(), overwrite=False)
        return f"{url.rstrip('/')}/{name}"

    return write
