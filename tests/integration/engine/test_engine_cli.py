"""`velocity-engine` itself: the start-up hint users copy, and clear failures on bad settings."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.engine_proc import ENGINE, EngineProcess


def test_startup_prints_a_working_velocityctl_command(engine: EngineProcess) -> None:
    hint = next(line for line in engine.log().splitlines() if "velocityctl --endpoint" in line)
    command = hint[hint.index("velocityctl"):].split()
    assert f"vdb://127.0.0.1:{engine.port}" in command
    assert str(engine.ca) in command and str(engine.token_file) in command


def test_invalid_settings_exit_2_with_a_clear_message(tmp_path: Path) -> None:
    r = subprocess.run([ENGINE, "--data-dir", str(tmp_path), "--port", "99999"], capture_output=True, timeout=30)
    assert r.returncode == 2
    assert b"invalid configuration" in r.stderr and b"port" in r.stderr
    r = subprocess.run([ENGINE, "--data-dir", str(tmp_path), "--insecure", "--auth-token-file", "/x"],
                       capture_output=True, timeout=30)
    assert r.returncode == 2 and b"insecure" in r.stderr


def test_port_in_use_is_reported(engine: EngineProcess, tmp_path: Path) -> None:
    r = subprocess.run([ENGINE, "--data-dir", str(tmp_path), "--port", str(engine.port), "--metrics-port", "0"],
                       capture_output=True, timeout=30)
    assert r.returncode != 0
    text = (r.stdout + r.stderr).decode()
    assert str(engine.port) in text and "Traceback" not in text
