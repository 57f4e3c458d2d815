"""Health data readable by its owner only: what `mssante up` leaves on disk.

Threat (issue 9 §2.7): the operators' databases (messages, password hashes) with
their WAL and SHM, the directory's database and the PKI's keys were 0644 in 0755
folders: any local user could read them. Now every folder under the data
directory is 0700 and every file 0600, the SQLite files SQLite itself creates
included, and `mssante up` repairs a tree an earlier version left open.
"""

from __future__ import annotations

import os
import smtplib
import ssl
import stat
from pathlib import Path
from typing import Any

from tests.conftest import free_base_port, prepared_copy
from tests.e2e.test_mssante_up import start, stop, wait_ready


def modes(root: Path) -> dict[str, int]:
    """Permission bits of every folder and file under root (root included)."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for directory, folders, names in os.walk(root):
        for name in [*folders, *names]:
            path = Path(directory) / name
            found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def open_to_others(root: Path) -> dict[str, str]:
    return {name: oct(mode) for name, mode in modes(root).items() if mode & 0o077}


def send_one(env: dict[str, Any]) -> None:
    """A message from medecin to ch-xyz: both operators' databases are written."""
    martin = next(a for a in env["accounts"] if a["login"] == "jean.martin@medecin.mssante.fr")
    op = env["operators"][1]["submission"]
    with smtplib.SMTP(op["host"], op["port"], timeout=30) as smtp:
        smtp.starttls(context=ssl.create_default_context(cafile=str(env["ca_file"])))
        smtp.login(martin["login"], martin["password"])
        smtp.sendmail(martin["login"], ["dupont@ch-xyz.mssante.fr"],
                      b"Subject: private\r\n\r\nBonjour\r\n")


def test_health_data_is_not_readable_by_other_local_users(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc = start(data_dir, free_base_port())
    try:
        send_one(wait_ready(proc, data_dir))
        found = modes(data_dir)
        # while running, after writes: the databases with their WAL and SHM are there
        for name in ("operators/ch-xyz.mssante.fr/operator.sqlite3-wal",
                     "operators/ch-xyz.mssante.fr/operator.sqlite3-shm",
                     "operators/medecin.mssante.fr/operator.sqlite3",
                     "trust/pki/root-ca.key", "operators/ch-xyz.mssante.fr/certs/mta.key"):
            assert found.get(name) == 0o600, (name, found.get(name))
        assert any(name.endswith("directory.sqlite3") for name in found)
        assert open_to_others(data_dir) == {}
        assert all(mode == 0o700 for name, mode in found.items()
                   if (data_dir / name).is_dir())
    finally:
        stop(proc)


def test_mssante_up_repairs_a_data_directory_readable_by_others(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    base = free_base_port()
    prepared_copy(data_dir)  # the first start from scratch is the test above
    proc = start(data_dir, base)
    try:
        send_one(wait_ready(proc, data_dir))
    finally:
        stop(proc)
    for name in modes(data_dir):  # as an earlier version (or a careless copy) left it
        path = data_dir / name
        path.chmod(0o755 if path.is_dir() else 0o644)
    (data_dir / "environment.json").unlink()
    proc = start(data_dir, base)
    try:
        wait_ready(proc, data_dir)
        assert open_to_others(data_dir) == {}
    finally:
        out = stop(proc)
    assert "were readable by other users, now by their owner only" in out
    assert "operator.sqlite3" in out or "more" in out
