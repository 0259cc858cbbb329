"""ARCHITECTURE.md's map, kept true: which way the product's imports point.

Layers of ``functions/taskrunner`` (a module may import its own layer and those listed for it):

    domain        <- nothing of ours; the standard library only (no AWS, no web framework)
    config        <- domain
    tasks         <- domain (and pydantic, for parameter models)
    adapters      <- domain, config
    observability <- nothing of ours
    bootstrap     <- domain, config, adapters, tasks, observability (the composition root)
    entrypoints   <- everything above (the handlers)

and nothing in the product imports the local runner (``infra``), the tests or the CLI.

Also: no module of the code we ship or run (functions/, cli/, infra/, bench/, examples/) is
over about 400 lines without saying at its top why.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "functions" / "taskrunner"

ALLOWED: dict[str, set[str]] = {
    "taskrunner": set(),  # the package's own __init__ (empty)
    "domain": set(),
    "config": {"domain"},
    "tasks": {"domain"},
    "adapters": {"domain", "config"},
    "observability": set(),
    "bootstrap": {"domain", "config", "adapters", "tasks", "observability"},
    "entrypoints": {"domain", "config", "adapters", "tasks", "observability", "bootstrap"},
}
# what a layer may import from outside the product, beyond the standard library
THIRD_PARTY: dict[str, set[str] | None] = {
    "taskrunner": set(),
    "domain": set(),
    "config": set(),
    "tasks": {"pydantic"},
    "adapters": None,  # any (boto3, botocore, Powertools...)
    "observability": None,
    "bootstrap": None,
    "entrypoints": None,
}
NEVER = {"infra", "tests", "taskrunner_cli", "bench", "moto"}


def _layer(module: str) -> str:
    parts = [part for part in module.split(".") if part != "__init__"]
    return parts[1] if len(parts) > 1 else parts[0]


def _imports(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in the file; ``root`` is the package's folder."""
    module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                if not node.module:  # "from . import x": each x is a module of that package
                    found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
                    continue
            else:
                target = node.module or ""
            found.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


def violations(path: Path, root: Path = PACKAGE) -> list[str]:
    """The imports of one module that point against the direction."""
    module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
    layer = _layer(module)
    if layer not in ALLOWED:
        return [f"{module}: a module outside the map; add its layer to ARCHITECTURE.md and this test"]
    wrong = []
    for line, target in _imports(path, root):
        top = target.split(".")[0]
        if top == "taskrunner":
            other = _layer(target)
            if other != layer and other not in ALLOWED[layer]:
                wrong.append(f"line {line}: {layer} imports {target} ({other})")
        elif top in NEVER:
            wrong.append(f"line {line}: the product imports {target}")
        elif top != "__future__" and top not in sys.stdlib_module_names:
            allowed = THIRD_PARTY[layer]
            if allowed is not None and top not in allowed:
                wrong.append(f"line {line}: {layer} imports the third-party package {top}")
    return wrong


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_the_right_way(path: Path) -> None:
    wrong = violations(path)
    assert not wrong, f"{path.relative_to(PACKAGE)} imports against the direction:\n" + "\n".join(wrong)


def test_the_check_sees_imports_against_the_direction(tmp_path: Path) -> None:
    root = tmp_path / "taskrunner"
    (root / "domain").mkdir(parents=True)
    (root / "tasks").mkdir()
    bad_domain = root / "domain" / "models.py"
    bad_domain.write_text("from ..adapters.aws import unavailable\nimport boto3\nfrom . import jsonsafe\n")
    bad_task = root / "tasks" / "sleep.py"
    bad_task.write_text("from ..bootstrap import get_services\nfrom infra.local import exceptions\n")
    assert violations(bad_domain, root) == [
        "line 1: domain imports taskrunner.adapters.aws (adapters)",
        "line 2: domain imports the third-party package boto3",
    ]
    assert violations(bad_task, root) == [
        "line 1: tasks imports taskrunner.bootstrap (bootstrap)",
        "line 2: the product imports infra.local",
    ]


ROOT = PACKAGE.parents[1]
# every folder of code we ship or run (not the tests)
CODE_FOLDERS = ("functions", "cli", "infra", "bench", "examples")
MAX_LINES = 420  # about 400


def _code_modules() -> list[Path]:
    return sorted(
        p
        for folder in CODE_FOLDERS
        for p in (ROOT / folder).rglob("*.py")
        if not any(part == "__pycache__" or part.startswith(".") for part in p.relative_to(ROOT).parts)
    )


def too_long(path: Path) -> int | None:
    """The module's line count if it is over about 400 lines and its docstring does not say
    why ("Longer than..."); None if it is fine."""
    text = path.read_text()
    lines = text.count("\n")
    doc = ast.get_docstring(ast.parse(text)) or ""
    return lines if lines > MAX_LINES and "Longer than" not in doc else None


def test_no_module_we_ship_or_run_is_over_about_400_lines_without_a_reason() -> None:
    """About 400 lines at most (420) in functions/, cli/, infra/, bench/ and examples/; a longer
    module says at its top why ("Longer than...")."""
    long = []
    for path in _code_modules():
        name = path.relative_to(ROOT).as_posix()
        lines = too_long(path)
        if lines is not None:
            long.append(f"{name}: {lines} lines")
    assert not long, "over ~400 lines with no reason at the top:\n" + "\n".join(long)


def test_the_size_check_sees_a_long_module_without_a_reason(tmp_path: Path) -> None:
    body = "x = 1\n" * 430
    plain = tmp_path / "plain.py"
    plain.write_text('"""A module."""\n' + body)
    reasoned = tmp_path / "reasoned.py"
    reasoned.write_text('"""A module.\n\nLonger than ~400 lines: one protocol, kept together.\n"""\n' + body)
    short = tmp_path / "short.py"
    short.write_text('"""A module."""\n' + "x = 1\n" * 400)
    assert too_long(plain) == 431
    assert too_long(reasoned) is None
    assert too_long(short) is None
    assert "functions/taskrunner/domain/execution.py" in {p.relative_to(ROOT).as_posix() for p in _code_modules()}
    assert not [p for p in _code_modules() if p.relative_to(ROOT).parts[0] == "tests"]
