"""`mssante up` as a user runs it: a process that starts everything, and stops on SIGTERM."""

from __future__ import annotations

import imaplib
import json
import os
import signal
import smtplib
import ssl
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import free_base_port, prepared_copy


def start(data_dir: Path, base_port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mssante", "up", "--data-dir", str(data_dir), "--base-port",
         str(base_port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_ready(proc: subprocess.Popen[bytes], data_dir: Path) -> dict[str, object]:
    deadline = time.monotonic() + 120
    env_file = data_dir / "environment.json"
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        if env_file.exists():
            data: dict[str, object] = json.loads(env_file.read_text())
            return data
        time.sleep(0.2)
    raise AssertionError("mssante up did not write environment.json")


def stop(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out.decode()
    return out.decode()


def test_up_starts_serves_stops_and_restarts_with_the_same_accounts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    base = free_base_port()
    proc = start(data_dir, base)
    try:
        env = wait_ready(proc, data_dir)
        accounts = {a["login"]: a for a in env["accounts"]}  # type: ignore[union-attr]
        op = env["operators"][1]["submission"]  # type: ignore[index]
        martin = accounts["jean.martin@medecin.mssante.fr"]
        with smtplib.SMTP(op["host"], op["port"], timeout=30) as smtp:
            smtp.starttls(context=ssl.create_default_context(cafile=str(env["ca_file"])))
            smtp.login(martin["login"], martin["password"])
            refused = smtp.sendmail(martin["login"], ["dupont@ch-xyz.mssante.fr"],
                                    b"Subject: via mssante up\r\n\r\nBonjour\r\n")
        assert refused == {}
        deadline = time.monotonic() + 30
        while messages(data_dir) != ["via mssante up"]:
            assert time.monotonic() < deadline, "not delivered to dupont@ch-xyz.mssante.fr"
            time.sleep(0.3)
        # read over IMAP, as a mail client configured from environment.json would
        tls = ssl.create_default_context(cafile=str(env["ca_file"]))
        dupont = accounts["dupont@ch-xyz.mssante.fr"]
        imaps = env["operators"][0]["imaps"]  # type: ignore[index]
        with imaplib.IMAP4_SSL(imaps["host"], imaps["port"], ssl_context=tls) as imap:
            imap.login(dupont["login"], dupont["password"])
            assert imap.select("INBOX") == ("OK", [b"1"])
            _, data = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            assert b"Subject: via mssante up" in data[0][1]  # type: ignore[index]
        starttls = env["operators"][1]["imap"]  # type: ignore[index]
        with imaplib.IMAP4(starttls["host"], starttls["port"]) as imap:
            imap.starttls(tls)
            imap.login(martin["login"], martin["password"])
            assert imap.select("Sent") == ("OK", [b"1"])  # submission kept a copy
            assert imap.fetch("1", "(FLAGS)")[1] == [b"1 (FLAGS (\\Recent \\Seen))"]  # recent here
    finally:
        out = stop(proc)
    assert "jean.martin@medecin.mssante.fr" in out and "environment.json" in out
    # a normal start and stop prints no warning and no traceback
    assert "Warning" not in out and "Traceback" not in out, out
    # the mail log is shown without -v: the submission, then one line on each side of
    # the delivery between operators
    assert out.count("INFO mssante.mail: ") == 3, out
    assert "sasl_username=jean.martin@medecin.mssante.fr, status=accepted" in out
    assert "status=sent" in out and "status=accepted" in out
    assert os.stat(data_dir / "trust" / "pki" / "root-ca.key").st_mode & 0o077 == 0
    # second start: same PKI, same passwords, the message is still there
    (data_dir / "environment.json").unlink()
    proc = start(data_dir, base)
    try:
        again = wait_ready(proc, data_dir)
        assert {a["login"]: a["password"] for a in again["accounts"]} == {  # type: ignore[union-attr]
            login: a["password"] for login, a in accounts.items()}
        assert again["ca_file"] == env["ca_file"]
    finally:
        stop(proc)
    assert messages(data_dir) == ["via mssante up"]


def messages(data_dir: Path) -> list[str]:
    """Subjects in Dr Dupont's mailbox, through the administrator's command."""
    listing = subprocess.run(
        [sys.executable, "-m", "mssante", "operator", "messages", "dupont@ch-xyz.mssante.fr",
         "--json", "--config", str(data_dir / "operators/ch-xyz.mssante.fr/operator.toml")],
        capture_output=True, check=True, text=True)
    return [m["subject"] for m in json.loads(listing.stdout)]


def test_up_refuses_a_busy_port_with_a_message(tmp_path: Path) -> None:
    import socket

    base = free_base_port()
    prepared_copy(tmp_path / "d")  # what a first start would make (the test above)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", base))
        busy.listen()
        result = subprocess.run(
            [sys.executable, "-m", "mssante", "up", "--data-dir", str(tmp_path / "d"),
             "--base-port", str(base)], capture_output=True, text=True, timeout=180)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert f"cannot listen on 127.0.0.1:{base}" in result.stderr + result.stdout
