"""Where the service is and which key to send: flags, then the environment, then the local runner's state."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8000"
LOCAL_STATE_FILE = Path(".local") / "runner.json"


def find_state_file(start: Path | None = None) -> Path | None:
    """``.local/runner.json`` (written by ``make run``) in ``start`` or the nearest directory above it,
    up to the repository's root (the first directory holding ``.git``)."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / LOCAL_STATE_FILE
        if candidate.is_file():
            return candidate
        if (directory / ".git").exists():
            return None
    return None


def read_state(path: Path | None) -> dict[str, Any]:
    """The runner's state (``url``, ``api_key``, ...), or {} when it is missing or unreadable."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclasses.dataclass(frozen=True)
class Options:
    url: str
    api_key: str | None
    timeout: float
    json: bool


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def resolve_options(args: Any, env: Mapping[str, str] | None = None) -> Options:
    """``--url``/``--api-key``, else ``TASKRUNNER_URL``/``TASKRUNNER_API_KEY``, else the local runner's
    state file (``--state``, ``TASKRUNNER_STATE``, or found from the current directory up), else
    http://127.0.0.1:8000 without a key. The state's key is sent only to the state's own URL."""
    env = os.environ if env is None else env
    explicit = getattr(args, "state", None) or env.get("TASKRUNNER_STATE")
    state = read_state(Path(explicit) if explicit else find_state_file())
    state_url = _text(state.get("url"))
    url = getattr(args, "url", None) or env.get("TASKRUNNER_URL") or state_url or DEFAULT_URL
    api_key = getattr(args, "api_key", None) or env.get("TASKRUNNER_API_KEY")
    if not api_key and state_url and url.rstrip("/") == state_url.rstrip("/"):
        api_key = _text(state.get("api_key"))
    return Options(
        url=url,
        api_key=api_key,
        timeout=float(getattr(args, "timeout", 30.0)),
        json=bool(getattr(args, "json", False)),
    )
