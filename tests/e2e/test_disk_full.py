"""A full disk under the receiving operator's database: ``452 4.3.1``, never a lost message.

The database of medecin.mssante.fr lives on a small tmpfs of its own (mounting one
needs root: the test skips otherwise), filled up by a file. SQLite then fails the
commit with SQLITE_FULL; the SMTP server must answer ``452 4.3.1`` (RFC 5321 §4.2.3
"insufficient system storage", RFC 3463 §3.4 X.3.1 "mail system full") so that the
client keeps the message, and take it once space is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import smtplib
import subprocess
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from mssante.store import open_store
from tests.conftest import RunningEnvironment, running_environment
from tests.e2e.mail import message, send, submission, unique

DUPONT = "dupont@ch-xyz.mssante.fr"
MARTIN = "jean.martin@medecin.mssante.fr"
MEDECIN = "medecin.mssante.fr"
DISK_MB = 48
# Larger than any write-ahead log SQLite keeps for reuse (1000 pages of 4 KB before a
# checkpoint): the commit must ask the file system for new blocks.
MESSAGE_BYTES = 6 * 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0700",
                              "tmpfs", str(disk)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.fixture
def env(tmp_path: Path, small_disk: Path) -> Iterator[RunningEnvironment]:
    with running_environment(
            tmp_path / "env", retry_delays=(0.5, 1.0),
            database_urls={MEDECIN: f"sqlite:///{small_disk}/medecin.sqlite3"}) as running:
        yield running


@contextlib.contextmanager
def disk_filled(disk: Path) -> Iterator[None]:
    """Fill ``disk`` to the last block, then give the space back."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (1 << 20, 4096, 512):
            block = b"\0" * chunk
            while True:
                try:
                    os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
        yield
    finally:
        os.close(fd)
        filler.unlink()


def big_message(sender: str, subject: str) -> EmailMessage:
    line = "Compte rendu d'imagerie, coupes axiales sans particularite. 0123456789\n"
    return message(sender, MARTIN, subject, line * (MESSAGE_BYTES // len(line)))


def copies(env: RunningEnvironment, subject: str) -> int:
    return sum(1 for m in env.messages(MARTIN) if m.subject == subject)


def queue(env: RunningEnvironment, domain: str) -> list:
    url = env.service(domain).config.database_url

    async def read() -> list:
        store = await open_store(url)
        try:
            return await store.queue_entries()
        finally:
            await store.close()

    return env.runner.call(read())


def test_full_disk_answers_452_and_the_message_is_taken_once_space_is_back(
        env: RunningEnvironment, small_disk: Path) -> None:
    subject = unique("disque plein")
    msg = big_message(MARTIN, subject)
    with submission(env, MEDECIN, MARTIN) as smtp:  # logged in before the disk fills
        with disk_filled(small_disk):
            with pytest.raises(smtplib.SMTPDataError) as refused:
                smtp.send_message(msg)
            assert refused.value.smtp_code == 452
            assert refused.value.smtp_error.startswith(b"4.3.1 ")
            assert copies(env, subject) == 0  # nothing half-written
            smtp.rset()
        smtp.send_message(msg)  # the client tries again: accepted
    assert copies(env, subject) == 1


def test_relayed_message_waits_in_the_queue_while_the_receiver_disk_is_full(
        env: RunningEnvironment, small_disk: Path) -> None:
    subject = unique("relais disque plein")
    with disk_filled(small_disk):
        send(env, DUPONT, big_message(DUPONT, subject))
        env.wait_for(lambda: any("452 4.3.1" in (e.last_error or "")
                                 for e in queue(env, "ch-xyz.mssante.fr")),
                     timeout=60, what="the relay deferred with 452 4.3.1")
        entry = next(e for e in queue(env, "ch-xyz.mssante.fr") if e.recipient == MARTIN)
        assert entry.status == "queued"  # deferred, not bounced
    env.wait_message(MARTIN, subject, timeout=60)
    env.wait_for(lambda: [e.status for e in queue(env, "ch-xyz.mssante.fr")
                          if e.recipient == MARTIN] == ["delivered"], what="delivered")
    assert copies(env, subject) == 1
    assert not any(m.subject and m.subject.startswith("Undelivered")
                   for m in asyncio.run(_dupont_inbox(env)))


async def _dupont_inbox(env: RunningEnvironment) -> list:
    store = await open_store(env.service("ch-xyz.mssante.fr").config.database_url)
    try:
        return await store.list_messages(DUPONT)
    finally:
        await store.close()
