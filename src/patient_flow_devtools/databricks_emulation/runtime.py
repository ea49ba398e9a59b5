"""The Python an emulated Databricks cluster runs: what the runtime ships plus the task's
`libraries`, and nothing else.

A task of the emulation runs in a virtual environment of its own whose site-packages mirror
(by symbolic links) the distributions a Databricks runtime provides and those the cluster spec's
`libraries` install, each with its whole dependency closure, as pip would install them. The
project itself is not there: a remote step imports it from the code zip the launcher uploads,
as on a real cluster, so a broken zip or a library missing from the spec fails the task here
as it would there.
"""

from __future__ import annotations

import re
import shutil
import venv
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

# What a Databricks Runtime's Python environment ships (a subset of its "Installed Python
# libraries"): PySpark and Delta are the runtime's own, the rest the usual data stack.
RUNTIME_LIBRARIES = (
    "pyspark",
    "delta-spark",
    "py4j",
    "numpy",
    "pandas",
    "pyarrow",
    "requests",
    "urllib3",
    "certifi",
    "idna",
    "charset-normalizer",
    "six",
    "python-dateutil",
    "pytz",
    "tzdata",
    "typing-extensions",
    "packaging",
    "protobuf",
    "grpcio",
    "googleapis-common-protos",
    "databricks-sdk",
    "matplotlib",
)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class LibraryNotFound(Exception):
    """A library (or one of its dependencies) no index would serve: here, not installed."""


def closure(requirements: Iterable[str]) -> dict[str, object]:
    """Every distribution the requirements pull in, by canonical name (markers evaluated for
    this interpreter, extras followed)."""
    found: dict[str, object] = {}
    pending = [(Requirement(r), frozenset()) for r in requirements]
    seen: set[tuple[str, frozenset]] = set()
    while pending:
        requirement, _ = pending.pop()
        name = canonical(requirement.name)
        key = (name, frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = found.get(name) or distribution(requirement.name)
        except PackageNotFoundError:
            raise LibraryNotFound(str(requirement)) from None
        if requirement.specifier and not requirement.specifier.contains(
            dist.version, prereleases=True
        ):
            raise LibraryNotFound(f"{requirement} (only {dist.version} exists)")
        found[name] = dist
        for line in dist.requires or []:
            child = Requirement(line)
            if child.marker and not any(
                child.marker.evaluate({**default_environment(), "extra": extra})
                for extra in (requirement.extras or {""})
            ):
                continue
            pending.append((child, frozenset()))
    return found


def installed(names: Iterable[str]) -> list[str]:
    """The runtime libraries this machine has (the emulation can provide no others)."""
    present = []
    for name in names:
        try:
            distribution(name)
        except PackageNotFoundError:
            continue
        present.append(name)
    return present


def build_environment(target: Path, libraries: Iterable[str]) -> Path:
    """A virtual environment at `target` holding the runtime's libraries and `libraries`;
    returns its Python. Raises LibraryNotFound for a library that cannot be installed."""
    dists = {**closure(installed(RUNTIME_LIBRARIES)), **closure(libraries)}
    if target.exists():
        shutil.rmtree(target)
    venv.EnvBuilder(with_pip=False, symlinks=True).create(target)
    [site] = target.glob("lib/python3*/site-packages")
    for dist in dists.values():
        for file in dist.files or []:
            source = Path(dist.locate_file(file)).resolve()
            relative = Path(file)
            if relative.parts[0] == ".." or "__pycache__" in relative.parts:
                continue  # scripts in bin/, compiled caches
            if relative.suffix == ".pth" or not source.is_file():
                continue  # an editable install's path entries
            link = site / relative
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(source)
    return target / "bin" / "python"
