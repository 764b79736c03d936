"""`make install` on a fresh Debian: uv is bootstrapped even where pip refuses
to touch the externally-managed system Python."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A python3 that behaves like Debian 12's: pip refuses plain and --user
# installs (PEP 668), and --break-system-packages puts uv in the user base,
# which is not on PATH.
FAKE_PYTHON = """#!/bin/bash
echo "python3 $*" >> "$LOG"
case "$*" in
  "-m site --user-base") echo "$USER_BASE" ;;
  *--break-system-packages*)
    mkdir -p "$USER_BASE/bin"
    printf '#!/bin/bash\\necho "user-base uv $*" >> "$LOG"\\n' > "$USER_BASE/bin/uv"
    chmod +x "$USER_BASE/bin/uv" ;;
  "-m pip "*) echo "error: externally-managed-environment" >&2; exit 1 ;;
  *) exit 2 ;;
esac
"""


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_install_bootstraps_uv_on_an_externally_managed_python(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python3"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    venv = tmp_path / "venv"
    venv.mkdir()
    log = tmp_path / "log"
    env = {
        # No uv anywhere on PATH, as on a machine that never had it.
        "PATH": os.pathsep.join([str(bin_dir), "/usr/bin", "/bin"]),
        "LOG": str(log),
        "USER_BASE": str(tmp_path / "user-base"),
        "HOME": str(tmp_path),
    }
    result = subprocess.run(
        ["make", "--no-print-directory", f"VENV={venv}", f"{venv}/.installed"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    calls = log.read_text().splitlines()
    pip_calls = [call for call in calls if call.startswith("python3 -m pip install")]
    assert pip_calls[0].endswith(" uv") and "--user" not in pip_calls[0]
    assert "--user" in pip_calls[1] and "--break-system-packages" not in pip_calls[1]
    assert "--break-system-packages" in pip_calls[2]
    assert calls[-1] == "user-base uv sync --frozen --compile-bytecode"
    assert (venv / ".installed").exists()


def _tool(path: Path, name: str) -> None:
    """A stand-in for ``name`` that logs its call and fails when FAIL names it."""
    path.write_text(f'#!/bin/bash\necho "{name} $*" >> "$LOG"\n[ "$FAIL" != "{name}" ]\n')
    path.chmod(0o755)


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
@pytest.mark.parametrize("fail, code", [("", 0), ("ruff", 2), ("mypy", 2)])
def test_lint_runs_ruff_and_mypy_and_fails_with_either(tmp_path, fail, code):
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("ruff", "mypy"):
        _tool(bin_dir / name, name)
    (tmp_path / "venv" / ".installed").touch()  # newer than pyproject.toml and uv.lock: no install
    log = tmp_path / "log"
    result = subprocess.run(
        ["make", "--no-print-directory", f"VENV={tmp_path / 'venv'}", "lint"], cwd=ROOT,
        env={"PATH": os.environ["PATH"], "LOG": str(log), "FAIL": fail}, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == code, result.stdout + result.stderr
    # Both run whichever fails, so one run shows every finding.
    assert log.read_text().splitlines() == ["ruff check .", "mypy "]


@pytest.mark.parametrize("fail, calls, code", [("", ["lint", "test"], 0), ("lint", ["lint"], 2),
                                               ("test", ["lint", "test"], 2)])
def test_ci_lints_before_the_suite_and_fails_with_either(tmp_path, fail, calls, code):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    make = bin_dir / "make"
    make.write_text('#!/bin/bash\necho "$CI $*" >> "$LOG"\n[ "$FAIL" != "$*" ] || exit 2\n')
    make.chmod(0o755)
    log = tmp_path / "log"
    result = subprocess.run(
        [str(ROOT / ".ci" / "run")], env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "LOG": str(log),
                                          "FAIL": fail}, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == code, result.stdout + result.stderr
    assert log.read_text().splitlines() == [f"true {call}" for call in calls]
