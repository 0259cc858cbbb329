"""What may be stored: valid, bounded JSON. Pure: no I/O.

Every free-form value a task carries (parameters, metadata, result) is checked before it is
stored, and every value read back is checked again before it is served, so one bad item
(written by an older version, say) can never turn a read into a server error.

Refused: strings or keys holding lone surrogates (not encodable as UTF-8), NaN and
±Infinity (not JSON), nesting deeper than ``MAX_DEPTH``, integers too long to print
(over ``MAX_INT_BITS`` bits) and anything that is not a JSON type.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 32
# Python prints at most 4300 digits of an int by default; stay well inside it.
MAX_INT_BITS = 14_000


class UnsafeJsonError(ValueError):
    """A value that cannot be stored as JSON; ``path`` is where inside it (keys and indexes)."""

    def __init__(self, path: tuple[str | int, ...], reason: str, kind: str) -> None:
        self.path = path
        self.reason = reason
        self.kind = kind
        super().__init__(f"{reason} at {describe(path)}" if path else reason)


def describe(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{printable(part)}"
    return out.lstrip(".") or "(top)"


def printable(text: str) -> str:
    """``text`` with lone surrogates written as \\udxxx escapes: always encodable."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _check_str(text: str, path: tuple[str | int, ...], what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeJsonError(path, f"{what} holds a lone surrogate (not valid Unicode)", "lone_surrogate") from None


def check(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise UnsafeJsonError unless ``value`` is JSON this service can store and serve.

    Iterative, and stops at ``max_depth``: any input, however deep, is checked safely."""
    stack: list[tuple[Any, tuple[str | int, ...], int]] = [(value, (), 0)]
    while stack:
        item, path, depth = stack.pop()
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            _check_str(item, path, "string")
        elif isinstance(item, int):
            if item.bit_length() > MAX_INT_BITS:
                raise UnsafeJsonError(path, f"integer longer than {MAX_INT_BITS} bits", "integer_too_large")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise UnsafeJsonError(path, f"{item} is not a JSON number (NaN and Infinity are refused)", "non_finite")
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                raise UnsafeJsonError(path, f"nested deeper than {max_depth} levels", "too_deep")
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise UnsafeJsonError(path, f"object key {key!r} is not a string", "not_json")
                    _check_str(key, (*path, key), "key")
                    stack.append((child, (*path, key), depth + 1))
            else:
                stack.extend((child, (*path, i), depth + 1) for i, child in enumerate(item))
        else:
            raise UnsafeJsonError(path, f"a {type(item).__name__} is not a JSON value", "not_json")


def is_safe(value: Any) -> bool:
    try:
        check(value)
    except UnsafeJsonError:
        return False
    return True


def normalise(value: Any) -> Any:
    """A value a task returned, as the JSON that is stored (non-JSON types as their str()).

    Raises UnsafeJsonError when it cannot be stored as valid, bounded JSON."""
    try:
        # NaN and Infinity pass here and come back as floats, for check() to refuse with their path
        encoded = json.dumps(value, default=str, separators=(",", ":"))
    except RecursionError:
        raise UnsafeJsonError((), f"nested deeper than {MAX_DEPTH} levels", "too_deep") from None
    except ValueError as exc:  # an int too long to print
        raise UnsafeJsonError((), str(exc), "not_json") from None
    decoded = json.loads(encoded)
    check(decoded)
    return decoded


def loads(raw: str) -> Any:
    """Stored JSON text back to a value; UnsafeJsonError (never another error) if it is not safe."""
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise UnsafeJsonError((), "stored value is nested too deep to read", "too_deep") from None
    except ValueError as exc:
        raise UnsafeJsonError((), f"stored value is not valid JSON: {exc}", "not_json") from None
    check(value)
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def unreadable(field: str, exc: UnsafeJsonError) -> dict[str, Any]:
    """What is served in place of a stored field that is not safe JSON."""
    return {"unreadable": True, "field": field, "reason": printable(str(exc))}
