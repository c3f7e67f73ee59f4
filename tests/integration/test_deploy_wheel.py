"""The image's entrypoint, `apimirror`, from the built wheel installed outside the source tree."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.support.deploy import ROOT

pytestmark = pytest.mark.integration

COMMANDS = ["api", "worker", "beat", "upstream-sim", "healthcheck", "init-db"]
MODULES = [
    "apimirror.api.app",
    "apimirror.api.server",
    "apimirror.tasks.celery_app",
    "apimirror.tasks.runner",
    "apimirror.tasks.health",
    "apimirror.upstream_sim.server",
    "apimirror.storage.indexes",
    "apimirror.healthcheck",
]


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, f"{argv}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv outside the checkout with only the built wheel and its locked dependencies."""
    uv = shutil.which("uv")
    assert uv is not None, "uv is needed (scripts/bootstrap.sh installs it)"
    work = tmp_path_factory.mktemp("wheel")
    _run([uv, "build", "--wheel", "--out-dir", str(work / "dist")], cwd=ROOT)
    (wheel,) = (work / "dist").glob("apimirror-*.whl")
    requirements = work / "requirements.txt"
    _run(
        [
            uv,
            "export",
            "--frozen",
            "--no-dev",
            "--no-emit-project",
            "--no-hashes",
            "--output-file",
            str(requirements),
        ],
        cwd=ROOT,
    )
    venv = work / "venv"
    _run([uv, "venv", "--quiet", str(venv)], cwd=work)
    python = venv / "bin" / "python"
    _run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            str(python),
            "-r",
            str(requirements),
            str(wheel),
        ],
        cwd=work,
    )
    return venv


def _clean_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.mark.parametrize("command", COMMANDS)
def test_entrypoint_starts_each_process_type_from_the_wheel(wheel_venv: Path, command: str) -> None:
    """`apimirror <command> --help` works from the installed wheel, away from the sources."""
    out = _run(
        [str(wheel_venv / "bin" / "apimirror"), command, "--help"],
        cwd=wheel_venv.parent,
        env=_clean_env(wheel_venv),
    )
    assert "usage: apimirror" in out


def test_wheel_carries_every_process_module_and_the_recorded_payloads(wheel_venv: Path) -> None:
    """Every module a process imports, and the simulator's samples, come from the wheel."""
    present = [m for m in MODULES if (ROOT / "src" / (m.replace(".", "/") + ".py")).exists()]
    code = (
        "import importlib, pathlib, apimirror\n"
        f"for m in {present!r}: importlib.import_module(m)\n"
        "root = pathlib.Path(apimirror.__file__).parent\n"
        "assert 'site-packages' in str(root), root\n"
        "assert list((root / 'upstream_sim' / 'samples').glob('*.json')), 'no samples'\n"
        "print(root)\n"
    )
    out = _run(
        [str(wheel_venv / "bin" / "python"), "-c", code],
        cwd=wheel_venv.parent,
        env=_clean_env(wheel_venv),
    )
    assert str(ROOT) not in out


def test_healthcheck_from_the_wheel_reports_a_dead_api_as_unhealthy(wheel_venv: Path) -> None:
    """`apimirror healthcheck api` exits 1 when nothing answers, so HEALTHCHECK cannot lie."""
    from tests.support.procs import free_port

    url = f"http://127.0.0.1:{free_port()}/healthz"
    result = subprocess.run(
        [str(wheel_venv / "bin" / "apimirror"), "healthcheck", "api", "--url", url],
        cwd=wheel_venv.parent,
        env=_clean_env(wheel_venv),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr


def test_dockerfile_runs_one_non_root_image_for_every_process() -> None:
    """The final stage runs as a non-root user, enters via `apimirror`, and bakes in no secret."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    final = text.split("AS runtime", 1)[1]
    instructions = [line.split(None, 1) for line in final.splitlines() if line[:1].isupper()]
    names = {parts[0]: parts[1] if len(parts) > 1 else "" for parts in instructions}
    assert names["USER"].split(":")[0] not in {"0", "root"}
    assert names["ENTRYPOINT"] == '["apimirror"]'
    assert "apimirror healthcheck" in final
    assert "--mount=type=cache" in text
    assert "uv sync --frozen" in text
    code = "\n".join(line for line in text.upper().splitlines() if not line.startswith("#"))
    for word in ("PASSWORD", "TOKEN", "SECRET", "MONGODB_URL"):
        assert word not in code, word
