"""Two Postfix instances relaying over STARTTLS: the classic stack next to mssante.

``PostfixPair`` runs, on 127.0.0.1, two independent Postfix instances of the system's
Postfix (Debian's ``postfix`` package):

- the *sender* accepts mail from 127.0.0.0/8 without authentication on
  ``sender_port`` and relays ``medecin.mssante.fr`` (transport map
  ``smtp:[127.0.0.1]:<receiver_port>``) with mandatory STARTTLS (>= TLS 1.2) and a
  client certificate, as between MSSanté operators;
- the *receiver* listens on ``receiver_port``, requires STARTTLS and a client
  certificate issued under ``ca_file``, and delivers ``jean.martin@medecin.mssante.fr``
  with virtual(8) into a Maildir under ``base_dir``.

Layout under ``base_dir``::

    sender/etc/      main.cf, master.cf, transport   (config_directory)
    sender/spool/    queue_directory
    sender/lib/      data_directory
    sender/maillog   log (postlogd)
    receiver/...     the same for the receiver (etc/ also holds the mailbox map)
    mail/jean.martin/{tmp,new,cur}                   the Maildir (owned by nobody)

Settings changed from Postfix's defaults, all because the setup needs them; nothing is
tuned for speed (process limits, concurrency, in_flow_delay, fsync, connection caching
and TLS session handling are Postfix's defaults):

- ``config_directory``, ``queue_directory``, ``data_directory``, ``myhostname``,
  ``inet_interfaces = 127.0.0.1``, ``inet_protocols = ipv4``: two private instances on
  loopback, next to (and independent of) any system instance;
- ``compatibility_level = 3.6``: the value of Debian's stock main.cf; without it Postfix
  logs "using backwards-compatible default setting" warnings;
- ``maillog_file`` (+ ``maillog_file_prefixes``, and the ``postlog`` service in master.cf):
  logging to a file in ``base_dir``, since there is no syslog daemon here;
- ``alias_maps``, ``alias_database`` empty: there is no /etc/aliases.db and no local
  delivery is used;
- ``mynetworks = 127.0.0.0/8`` (sender): the benchmark's clients submit without AUTH,
  and the default relay restrictions then allow relaying for them;
- ``transport_maps``, ``smtp_tls_security_level = encrypt``, ``smtp_tls_cert_file``,
  ``smtp_tls_key_file``, ``smtp_tls_CAfile``, ``smtp_tls_(mandatory_)protocols =
  >=TLSv1.2`` (sender): the relay to the receiver with mutual TLS;
- ``smtpd_tls_security_level = encrypt``, ``smtpd_tls_cert_file``/``key_file``,
  ``smtpd_tls_CAfile``, ``smtpd_tls_ask_ccert = yes``, ``smtpd_tls_req_ccert = yes``,
  ``smtpd_tls_(mandatory_)protocols = >=TLSv1.2`` (receiver): STARTTLS required, and a
  client certificate that verifies against ``ca_file`` (as MSSanté requires);
- ``virtual_mailbox_domains``, ``virtual_mailbox_base``, ``virtual_mailbox_maps``
  (texthash), ``virtual_uid_maps``/``virtual_gid_maps`` (static: nobody/nogroup)
  (receiver): Maildir delivery;
- master.cf: Postfix's standard master.cf with the ``smtp inet`` service on the given port,
  without the pipe(8) examples (maildrop, uucp, …), with the (commented-out by default)
  ``tlsproxy`` service defined, unused unless e.g. ``smtp_tls_connection_reuse = yes`` is
  set for an experiment, and with chroot off everywhere. Off is
  Postfix's own default; Debian ships ``y``, which needs copies of /etc files inside the
  spool and makes no difference to throughput.

Durability is Postfix's normal one: each queue file is fsync'ed before "250 OK", and
virtual(8) fsyncs the Maildir file in ``tmp/`` before renaming it into ``new/``.

``base_dir`` and every directory above it get the "search" (o+x) permission bit if they
lack it: virtual(8) writes the Maildir as ``nobody`` through the absolute path. Nothing
is made readable or writable.

Times: ``DeliveredMessage.mtime`` is a wall-clock time (``time.time()`` scale).

``PostfixOperator`` runs one instance as an operator of the MSSanté trust space, with
``mssante_operator_config``: the configuration the README shows and
tests/e2e/test_postfix_operator.py runs (mutual TLS both ways, transport and TLS policy
per peer operator, virtual(8) Maildirs). ``Maildir`` reads what virtual(8) delivered, for
both.

Self-check (as root, from the project root)::

    python -m bench.peers.postfix                       # 50 messages, one connection
    python -m bench.peers.postfix --messages 1000 --size 51200 --connections 20
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import os
import pwd
import shutil
import signal
import smtplib
import socket
import stat
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from types import TracebackType

from bench.peers.system import (
    PeerError,
    disable_service,
    free_ports,
    grant_search,
    live_processes,
    program,
    run,
    wait_gone,
)

DOMAIN = "medecin.mssante.fr"
RECIPIENT = f"jean.martin@{DOMAIN}"
MAILBOX_USER = "nobody"
MAILBOX_GROUP = "nogroup"
COMPATIBILITY_LEVEL = "3.6"

_QUEUE_SUBDIRS = ("maildrop", "incoming", "active", "deferred", "hold", "corrupt")
_HEADER_LIMIT = 1 << 20  # read at most this much of a message looking for its header

# Postfix's standard master.cf (services used by an MTA), chroot off; {port} is smtpd.
_MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
{port}      inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
        -o syslog_name=postfix/$service_name
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
tlsproxy  unix  -       -       n       -       0       tlsproxy
"""


