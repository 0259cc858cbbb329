"""Identity-based policy evaluation: an explicit Deny wins over an Allow, no Allow is an
implicit deny; Action/NotAction, Resource/NotResource, ``*`` and ``?`` wildcards, action names
case-insensitive. A statement with a Condition is not evaluated: it never matches, and the
decision says so.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@functools.lru_cache(maxsize=4096)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _any(patterns: Iterable[re.Pattern[str]], value: str) -> bool:
    return any(p.fullmatch(value) for p in patterns)


@dataclasses.dataclass(frozen=True)
class Decision:
    allowed: bool
    explicit_deny: bool = False
    by: str = ""  # the statement (and its resource) that decided
    note: str = ""  # statements not evaluated (conditions)


class Statement:
    def __init__(self, data: Mapping[str, Any]) -> None:
        self.source = str(data.get("Source", data.get("Sid", "")))
        self.effect = str(data.get("Effect", ""))
        self.data = data
        self.not_action = "NotAction" in data
        self.not_resource = "NotResource" in data
        self.actions = [_glob(a, True) for a in as_list(data.get("NotAction" if self.not_action else "Action", []))]
        res_key = "NotResource" if self.not_resource else "Resource"
        self.resource_texts = [str(r) for r in as_list(data.get(res_key, []))]
        self.resources = [_glob(r, False) for r in self.resource_texts]
        self.has_resource = "Resource" in data or "NotResource" in data
        self.condition = data.get("Condition")

    def applies(self, action: str, resource: str) -> bool:
        """Whether the statement covers the request, its Condition aside."""
        if self.not_action == _any(self.actions, action):
            return False
        return self.has_resource and self.not_resource != _any(self.resources, resource)

    def describe(self, resource: str) -> str:
        if self.not_resource:
            return f"{self.source} (NotResource {', '.join(self.resource_texts)})"
        matched = next(
            (t for t, p in zip(self.resource_texts, self.resources, strict=True) if p.fullmatch(resource)), ""
        )
        return f"{self.source} on {matched}"


class Policy:
    """The identity-based policies of one principal."""

    def __init__(self, statements: Iterable[Mapping[str, Any]]) -> None:
        self.statements = [Statement(s) for s in statements]

    def evaluate(self, action: str, resource: str) -> Decision:
        allow: Statement | None = None
        skipped: list[str] = []
        for stmt in self.statements:
            if not stmt.applies(action, resource):
                continue
            if stmt.condition:
                skipped.append(f"{stmt.source} has a Condition, not evaluated locally: treated as not matching")
                continue
            if stmt.effect == "Deny":
                return Decision(False, True, stmt.describe(resource), "; ".join(skipped))
            if stmt.effect == "Allow" and allow is None:
                allow = stmt
        if allow is not None:
            return Decision(True, False, allow.describe(resource), "; ".join(skipped))
        return Decision(False, False, "", "; ".join(skipped))
