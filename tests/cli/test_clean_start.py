"""Every command starts without a warning or a traceback, with the libraries pip resolves.

A deprecation raised at import time (cryptography 51 deprecating DSA, say) is printed by
every `mssante` call and turns the whole suite into a collection error under
``filterwarnings = error``. These tests run the command as a user does, in a process
of its own, with every warning made an error.
"""

from __future__ import annotations

import json
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


# Each command's --help, as `mssante <group> --help` runs it (mssante/__main__.py calls
# cli.main), all in one process started with warnings made errors: every command
# imports the same modules (mssante.cli imports every group), so one process sees the
# import-time warnings each would, and the suite starts one interpreter instead of ten.
HELP = """\
import contextlib, io, json, sys, traceback
from mssante.cli import main
found = {}
for group in sys.argv[1:]:
    out, err, code = io.StringIO(), io.StringIO(), 0
    sys.argv = ["mssante", *([group] if group else []), "--help"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
    found[group] = [code, out.getvalue(), err.getvalue()]
sys.__stdout__.write(json.dumps(found))
"""
COMMANDS = ["", *GROUPS, "up"]


@pytest.fixture(scope="module")
def helps() -> dict[str, tuple[int, str, str]]:
    """Each command's exit status, output and error output."""
    result = run("-W", "error", "-c", HELP, *COMMANDS)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    found: dict[str, tuple[int, str, str]] = json.loads(result.stdout)
    return found


@pytest.mark.parametrize("group", COMMANDS)
def test_command_help_prints_no_warning(helps: dict[str, tuple[int, str, str]],
                                        group: str) -> None:
    returncode, stdout, stderr = helps[group]
    assert returncode == 0, stderr
    assert "Usage" in stdout
    assert stderr == ""
    assert "Warning" not in stdout and "Traceback" not in stdout