class PostfixError(PeerError):
    """Postfix could not be installed, configured, started or stopped."""


# -- installation ---------------------------------------------------------------------------

def _sbin(name: str) -> str:
    return program(name, "Postfix", PostfixError)


def _run(args: list[str], *, timeout: float = 60, env: dict[str, str] | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(args, error=PostfixError, timeout=timeout, env=env, check=check)


def postfix_version() -> str:
    """The installed Postfix's version (``mail_version``), e.g. ``"3.7.11"``."""
    return _run([_sbin("postconf"), "-d", "-h", "mail_version"]).stdout.strip()


def _installed() -> bool:
    try:
        _sbin("postfix")
        _sbin("postconf")
    except PostfixError:
        return False
    return True


def _disable_system_instance() -> None:
    """Make sure the package's default instance neither runs nor starts at boot."""
    disable_service("postfix", PostfixError)
    if Path("/etc/postfix/main.cf").exists():
        status = _run([_sbin("postfix"), "status"], check=False)
        if status.returncode == 0:
            _run([_sbin("postfix"), "stop"], check=False)


def ensure_postfix_installed() -> str:
    """Install Debian's ``postfix`` package if missing; return the Postfix version.

    The package is installed with debconf's "No configuration", so no /etc/postfix/main.cf
    is written and the system instance does not start; it is also disabled (and stopped
    if running) after installing. Needs root when installing.
    """
    if not _installed():
        if os.geteuid() != 0:
            raise PostfixError("Postfix is not installed, and installing it needs root")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        selections = ("postfix postfix/main_mailer_type select No configuration\n"
                      "postfix postfix/mailname string localhost\n")
        # Without debconf, apt-get's noninteractive frontend takes the defaults.
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(["debconf-set-selections"], input=selections, text=True,
                           capture_output=True, check=False, timeout=60)
        _run(["apt-get", "update", "-q"], env=env, timeout=600)
        _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "postfix"],
             env=env, timeout=900)
        _disable_system_instance()
        if not _installed():
            raise PostfixError("apt-get installed postfix but its commands are not found")
    return postfix_version()


# -- delivered messages ---------------------------------------------------------------------

