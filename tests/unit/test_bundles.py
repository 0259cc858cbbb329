"""Each function's deployed bundle carries only its own dependencies (functions/Makefile):
importing and running a handler must not need what its bundle leaves out."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None          # importing it now raises ImportError
import {module} as handler_module
from taskrunner.bootstrap import build_services
from taskrunner.config import Settings
build_services(Settings(signing_secret="x"))
print("ok")
"""


@pytest.mark.parametrize(
    ("module", "blocked"),
    [
        ("taskrunner.entrypoints.worker", ["fastapi", "starlette", "mangum", "uvicorn"]),
        ("taskrunner.entrypoints.notifier", ["fastapi", "starlette", "mangum", "uvicorn"]),
        ("taskrunner.entrypoints.dead_letter", ["fastapi", "starlette", "mangum", "uvicorn"]),
        ("taskrunner.entrypoints.reconciler", ["fastapi", "starlette", "mangum", "uvicorn"]),
        ("taskrunner.entrypoints.stream", ["fastapi", "mangum"]),
        ("taskrunner.entrypoints.api", ["uvicorn"]),
    ],
)
def test_handler_needs_only_its_bundle(module, blocked):
    code = RUN.format(blocked=blocked, module=module)
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"},
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]


def test_bundle_requirements_are_pinned_and_consistent():
    pins = {}
    for path in (ROOT / "functions" / "requirements").glob("*.txt"):
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if line and not line.startswith(("#", "-r")):
                name, _, version = line.partition("==")
                assert version, f"{path.name}: {line} is not pinned"
                assert pins.setdefault(name.lower().replace("_", "-"), version) == version, (
                    f"{name} pinned twice differently"
                )
    constraints = dict(
        line.split("==", 1) for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line
    )
    lowered = {k.lower().replace("_", "-"): v for k, v in constraints.items()}
    for name, version in pins.items():
        assert lowered.get(name) == version, f"{name}=={version} differs from constraints.txt"


def test_local_bundles_leave_out_and_gzip_what_the_makefile_does():
    from infra.local.bundles import GZIPPED, LEFT_OUT, function_kinds

    makefile = (ROOT / "functions" / "Makefile").read_text()
    removed: dict[str, set[str]] = {}
    packed: dict[str, set[str]] = {}
    for function, kind in function_kinds().items():
        recipe = makefile.split(f"\nbuild-{function}:\n", 1)[1].split("\n\n", 1)[0]
        gone = set(re.findall(r'^\trm -f "\$\(ARTIFACTS_DIR\)/([^"]+)"$', recipe, flags=re.MULTILINE))
        zipped = set()
        for line in re.findall(r"^\tgzip -9n (.+)$", recipe, flags=re.MULTILINE):
            zipped |= set(re.findall(r'"\$\(ARTIFACTS_DIR\)/([^"]+)"', line))
        assert removed.setdefault(kind, gone) == gone, f"{kind} bundles differ between functions"
        assert packed.setdefault(kind, zipped) == zipped, f"{kind} bundles differ between functions"
    assert {kind: files for kind, files in removed.items() if files} == {k: set(v) for k, v in LEFT_OUT.items()}
    assert {kind: files for kind, files in packed.items() if files} == {k: set(v) for k, v in GZIPPED.items()}
    assert "fastapi_offline/static/redoc.standalone.js" in LEFT_OUT["api"]
    assert "fastapi_offline/static/swagger-ui-bundle.js" in GZIPPED["api"]


def test_gzip_of_a_bundle_file_is_gzip_n(tmp_path):
    import gzip

    from infra.local.bundles import _gzip

    path = tmp_path / "swagger-ui.css"
    path.write_bytes(b"body { margin: 0 }\n" * 100)
    _gzip(path)
    packed = (tmp_path / "swagger-ui.css.gz").read_bytes()
    assert not path.exists()
    assert gzip.decompress(packed) == b"body { margin: 0 }\n" * 100
    assert packed[4:8] == b"\0\0\0\0" and not packed[3] & 0x08  # no time, no file name (gzip -n)
