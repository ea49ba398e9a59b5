"""docs/configuration.md's table, generated from the declarations in `variables.py`.

`patient-flow config-reference` rewrites the table between the markers; a test fails while the
file differs from what this renders, so the reference says word for word what the code declares.
"""

from __future__ import annotations

from pathlib import Path

from patient_flow_dagster.variables import VARIABLES, Variable

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
BEGIN, END = "<!-- variables: generated -->", "<!-- /variables -->"


def _default(variable: Variable) -> str:
    if variable.shown_default is not None:
        return variable.shown_default
    return f"`{variable.default}`" if variable.default is not None else ""


def _resource_field(variable: Variable) -> str:
    return f"`{variable.fills}`" if variable.fills else ""


def render() -> str:
    rows = [
        "| variable | default | resource field | meaning |",
        "|---|---|---|---|",
        *(
            f"| `{v.name}` | {_default(v)} | {_resource_field(v)} | {v.meaning} |"
            for v in VARIABLES
        ),
    ]
    return "\n".join([BEGIN, *rows, END])


def current(path: Path = REFERENCE) -> str:
    """The generated part of the reference as it is on disk."""
    text = path.read_text()
    return text[text.index(BEGIN) : text.index(END) + len(END)]


def write(path: Path = REFERENCE) -> bool:
    """Rewrite the table; True when it changed."""
    text = path.read_text()
    updated = text.replace(current(path), render())
    path.write_text(updated)
    return updated != text