@dataclass(frozen=True)
class DeliveredMessage:
    """A message file in the receiver's Maildir (``new/`` or ``cur/``)."""

    path: Path
    mtime: float  # wall clock (time.time() scale): when the file was stored, see delivered()

    def header_bytes(self) -> bytes:
        """The message's header section (up to the first empty line)."""
        data = b""
        with self.path.open("rb") as f:
            while len(data) < _HEADER_LIMIT:
                chunk = f.read(16384)
                if not chunk:
                    break
                data += chunk
                for sep in (b"\n\n", b"\r\n\r\n"):
                    end = data.find(sep)
                    if end >= 0:
                        return data[:end + len(sep)]
        return data

    def header(self, name: str) -> str | None:
        """The first ``name`` header's value, unfolded and stripped; None when absent."""
        values = self.headers(name)
        return values[0] if values else None

    def headers(self, name: str) -> list[str]:
        """Every ``name`` header's value, top first (unfolded and stripped)."""
        msg = BytesHeaderParser(policy=compat32).parsebytes(self.header_bytes())
        return [" ".join(str(v).split()) for v in msg.get_all(name, [])]


class Maildir:
    """A Maildir that virtual(8) writes as ``nobody`` (``new/``, ``cur/``, ``tmp/``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def create(self) -> None:
        """Create it (and its parent) owned by nobody:nogroup, mode 0700."""
        uid = pwd.getpwnam(MAILBOX_USER).pw_uid
        gid = grp.getgrnam(MAILBOX_GROUP).gr_gid
        for d in (self.path.parent, self.path, *(self.path / s for s in ("tmp", "new", "cur"))):
            d.mkdir(exist_ok=True)
            d.chmod(0o700)
            os.chown(d, uid, gid)

    def delivered(self) -> list[DeliveredMessage]:
        """The messages stored (``new/`` and ``cur/``), oldest first.

        ``mtime`` is the file's status-change time (st_ctime_ns): virtual(8) writes and
        fsyncs the file in ``tmp/`` and then renames it into ``new/``, and the rename sets
        it, so it is the moment the message became visible in the mailbox (a few µs after
        its last write, its st_mtime).
        """
        found: list[DeliveredMessage] = []
        for sub in ("new", "cur"):
            try:
                entries = list(os.scandir(self.path / sub))
            except FileNotFoundError:
                continue
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # moved from new/ to cur/ meanwhile
                if stat.S_ISREG(st.st_mode):
                    found.append(DeliveredMessage(Path(entry.path), st.st_ctime_ns / 1e9))
        found.sort(key=lambda m: m.mtime)
        return found

    def count(self) -> int:
        """How many messages are stored (cheaper than len(delivered()))."""
        count = 0
        for sub in ("new", "cur"):
            with contextlib.suppress(FileNotFoundError):
                count += sum(1 for _ in os.scandir(self.path / sub))
        return count

    def clear(self) -> None:
        """Delete every message."""
        for sub in ("tmp", "new", "cur"):
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(self.path / sub):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)


# -- one instance ---------------------------------------------------------------------------

def _sessions() -> dict[int, int]:
    """pid → session id of the live (non-zombie) processes."""
    return {pid: int(fields[3]) for pid, fields in live_processes().items()}


class PostfixInstance:
    """One Postfix instance with its own directories under ``root``."""

    def __init__(self, name: str, root: Path, port: int, main_cf: dict[str, str],
                 files: dict[str, str] | None = None) -> None:
        self.name = name
        self.root = root
        self.port = port
        self.config_dir = root / "etc"
        self.queue_dir = root / "spool"
        self.data_dir = root / "lib"
        self.log_file = root / "maillog"
        self._main_cf = main_cf
        self._files = files or {}

    def postfix(self, *args: str, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``postfix -c <config_dir> ARGS``."""
        return _run([_sbin("postfix"), "-c", str(self.config_dir), *args], check=check,
                    timeout=timeout)

    def write_config(self) -> None:
        for d in (self.root, self.config_dir, self.queue_dir):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o755)
        # data_directory is created (owned by mail_owner) by "postfix check".
        main = {
            "compatibility_level": COMPATIBILITY_LEVEL,
            "config_directory": str(self.config_dir),
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            "maillog_file": str(self.log_file),
            "maillog_file_prefixes": str(self.root),
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "alias_maps": "",
            "alias_database": "",
            **self._main_cf,
        }
        lines = [f"{key} = {value}".rstrip() for key, value in main.items()]
        (self.config_dir / "main.cf").write_text("\n".join(lines) + "\n")
        (self.config_dir / "master.cf").write_text(_MASTER_CF.format(port=self.port))
        for file_name, text in self._files.items():
            (self.config_dir / file_name).write_text(text)

    def master_pid(self) -> int | None:
        """The running master's pid, None when the instance is not running."""
        try:
            pid = int((self.queue_dir / "pid" / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return None
        return pid if comm == "master" and state not in ("Z", "X") else None

    def processes(self) -> list[int]:
        """The live processes of this instance (master and its children, one session)."""
        pid = self.master_pid()
        if pid is None:
            return []
        return [p for p, sid in _sessions().items() if sid == pid]

    def start(self) -> None:
        """Check the configuration and start the instance; wait for its port."""
        if self.master_pid() is not None:
            raise PostfixError(f"{self.name}: already running")
        self.postfix("check")
        try:
            self.postfix("start")
        except PostfixError as exc:
            raise PostfixError(f"{self.name}: {exc}\n{self.log_tail()}") from exc
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError), \
                    socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            if time.monotonic() > deadline:
                raise PostfixError(f"{self.name}: nothing listens on 127.0.0.1:{self.port}"
                                   f"\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 30) -> None:
        """Stop the instance and wait until all its processes are gone; safe to repeat."""
        master = self.master_pid()
        if master is None:
            return
        pids = set(self.processes())
        if (self.config_dir / "main.cf").exists():
            self.postfix("stop", check=False)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(master, signal.SIGTERM)

        def remaining() -> list[int]:
            live = _sessions()
            return [p for p in pids if live.get(p) == master] + [
                p for p, sid in live.items() if sid == master and p not in pids]

        wait_gone(remaining, timeout)

    def queue_size(self) -> int:
        """How many messages are in this instance's queue (any state)."""
        count = 0
        for sub in _QUEUE_SUBDIRS:
            for _dirpath, _dirnames, filenames in os.walk(self.queue_dir / sub):
                count += len(filenames)
        return count

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return f"({self.log_file}: no log)"
        return "\n".join(text.splitlines()[-lines:])


# -- the pair -------------------------------------------------------------------------------



class PostfixPair:
    """A sender and a receiver Postfix on 127.0.0.1; see the module docstring."""

    def __init__(self, base_dir: Path, *, sender_port: int, receiver_port: int,
                 tls_cert: Path, tls_key: Path, ca_file: Path, client_cert: Path,
                 client_key: Path, sender_main_cf: Mapping[str, str] | None = None,
                 receiver_main_cf: Mapping[str, str] | None = None) -> None:
        """``sender_main_cf``/``receiver_main_cf``: extra main.cf settings (override ours);
        none by default, for sensitivity experiments only."""
        self.base_dir = Path(base_dir).absolute()
        self.sender_port = sender_port
        self.receiver_port = receiver_port
        self.mail_base = self.base_dir / "mail"
        self.maildir = self.mail_base / "jean.martin"
        self._version: str | None = None
        self.receiver = PostfixInstance(
            "receiver", self.base_dir / "receiver", receiver_port,
            {
                "myhostname": "receiver.postfix-bench.invalid",
                "smtpd_tls_security_level": "encrypt",
                "smtpd_tls_cert_file": str(Path(tls_cert).absolute()),
                "smtpd_tls_key_file": str(Path(tls_key).absolute()),
                "smtpd_tls_CAfile": str(Path(ca_file).absolute()),
                "smtpd_tls_ask_ccert": "yes",
                "smtpd_tls_req_ccert": "yes",
                "smtpd_tls_protocols": ">=TLSv1.2",
                "smtpd_tls_mandatory_protocols": ">=TLSv1.2",
                "virtual_mailbox_domains": DOMAIN,
                "virtual_mailbox_base": str(self.mail_base),
                "virtual_mailbox_maps": "texthash:${config_directory}/vmailbox",
                "virtual_uid_maps": "static:" + str(pwd.getpwnam(MAILBOX_USER).pw_uid),
                "virtual_gid_maps": "static:" + str(grp.getgrnam(MAILBOX_GROUP).gr_gid),
                **(receiver_main_cf or {}),
            },
            {"vmailbox": f"{RECIPIENT} {self.maildir.name}/\n"},
        )
        self.sender = PostfixInstance(
            "sender", self.base_dir / "sender", sender_port,
            {
                "myhostname": "sender.postfix-bench.invalid",
                "mynetworks": "127.0.0.0/8",
                "transport_maps": "texthash:${config_directory}/transport",
                "smtp_tls_security_level": "encrypt",
                "smtp_tls_cert_file": str(Path(client_cert).absolute()),
                "smtp_tls_key_file": str(Path(client_key).absolute()),
                "smtp_tls_CAfile": str(Path(ca_file).absolute()),
                "smtp_tls_protocols": ">=TLSv1.2",
                "smtp_tls_mandatory_protocols": ">=TLSv1.2",
                **(sender_main_cf or {}),
            },
            {"transport": f"{DOMAIN} smtp:[127.0.0.1]:{receiver_port}\n"},
        )

    @property
    def version(self) -> str:
        """The Postfix version, e.g. ``"3.7.11"``."""
        if self._version is None:
            self._version = postfix_version()
        return self._version

    def configure(self) -> None:
        """Write both configurations and create the Maildir (start() calls it)."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.base_dir.chmod(0o755)
        grant_search(self.base_dir)
        Maildir(self.maildir).create()
        self.receiver.write_config()
        self.sender.write_config()

    def start(self) -> None:
        """Configure and start the receiver, then the sender; stop both on failure."""
        try:
            self.configure()
            self.receiver.start()
            self.sender.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop both instances and wait for their processes to exit; always safe."""
        errors: list[BaseException] = []
        for instance in (self.sender, self.receiver):
            try:
                instance.stop()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise PostfixError("; ".join(str(e) for e in errors))

    def __enter__(self) -> PostfixPair:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def delivered(self) -> list[DeliveredMessage]:
        """The messages stored in the Maildir, oldest first (see ``Maildir.delivered``)."""
        return Maildir(self.maildir).delivered()

    def delivered_count(self) -> int:
        """How many messages are in the Maildir (cheaper than len(delivered()))."""
        return Maildir(self.maildir).count()

    def clear_mailbox(self) -> None:
        """Delete every message in the Maildir (e.g. after a warm-up)."""
        Maildir(self.maildir).clear()

    def queue_empty(self) -> bool:
        """True when the sender's queue holds no message (all relayed)."""
        return self.sender.queue_size() == 0


# -- Postfix as an MSSanté operator ---------------------------------------------------------

@dataclass(frozen=True)
class Peer:
    """Another operator as Postfix's transport and TLS policy tables name it."""

    domain: str  # its mail domain, e.g. ch-xyz.mssante.fr
    nexthop: str  # its MTA, "host:port"
    certificate_name: str  # a DNS name in its MTA certificate, e.g. mta.ch-xyz.mssante.fr


def mssante_operator_config(*, domain: str, hostname: str, cert_file: str, key_file: str,
                            ca_file: str, mailbox_base: str, peers: Sequence[Peer],
                            mailboxes: Sequence[str]
                            ) -> tuple[dict[str, str], dict[str, str]]:
    """The main.cf settings and lookup tables that make Postfix an MSSanté operator.

    The configuration the README shows (section "Another MTA as an operator") and the
    interoperability test runs (tests/e2e/test_postfix_operator.py):

    - sending (smtp): STARTTLS mandatory with TLS >= 1.2, the server's certificate
      verified against the trust space's root and its name (``secure``, ``match=`` the
      peer's MTA name, per peer in ``tls_policy``), the operator's certificate chain
      (leaf then intermediate CA, as ``mssante pki issue`` writes it) presented as
      client certificate; each trust-space domain routed by ``transport``;
    - receiving (smtpd): STARTTLS mandatory with TLS >= 1.2, a client certificate
      required and verified against the root (mutual TLS); no relaying
      (``reject_unauth_destination``, nobody trusted by address); mail for ``domain``
      delivered by virtual(8) to a Maildir per mailbox under ``mailbox_base``.

    Postfix does not read the MSSanté whitelist: the DN checks stay on the mssante
    side, and Postfix trusts any certificate of the trust space.
    """
    main_cf = {
        "myhostname": hostname,
        # Postfix's own bounces come from MAILER-DAEMON@<myorigin>: the domain must be
        # one the whitelist lists for this certificate, or other operators refuse them
        "myorigin": domain,
        "mydestination": "",
        "mynetworks": "",
        "smtpd_relay_restrictions": "reject_unauth_destination",
        # sending: mutual TLS to the other operators
        "transport_maps": "texthash:${config_directory}/transport",
        "smtp_tls_security_level": "secure",
        "smtp_tls_policy_maps": "texthash:${config_directory}/tls_policy",
        "smtp_tls_cert_file": cert_file,
        "smtp_tls_key_file": key_file,
        "smtp_tls_CAfile": ca_file,
        "smtp_tls_protocols": ">=TLSv1.2",
        "smtp_tls_mandatory_protocols": ">=TLSv1.2",
        "smtp_tls_loglevel": "1",
        # receiving: mutual TLS from the other operators
        "smtpd_tls_security_level": "encrypt",
        "smtpd_tls_cert_file": cert_file,
        "smtpd_tls_key_file": key_file,
        "smtpd_tls_CAfile": ca_file,
        "smtpd_tls_ask_ccert": "yes",
        "smtpd_tls_req_ccert": "yes",
        "smtpd_tls_protocols": ">=TLSv1.2",
        "smtpd_tls_mandatory_protocols": ">=TLSv1.2",
        "smtpd_tls_loglevel": "1",
        # local delivery: one Maildir per mailbox
        "virtual_mailbox_domains": domain,
        "virtual_mailbox_base": mailbox_base,
        "virtual_mailbox_maps": "texthash:${config_directory}/vmailbox",
        "virtual_uid_maps": "static:" + str(pwd.getpwnam(MAILBOX_USER).pw_uid),
        "virtual_gid_maps": "static:" + str(grp.getgrnam(MAILBOX_GROUP).gr_gid),
    }
    files = {
        "transport": "".join(f"{p.domain} smtp:[{_host(p.nexthop)}]:{_port(p.nexthop)}\n"
                             for p in peers),
        "tls_policy": "".join(f"[{_host(p.nexthop)}]:{_port(p.nexthop)} secure "
                              f"match={p.certificate_name}\n" for p in peers),
        "vmailbox": "".join(f"{m}@{domain} {m}/\n" for m in mailboxes),
    }
    return main_cf, files


def _host(nexthop: str) -> str:
    return nexthop.rpartition(":")[0]


def _port(nexthop: str) -> str:
    return nexthop.rpartition(":")[2]


class PostfixOperator:
    """One Postfix instance serving ``domain`` as an operator of the trust space.

    Its MTA listens on 127.0.0.1:``port``; mail for ``<mailbox>@domain`` goes to
    ``base_dir/mail/<mailbox>/`` (a Maildir); ``send`` submits a message with Postfix's
    own sendmail(1), as a local program would.
    """

    def __init__(self, base_dir: Path, *, domain: str, port: int, cert_file: Path,
                 key_file: Path, ca_file: Path, peers: Sequence[Peer],
                 mailboxes: Sequence[str]) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.domain = domain
        self.port = port
        self.mail_base = self.base_dir / "mail"
        self.mailboxes = tuple(mailboxes)
        main_cf, files = mssante_operator_config(
            domain=domain, hostname=f"mta.{domain}", cert_file=str(Path(cert_file).absolute()),
            key_file=str(Path(key_file).absolute()), ca_file=str(Path(ca_file).absolute()),
            mailbox_base=str(self.mail_base), peers=peers, mailboxes=mailboxes)
        self.instance = PostfixInstance("operator", self.base_dir / "postfix", port, main_cf,
                                        files)

    def maildir(self, mailbox: str) -> Maildir:
        return Maildir(self.mail_base / mailbox)

    def start(self) -> None:
        """Write the configuration, create the Maildirs and start; stop on failure."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.base_dir.chmod(0o755)
        grant_search(self.base_dir)
        for mailbox in self.mailboxes:
            self.maildir(mailbox).create()
        self.instance.write_config()
        try:
            self.instance.start()
        except BaseException:
            self.instance.stop()
            raise

    def stop(self) -> None:
        self.instance.stop()

    def __enter__(self) -> PostfixOperator:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> None:
        """Submit ``message`` through this instance's sendmail(1) (pickup, then smtp)."""
        try:
            proc = subprocess.run([_sbin("sendmail"), "-C", str(self.instance.config_dir),
                                   "-f", sender, "-i", "--", *recipients], input=message,
                                  capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostfixError(f"sendmail: {exc}") from exc
        if proc.returncode != 0:
            raise PostfixError(f"sendmail exited with {proc.returncode}: "
                               f"{proc.stderr.decode(errors='replace')}")

    def log(self) -> str:
        """The instance's whole log."""
        try:
            return self.instance.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""


# -- self-check -----------------------------------------------------------------------------



def _message(message_id: str, size: int) -> bytes:
    head = (f"From: dupont@ch-xyz.mssante.fr\r\nTo: {RECIPIENT}\r\n"
            f"Subject: bench {message_id}\r\nMessage-ID: <{message_id}>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n").encode()
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tem\r\n"
    body = line * max(1, (size - len(head)) // len(line) + 1)
    return head + body[:max(0, size - len(head))]


def _send(port: int, ids: list[str], size: int, sent: dict[str, float],
          errors: list[str], lock: threading.Lock) -> None:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
            for message_id in ids:
                data = _message(message_id, size)
                t0 = time.time()
                client.sendmail("dupont@ch-xyz.mssante.fr", [RECIPIENT], data)
                with lock:
                    sent[message_id] = t0
    except (OSError, smtplib.SMTPException) as exc:
        with lock:
            errors.append(repr(exc))


def self_check(messages: int, size: int, connections: int, keep: Path | None,
               settings: list[str] | None = None) -> int:
    from mssante.pki.ca import PKI

    print(f"Postfix {ensure_postfix_installed()}")
    base = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="postfix-bench-"))
    pki = PKI.create_or_load(base / "pki")
    certs = base / "certs"
    certs.mkdir(exist_ok=True)
    server = pki.issue_server("mta.medecin.mssante.fr", organisation="MEDECIN",
                              ip_addresses=["127.0.0.1"], out_dir=certs, name="receiver")
    client = pki.issue_server("mta.ch-xyz.mssante.fr", organisation="CH XYZ",
                              ip_addresses=["127.0.0.1"], out_dir=certs, name="sender")
    sender_port, receiver_port = free_ports(2)
    extra: dict[str, dict[str, str]] = {"sender": {}, "receiver": {}}
    for setting in settings or []:
        which, _, assignment = setting.partition(":")
        key, _, value = assignment.partition("=")
        extra[which][key.strip()] = value.strip()
    pair = PostfixPair(base / "postfix", sender_port=sender_port, receiver_port=receiver_port,
                       tls_cert=server.cert_file, tls_key=server.key_file,
                       ca_file=pki.root_cert_file, client_cert=client.cert_file,
                       client_key=client.key_file, sender_main_cf=extra["sender"],
                       receiver_main_cf=extra["receiver"])
    failures: list[str] = []
    try:
        pair.start()
        print(f"sender on 127.0.0.1:{sender_port}, receiver on 127.0.0.1:{receiver_port}, "
              f"in {pair.base_dir}")
        ids = [f"{uuid.uuid4().hex}@bench.invalid" for _ in range(messages)]
        sent: dict[str, float] = {}
        errors: list[str] = []
        lock = threading.Lock()
        threads = [threading.Thread(target=_send, args=(sender_port, ids[i::connections], size,
                                                        sent, errors, lock))
                   for i in range(connections)]
        started = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        accepted_at = time.time()
        failures += [f"send error: {e}" for e in errors]
        deadline = time.monotonic() + 60 + messages / 10
        while pair.delivered_count() < len(sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        delivered = pair.delivered()
        elapsed = (max(m.mtime for m in delivered) if delivered else time.time()) - started
        seen = Counter(m.header("Message-ID") for m in delivered)
        missing = [i for i in sent if seen[f"<{i}>"] == 0]
        duplicates = [i for i, n in seen.items() if n > 1]
        unknown = [i for i in seen if i is None or i[1:-1] not in sent]
        if missing:
            failures.append(f"{len(missing)} accepted messages not delivered")
        if duplicates:
            failures.append(f"{len(duplicates)} messages delivered more than once")
        if unknown:
            failures.append(f"{len(unknown)} unexpected messages in the Maildir")
        if delivered and "ESMTPS" not in (delivered[0].header("Received") or ""):
            failures.append("the receiver's Received header does not show ESMTPS (TLS)")
        latencies = sorted(m.mtime - sent[h[1:-1]] for m in delivered
                           if (h := m.header("Message-ID")) and h[1:-1] in sent)
        print(f"{len(sent)}/{messages} accepted in {accepted_at - started:.2f} s, "
              f"{len(delivered)} delivered; elapsed {elapsed:.2f} s "
              f"({len(delivered) / elapsed if elapsed > 0 else 0:.1f} msg/s)")
        if len(latencies) >= 2:
            q = statistics.quantiles(latencies, n=100)
            print(f"latency p50 {q[49] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms")
        deadline = time.monotonic() + 10
        while not pair.queue_empty() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not pair.queue_empty():
            failures.append(f"sender queue not empty: {pair.sender.queue_size()} messages")
    finally:
        pair.stop()
    if pair.sender.processes() or pair.receiver.processes():
        failures.append("Postfix processes left after stop()")
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    if failures:
        print(f"logs: {pair.sender.log_file} {pair.receiver.log_file}", file=sys.stderr)
    if not keep and not failures:
        shutil.rmtree(base, ignore_errors=True)
    print("OK" if not failures else "FAILED")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--size", type=int, default=2048, help="message size in bytes")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--keep", type=Path, default=None,
                        help="work in this directory and keep it (default: a temp dir)")
    parser.add_argument("--set", action="append", default=[], metavar="WHICH:KEY=VALUE",
                        help="extra main.cf setting, WHICH = sender or receiver (experiments)")
    args = parser.parse_args(argv)
    for setting in args.set:
        if setting.partition(":")[0] not in ("sender", "receiver") or "=" not in setting:
            parser.error(f"--set {setting!r}: expected sender:KEY=VALUE or receiver:KEY=VALUE")
    return self_check(args.messages, args.size, max(1, args.connections), args.keep,
                      args.set)


if __name__ == "__main__":
    sys.exit(main())
