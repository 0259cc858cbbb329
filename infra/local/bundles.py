"""Each function's dependencies as Lambda will have them: one directory per bundle kind
(functions/requirements/<kind>.txt, as functions/Makefile installs it for `sam build`),
installed once with the Lambda runtime's Python for this machine's platform and cached by
the hash of what goes in. boto3/botocore come at the versions constraints.txt pins."""

from __future__ import annotations

import glob
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .template import ROOT

FUNCTIONS = ROOT / "functions"
RUNTIME = "3.13"  # template.yaml Globals: Runtime python3.13
# What functions/Makefile adds to every bundle with --no-deps
EXTRA_NO_DEPS = ("aws-xray-sdk", "wrapt")
# The runtime's SDK, pinned by the product
SDK = ("boto3", "botocore")
# Files functions/Makefile removes from a kind's bundle after installing it (`rm -f` lines),
# and files it stores gzipped as <name>.gz (`gzip -9n` lines)
LEFT_OUT = {"api": ("fastapi_offline/static/redoc.standalone.js",)}
GZIPPED = {"api": ("fastapi_offline/static/swagger-ui-bundle.js", "fastapi_offline/static/swagger-ui.css")}


def runtime_python(version: str = RUNTIME) -> str | None:
    """The interpreter of the Lambda runtime's Python version on this machine, if any."""
    found = shutil.which(f"python{version}")
    if found and "/shims/" not in found:  # a pyenv shim runs only where that version is selected
        return found
    roots = [os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv")]
    try:
        roots.insert(0, subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True).stdout.strip())  # noqa: S607
    except (OSError, subprocess.CalledProcessError):
        pass
    for root in filter(None, roots):
        for candidate in sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}"), reverse=True):
            if os.access(candidate, os.X_OK):
                return candidate
    return None


def function_kinds(makefile: Path = FUNCTIONS / "Makefile") -> dict[str, str]:
    """function logical id -> bundle kind, from the `build-<Function>: $(call install,<kind>)` rules."""
    text = makefile.read_text()
    return dict(re.findall(r"^build-(\w+):\s*\n\t\$\(call install,(\w+)\)", text, flags=re.MULTILINE))


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, sep, version = line.strip().partition("==")
        if sep:
            pins[name.lower().replace("_", "-")] = version
    return pins


def _requirements_text(path: Path) -> str:
    """The file with its -r includes expanded (what the hash covers)."""
    out = []
    for line in path.read_text().splitlines():
        if line.strip().startswith("-r "):
            out.append(_requirements_text(path.parent / line.split(None, 1)[1].strip()))
        else:
            out.append(line)
    return "\n".join(out)


def bundle_spec(kind: str) -> tuple[list[str], list[str], str]:
    """(requirements to install, extras installed --no-deps, cache key)"""
    pins = _pins()
    sdk = [f"{name}=={pins[name]}" for name in SDK]
    extras = [f"{name}=={pins[name]}" for name in EXTRA_NO_DEPS]
    req = FUNCTIONS / "requirements" / f"{kind}.txt"
    key = hashlib.sha256(
        "\n".join(
            [
                _requirements_text(req),
                *sdk,
                *extras,
                *LEFT_OUT.get(kind, ()),
                *GZIPPED.get(kind, ()),
                sys.platform,
                RUNTIME,
            ]
        ).encode()
    ).hexdigest()[:16]
    return sdk, extras, key


def ensure_bundle(kind: str, python: str, cache: Path) -> tuple[Path, bool]:
    """(the bundle directory of ``kind``, whether it was built now)"""
    sdk, extras, key = bundle_spec(kind)
    target = cache / f"{kind}-{key}"
    if (target / ".complete").exists():
        return target, False
    building = cache / f".{kind}-{key}-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--root-user-action=ignore"]
    pip += ["--target", str(building)]
    req = FUNCTIONS / "requirements" / f"{kind}.txt"
    constraints = ["-c", str(ROOT / "constraints.txt")]
    try:
        _pip([*pip, *constraints, "-r", str(req), *sdk])
        _pip([*pip, "--no-deps", *extras])
        # as functions/Makefile: Powertools' HTTP event_handler is left out, and no scripts
        shutil.rmtree(building / "aws_lambda_powertools" / "event_handler", ignore_errors=True)
        shutil.rmtree(building / "bin", ignore_errors=True)
        for name in LEFT_OUT.get(kind, ()):
            (building / name).unlink(missing_ok=True)
        for name in GZIPPED.get(kind, ()):
            _gzip(building / name)
        (building / ".complete").write_text(key + "\n")
        try:
            building.rename(target)
        except OSError:  # another runner finished the same bundle first
            if not (target / ".complete").exists():
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target, True


def _gzip(path: Path) -> None:
    """``gzip -9n path``: path.gz in its place, no name or time stored."""
    with path.open("rb") as source, path.with_name(path.name + ".gz").open("wb") as target:
        with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=target, mtime=0) as packed:
            shutil.copyfileobj(source, packed)
    path.unlink()


def _pip(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"building a bundle failed: {' '.join(cmd)}\n{done.stdout}{done.stderr}")
