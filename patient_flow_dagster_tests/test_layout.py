"""The dependency rule of docs/architecture.md, checked against the real imports: every import
between the product's units is one the table allows, so the picture and the code agree."""

import ast
import re
from pathlib import Path

from patient_flow_devtools import CHECKOUT

PACKAGE = CHECKOUT / "src" / "patient_flow_dagster"


def declared_rule() -> dict[str, set[str]]:
    text = (CHECKOUT / "docs" / "architecture.md").read_text()
    table = text.split("<!-- dependency-rule -->")[1].split("<!-- /dependency-rule -->")[0]
    rule = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            rule[cells[0].strip("`")] = set(re.findall(r"`(\w+)`", cells[1]))
    return rule


def unit_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "patient_flow_dagster" and len(parts) > 1 else None


def imports(package: Path = PACKAGE) -> dict[str, set[tuple[str, Path]]]:
    """{unit: {(unit it imports, file)}} from every module of the package."""
    found: dict[str, set[tuple[str, Path]]] = {}
    for path in package.rglob("*.py"):
        relative = path.relative_to(package)
        if relative == Path("__init__.py"):
            continue
        unit = relative.parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "patient_flow_dagster":
                    targets = [alias.name for alias in node.names]
                elif target := unit_of(node.module):
                    targets = [target]
            elif isinstance(node, ast.Import):
                targets = [t for alias in node.names if (t := unit_of(alias.name))]
            found.setdefault(unit, set()).update((t, relative) for t in targets if t != unit)
    return found


def test_every_import_is_one_the_architecture_allows():
    rule = declared_rule()
    found = imports()
    assert set(found) == set(rule), "units in the code and in the table differ"
    wrong = sorted(
        f"{path}: {unit} imports {target}"
        for unit, edges in found.items()
        for target, path in edges
        if target not in rule[unit]
    )
    assert not wrong, "\n".join(wrong)
    # The table allows nothing the code does not use: it stays a picture of the code.
    unused = sorted(
        f"{unit} -> {target}"
        for unit, allowed in rule.items()
        for target in allowed
        if target not in {t for t, _ in found[unit]}
    )
    assert not unused, unused


def test_the_rule_catches_an_import_that_runs_back_up(tmp_path):
    """A model module importing an asset is reported, naming the file."""
    package = tmp_path / "src" / "patient_flow_dagster"
    (package / "model").mkdir(parents=True)
    (package / "assets").mkdir()
    (package / "model" / "tables.py").write_text("from patient_flow_dagster.assets import gold\n")
    (package / "assets" / "gold.py").write_text("from patient_flow_dagster.model import tables\n")
    found = imports(package)
    assert ("assets", Path("model/tables.py")) in found["model"]
    assert ("model", Path("assets/gold.py")) in found["assets"]
