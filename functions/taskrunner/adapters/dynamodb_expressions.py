"""DynamoDB expressions built from attribute names and values, with stable placeholders.

Every attribute name goes through a placeholder (``#`` and the name, so a reserved word such
as ``status`` or ``name`` needs no care) and every value through one (``:`` and a hint, the
attribute's name by default; a second, different value for the same hint gets ``_2``, ``_3``,
...). Only placeholders an expression uses are sent, as DynamoDB requires.

    update = UpdateExpression()
    update.set("status", {"S": "RUNNING"}).increment("version").remove("lease_expires_at")
    condition = update.is_in("status", [{"S": "PENDING"}, {"S": "RETRYING"}])
    client.update_item(..., **update.request(condition))
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_SAFE = re.compile(r"[A-Za-z0-9_]+")


def all_of(*clauses: str) -> str:
    """The clauses joined with AND (a compound clause in parentheses)."""
    return " AND ".join(_grouped(c, len(clauses)) for c in clauses)


def any_of(*clauses: str) -> str:
    """The clauses joined with OR (a compound clause in parentheses)."""
    return " OR ".join(_grouped(c, len(clauses)) for c in clauses)


def _grouped(clause: str, count: int) -> str:
    return f"({clause})" if count > 1 and (" AND " in clause or " OR " in clause) else clause


class Expression:
    """The placeholders of one request's expressions (key condition, filter, condition), and
    the condition clauses, each returned as text that uses them."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def copy(self) -> Expression:
        twin = type(self)()
        twin.names, twin.values = dict(self.names), dict(self.values)
        return twin

    def name(self, attribute: str) -> str:
        """The placeholder of ``attribute``: ``#`` and its name (or a numbered one when the
        name has characters a placeholder cannot hold)."""
        known = next((p for p, a in self.names.items() if a == attribute), None)
        if known is not None:
            return known
        placeholder, n = (f"#{attribute}" if _SAFE.fullmatch(attribute) else "#n0"), 0
        while placeholder in self.names:
            n += 1
            placeholder = f"#n{n}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any, hint: str) -> str:
        """The placeholder of ``value`` (a DynamoDB attribute value): ``:`` and ``hint``; the
        same value under the same hint shares it."""
        placeholder, n = f":{hint}", 1
        while self.values.get(placeholder, value) != value:
            n += 1
            placeholder = f":{hint}_{n}"
        self.values[placeholder] = value
        return placeholder

    # -- clauses of a condition, filter or key condition ----------------------------------
    def compare(self, attribute: str, op: str, value: Any, *, hint: str | None = None) -> str:
        """``attribute op value``; ``op`` is one of = <> < <= > >=."""
        if op not in ("=", "<>", "<", "<=", ">", ">="):
            raise ValueError(f"not a comparison: {op!r}")
        return f"{self.name(attribute)} {op} {self.value(value, hint or attribute)}"

    def equals(self, attribute: str, value: Any, *, hint: str | None = None) -> str:
        return self.compare(attribute, "=", value, hint=hint)

    def is_in(self, attribute: str, values: Iterable[Any], *, hint: str | None = None) -> str:
        """``attribute IN (...)``, one placeholder per value (``:<hint>0``, ``:<hint>1``, ...)."""
        hint = hint or attribute
        refs = [self.value(v, f"{hint}{k}") for k, v in enumerate(values)]
        if not refs:
            raise ValueError("IN needs at least one value")
        return f"{self.name(attribute)} IN ({', '.join(refs)})"

    def exists(self, attribute: str) -> str:
        return f"attribute_exists({self.name(attribute)})"

    def not_exists(self, attribute: str) -> str:
        return f"attribute_not_exists({self.name(attribute)})"

    def begins_with(self, attribute: str, prefix: Any, *, hint: str | None = None) -> str:
        return f"begins_with({self.name(attribute)}, {self.value(prefix, hint or attribute)})"

    def placeholders(self) -> dict[str, Any]:
        """ExpressionAttributeNames and ExpressionAttributeValues (each only when not empty)."""
        request: dict[str, Any] = {}
        if self.names:
            request["ExpressionAttributeNames"] = dict(self.names)
        if self.values:
            request["ExpressionAttributeValues"] = dict(self.values)
        return request


ONE = {"N": "1"}
ZERO = {"N": "0"}


class UpdateExpression(Expression):
    """An UpdateItem's SET and REMOVE actions (and its condition's placeholders)."""

    def __init__(self) -> None:
        super().__init__()
        self._sets: list[str] = []
        self._removes: dict[str, str] = {}  # placeholder -> attribute, in order, once each

    def set(self, attribute: str, value: Mapping[str, Any] | None, *, hint: str | None = None) -> UpdateExpression:
        """``SET attribute = value``; a value of None removes the attribute instead."""
        if value is None:
            return self.remove(attribute)
        return self.set_to(attribute, self.value(value, hint or attribute))

    def set_if_absent(self, attribute: str, value: Mapping[str, Any], *, hint: str | None = None) -> UpdateExpression:
        """``SET attribute = if_not_exists(attribute, value)``: the first value written stays."""
        return self.set_from(attribute, attribute, value, hint=hint)

    def set_from(
        self, attribute: str, source: str, default: Mapping[str, Any], *, hint: str | None = None
    ) -> UpdateExpression:
        """``SET attribute = if_not_exists(source, default)``: ``source`` as the item was
        before this update (an update expression reads the item as it was)."""
        value = self.value(default, hint or attribute)
        return self.set_to(attribute, f"if_not_exists({self.name(source)}, {value})")

    def increment(self, attribute: str, *, from_zero: bool = False) -> UpdateExpression:
        """``SET attribute = attribute + 1`` (``from_zero``: 1 when the attribute is absent)."""
        current = self.name(attribute)
        if from_zero:
            current = f"if_not_exists({current}, {self.value(ZERO, 'zero')})"
        return self.set_to(attribute, f"{current} + {self.value(ONE, 'one')}")

    def set_to(self, attribute: str, operand: str) -> UpdateExpression:
        """``SET attribute = operand``, an operand written with this expression's placeholders."""
        self._sets.append(f"{self.name(attribute)} = {operand}")
        return self

    def remove(self, attribute: str) -> UpdateExpression:
        self._removes.setdefault(self.name(attribute), attribute)
        return self

    @property
    def removed(self) -> list[str]:
        """The attributes the update removes."""
        return list(self._removes.values())

    def expression(self) -> str:
        clauses = []
        if self._sets:
            clauses.append("SET " + ", ".join(self._sets))
        if self._removes:
            clauses.append("REMOVE " + ", ".join(self._removes))
        if not clauses:
            raise ValueError("an update with nothing to set or remove")
        return " ".join(clauses)

    def request(self, condition: str = "") -> dict[str, Any]:
        """UpdateExpression, ConditionExpression (when given) and the placeholders."""
        request: dict[str, Any] = {"UpdateExpression": self.expression()}
        if condition:
            request["ConditionExpression"] = condition
        return {**request, **self.placeholders()}
