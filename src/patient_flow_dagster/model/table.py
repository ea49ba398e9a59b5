"""What a table of the lake is (`Table`) and how its columns are declared; the tables
themselves are declared in `model/tables.py`.

A `Table` names its layer (and so its zone: `restricted` holds identifiers, `analytics` never
does, see `ZONES`), columns (with what each means), keys, the columns Delta keeps
statistics for, whether it records its changes, and whether a stream feeds it. Everything else is
derived from it: the Dagster asset key (`[layer, name]`), the physical name (a folder under the
lake root, or `<catalog>.<layer>.<name>`, see `resources/lake.py`), the streaming checkpoint of
the stream that writes it (`<layer>_<name>`), the column schema the UI shows, and the Delta
properties a new table is created with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dagster import AssetKey, TableColumn, TableSchema
from pyspark.sql.types import DataType, StructType

from patient_flow_dagster.model.glossary import GLOSSARY

# One quarantine reason: the broken rule, the columns it blames, their values, the rule's text.
REASON_TYPE = "array<struct<rule:string,columns:array<string>,value:string,message:string>>"

# The Delta table property of the change data feed.
CHANGE_FEED = "delta.enableChangeDataFeed"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # Spark's simple type string
    description: str


def columns_of(spec: str, **descriptions: str) -> tuple[Column, ...]:
    """Columns from 'name type, name type, ...', described by the glossary unless overridden."""
    columns = []
    for part in re.split(r",\s*(?=\w+ )", spec):  # not inside decimal(24,2)
        name, kind = part.split()
        columns.append(Column(name, kind, descriptions.get(name) or GLOSSARY[name]))
    return tuple(columns)


# Who may read a layer (a Unity Catalog schema): the restricted zone holds patient and visit
# identifiers (landing, bronze, silver with its quarantine, the identity maps); the analytics
# zone holds none, only pseudonyms (gold, the quality history). docs/privacy.md.
RESTRICTED, ANALYTICS = "restricted", "analytics"
ZONES = {
    "landing": RESTRICTED,
    "bronze": RESTRICTED,
    "silver": RESTRICTED,
    "identity": RESTRICTED,
    "gold": ANALYTICS,
    "quality": ANALYTICS,
}


@dataclass(frozen=True)
class Table:
    layer: str
    name: str
    description: str = field(compare=False)
    columns: tuple[Column, ...] = field(compare=False)
    keys: tuple[str, ...] = field(default=(), compare=False)
    # Delta keeps min/max statistics for these only (data skipping, MERGE file pruning); Delta's
    # default is the first 32 columns, which costs a large write much of its time.
    stats_columns: tuple[str, ...] = field(default=(), compare=False)
    # Readers keep totals of it from its changes (Delta's change data feed).
    change_feed: bool = field(default=False, compare=False)
    # A stream writes it; its checkpoint is `checkpoint`.
    streamed: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def zone(self) -> str:
        return ZONES[self.layer]

    @property
    def key(self) -> AssetKey:
        return AssetKey([self.layer, self.name])

    @property
    def checkpoint(self) -> str:
        """Name of the streaming checkpoint of the stream that writes this table."""
        if not self.streamed:
            raise ValueError(f"no stream writes {self}")
        return f"{self.layer}_{self.name}"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def describe(self, column: str) -> str:
        return next((c.description for c in self.columns if c.name == column), "")

    @property
    def schema(self) -> TableSchema:
        return TableSchema(
            columns=[TableColumn(c.name, c.type, description=c.description) for c in self.columns]
        )

    @property
    def spark_schema(self) -> StructType:
        schema = DataType.fromDDL(", ".join(f"{c.name} {c.type}" for c in self.columns))
        assert isinstance(schema, StructType)  # a list of columns parses as a struct
        return schema

    @property
    def creation_properties(self) -> dict[str, str]:
        """Delta table properties the table gets when it is created."""
        properties = {}
        if self.stats_columns:
            properties["delta.dataSkippingStatsColumns"] = ",".join(self.stats_columns)
        if self.change_feed:
            properties[CHANGE_FEED] = "true"
        return properties
