"""DynamoDB's capacity arithmetic: item sizes by DynamoDB's rules, and the write units of a
write to a table and to each of its indexes (from template.yaml's key schemas and projections).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

KB = 1024


def attribute_size(value: dict[str, Any]) -> int:
    """Bytes of one DynamoDB attribute value, by DynamoDB's item-size rules."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        digits = data.lstrip("-").replace(".", "").lstrip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(attribute_size({kind[0]: x}) for x in data)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + attribute_size(v) for k, v in data.items())
    if kind == "L":
        return 3 + sum(1 + attribute_size(v) for v in data)
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


@dataclasses.dataclass(frozen=True)
class Index:
    name: str
    keys: tuple[str, ...]
    projection: str  # ALL | KEYS_ONLY | INCLUDE
    include: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class TableSpec:
    logical: str
    keys: tuple[str, ...]
    indexes: tuple[Index, ...]

    def projected(self, index: Index, item: dict[str, Any]) -> dict[str, Any]:
        if index.projection == "ALL":
            return item
        names = {*self.keys, *index.keys, *index.include}
        return {k: v for k, v in item.items() if k in names}

    def write_units(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> tuple[float, dict[str, float]]:
        """WRU of one write to the table and, separately, to each index it touches: an
        item's size rounded up to 1 KB (the larger of before and after); an index pays a put
        when an item enters it, a delete when it leaves, both when its key changes, and an
        update when only projected attributes change."""
        base = float(max(1, math.ceil(max(item_size(old), item_size(new)) / KB)))
        per_index: dict[str, float] = {}
        for index in self.indexes:
            was = old is not None and all(k in old for k in index.keys)
            now = new is not None and all(k in new for k in index.keys)
            units = 0.0

            def size(item: dict[str, Any], index: Index = index) -> float:
                return float(max(1, math.ceil(item_size(self.projected(index, item)) / KB)))

            if was and now:
                assert old is not None and new is not None
                if any(old[k] != new[k] for k in index.keys):
                    units = size(old) + size(new)
                elif self.projected(index, old) != self.projected(index, new):
                    units = max(size(old), size(new))
            elif now:
                assert new is not None
                units = size(new)
            elif was:
                assert old is not None
                units = size(old)
            if units:
                per_index[index.name] = units
        return base, per_index


def table_specs(template: dict[str, Any], prefix: str) -> dict[str, TableSpec]:
    """Physical table name -> its keys and indexes, from template.yaml."""
    from infra.local.provision import physical_name
    from infra.local.template import resources_of

    specs = {}
    for logical, res in resources_of(template, "AWS::DynamoDB::Table").items():
        props = res["Properties"]
        indexes = tuple(
            Index(
                g["IndexName"],
                tuple(k["AttributeName"] for k in g["KeySchema"]),
                g["Projection"]["ProjectionType"],
                tuple(g["Projection"].get("NonKeyAttributes", ())),
            )
            for g in props.get("GlobalSecondaryIndexes", [])
        )
        specs[physical_name(logical, prefix)] = TableSpec(
            logical, tuple(k["AttributeName"] for k in props["KeySchema"]), indexes
        )
    return specs
