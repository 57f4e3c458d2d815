"""Every command starts without a warning or a traceback, with the libraries pip resolves.

A deprecation raised at import time (cryptography 51 deprecating DSA, say) is printed by
every `mssante` call and turns the whole suite into a collection error under
``filterwarnings = error``. These tests run the command as a user does, in a process
of its own, with every warning made an error.
"""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys

import pytest

import mssante
from mssante.cli import app

GROUPS = sorted(group.name or "" for group in app.registered_groups)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONWARNINGS": "error"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=120, env=environment, check=False)


def test_every_module_imports_with_warnings_as_errors() -> None:
    modules = [info.name for info in pkgutil.walk_packages(mssante.__path__, "mssante.")
               if not info.name.endswith("__main__") and ".migrations." not in info.name]
    assert len(modules) > 50
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    result = run("-W", "error", "-c", code, *modules)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize("group", ["", *GROUPS, "up"])
def test_command_help_prints_no_warning(group: str) -> None:
    result = run("-W", "error", "-m", "mssante", *([group] if group else []), "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
    assert result.stderr == ""
    assert "Warning" not in result.stdout and "Traceback" not in result.stdout
