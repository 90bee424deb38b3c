"""What the connected Northbound schema can do, read at connect time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Capabilities:
    schema_version: str
    policy_bfd_sessions: bool  # Logical_Router_Policy.bfd_sessions (OVN >= 24.03)
    route_table: bool  # Logical_Router_Static_Route.route_table

    @classmethod
    def from_schema(cls, schema: Any) -> Capabilities:
        tables = schema.get("tables", {})

        def has(table: str, column: str) -> bool:
            return column in tables.get(table, {}).get("columns", {})

        return cls(
            schema_version=str(schema.get("version", "")),
            policy_bfd_sessions=has("Logical_Router_Policy", "bfd_sessions"),
            route_table=has("Logical_Router_Static_Route", "route_table"),
        )
