"""A private Dovecot IMAP server: the classic IMAP server next to mssante's.

``Dovecot`` runs, on 127.0.0.1, an instance of the system's Dovecot (Debian's
``dovecot-imapd`` package) with its own configuration and everything under
``base_dir``::

    dovecot.conf        the whole configuration (no include of /etc/dovecot)
    users               passwd-file of the accounts: ``login:{PLAIN}password`` (or
                        ``login:{ARGON2ID}<hash>`` with ``password_scheme``)
    run/                base_dir (sockets, master.pid, login chroot)
    state/              state_dir
    dovecot.log         every log line (there is no syslog daemon here)
    home/<login>/Maildir/{cur,new,tmp}   INBOX of each account (Maildir++)
    home/<login>/Maildir/.<folder>/      other folders

Settings, all because the setup needs them; otherwise Dovecot's defaults (fsync
``optimized``, index and cache files, one ``imap`` process per connection, IDLE,
CONDSTORE, QRESYNC, LITERAL+ advertised as Dovecot does by default):

- ``protocols = imap``, ``listen = 127.0.0.1``, ``base_dir``, ``state_dir``,
  ``instance_name``, ``log_path``: a private instance on loopback, next to (and
  independent of) any system instance; ``/etc/dovecot`` is not read;
- ``disable_plaintext_auth = no``, ``auth_mechanisms = plain login``: the benchmark
  logs in with LOGIN on the plain port too;
- ``passdb`` passwd-file with ``scheme=PLAIN``, ``userdb`` static: the accounts and
  their home ``home/<login>``, ``mail_location = maildir:~/Maildir``;
- mail processes run as the system user ``vmail`` (created if missing, as a system
  user without a home or a shell): Dovecot refuses mail access as root ("userdb
  returned 0 as uid") whatever ``first_valid_uid`` says, so ``first_valid_uid`` is
  that user's uid and the Maildirs are owned by it;
- ``ssl = yes`` with the given certificate and key (``ssl_min_protocol = TLSv1.2``),
  an implicit-TLS listener on ``tls_port``, when a certificate is given; otherwise
  ``ssl = no``;
- for ``max_connections`` concurrent clients (default 1,000; the memory run uses
  10,000): ``service imap { process_limit }`` (one process per connection, Dovecot's
  design), ``mail_max_userip_connections`` (10 per user and IP by default: the
  benchmark's clients all come from 127.0.0.1 as a few users), and
  ``default_client_limit`` (anvil, auth, log and config take a connection from every
  process), and the master's ``RLIMIT_NOFILE`` raised to match (up to the hard limit
  when that cannot be raised: 20,000 on the benchmark machine, enough for 10,000);
- ``service imap-login``: Dovecot's "high-performance" login mode (``service_count =
  0``, one login process per core, each holding up to ``max_connections`` clients,
  ``vsz_limit = 1G``), which Dovecot's documentation recommends for installations with
  many connections. In its default "high-security" mode every TLS connection keeps a
  login process of its own as a proxy for its whole life, which would double the number
  of processes in the memory run. ``login_mode="high-security"`` keeps Dovecot's default.

Outside the configuration, ``start()`` raises the system's
``fs.inotify.max_user_instances`` (128 by default) to ``max_connections`` + 1,000 when it
is lower: each ``imap`` process in IDLE watches its Maildir with an inotify instance of
its own, and past the limit Dovecot logs a warning and polls every 30 s instead.

``write_messages`` fills a folder before Dovecot first looks at it: one file per
message in ``cur/`` named ``<time>.M<n>P<pid>Q<seq>.bench,S=<size>,W=<vsize>:2,<flags>``
(flags as Maildir letters, keywords as the letters of ``dovecot-keywords``), mtime
set to the INTERNALDATE (Dovecot's received date for Maildir), and a
``dovecot-uidlist`` giving UIDs 1..N in the order given, so that both servers of the
benchmark hold the same messages under the same UIDs. Dovecot builds its index at
the first SELECT.

Processes: Dovecot's master daemonises and writes ``run/master.pid``; the instance's
processes are the master and its descendants. ``memory()`` sums their RSS (VmRSS) and
PSS (``smaps_rollup``): RSS counts the shared pages (libraries, mmap'ed index files)
once per process and overstates what thousands of ``imap`` processes really take; PSS
shares them out.

Self-check (as root, from the project root)::

    python -m bench.peers.dovecot                    # 1,000 messages, SELECT with imaplib
    python -m bench.peers.dovecot --messages 100000 --tls
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import imaplib
import os
import pwd
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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

MAIL_USER = "vmail"
PACKAGE = "dovecot-imapd"

# Maildir info letters of the system flags (the letters must be in ASCII order).
# https://cr.yp.to/proto/maildir.html, Dovecot's maildir-keywords.c
_FLAG_LETTERS = {"\\draft": "D", "\\flagged": "F", "\\answered": "R", "\\seen": "S",
                 "\\deleted": "T"}
_KEYWORD_LETTERS = "abcdefghijklmnopqrstuvwxyz"  # dovecot-keywords: index -> letter


class DovecotError(PeerError):
    """Dovecot could not be installed, configured, started or stopped."""


# -- installation ---------------------------------------------------------------------------

def _binary(name: str) -> str:
    return program(name, PACKAGE, DovecotError)


def _run(args: list[str], *, timeout: float = 60, env: dict[str, str] | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(args, error=DovecotError, timeout=timeout, env=env, check=check)


def dovecot_version() -> str:
    """The installed Dovecot's version, e.g. ``"2.3.19.1"``."""
    return _run([_binary("dovecot"), "--version"]).stdout.split()[0]


def _installed() -> bool:
    return shutil.which("dovecot", path="/usr/sbin:/usr/bin:/sbin:/bin") is not None and \
        Path("/usr/lib/dovecot/imap").exists()


def _disable_system_instance() -> None:
    """Make sure the package's own instance neither runs nor starts at boot."""
    disable_service("dovecot", DovecotError)
    pid_file = Path("/run/dovecot/master.pid")
    if pid_file.exists():
        _run([_binary("dovecot"), "stop"], check=False)


def ensure_dovecot_installed() -> str:
    """Install Debian's ``dovecot-imapd`` if missing; return the Dovecot version.

    The package's own instance is disabled (and stopped if it runs) after installing.
    Needs root when installing.
    """
    if not _installed():
        if os.geteuid() != 0:
            raise DovecotError(f"Dovecot is not installed, and installing {PACKAGE} needs root")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        _run(["apt-get", "update", "-q"], env=env, timeout=600)
        _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", PACKAGE],
             env=env, timeout=900)
        _disable_system_instance()
        if not _installed():
            raise DovecotError(f"apt-get installed {PACKAGE} but Dovecot is not found")
    return dovecot_version()


def ensure_mail_user() -> tuple[int, int]:
    """The uid and gid of ``vmail``, created as a system user when missing."""
    try:
        entry = pwd.getpwnam(MAIL_USER)
    except KeyError:
        _run(["useradd", "--system", "--user-group", "--no-create-home",
              "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", MAIL_USER])
        entry = pwd.getpwnam(MAIL_USER)
    return entry.pw_uid, entry.pw_gid


# -- processes ------------------------------------------------------------------------------

def _children() -> dict[int, list[int]]:
    """ppid → pids of the live (non-zombie) processes."""
    tree: dict[int, list[int]] = {}
    for pid, fields in live_processes().items():
        tree.setdefault(int(fields[1]), []).append(pid)
    return tree


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it."""
    tree = _children()
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, ()))
    return found


@dataclass(frozen=True)
class Memory:
    """Memory of a set of processes, in bytes."""

    processes: int
    rss: int  # sum of VmRSS: shared pages counted once per process
    pss: int  # sum of Pss: shared pages divided among the processes sharing them
    by_name: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    # comm -> (processes, rss, pss)


def process_memory(pids: Iterable[int]) -> Memory:
    """RSS and PSS of ``pids`` from /proc (processes gone meanwhile are skipped)."""
    total_rss = total_pss = count = 0
    by_name: dict[str, tuple[int, int, int]] = {}
    for pid in pids:
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            rss = pss = 0
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                    break
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
                    break
        except (OSError, ValueError):
            continue
        count += 1
        total_rss += rss
        total_pss += pss
        n, r, p = by_name.get(comm, (0, 0, 0))
        by_name[comm] = (n + 1, r + rss, p + pss)
    return Memory(count, total_rss, total_pss, by_name)


# -- messages -------------------------------------------------------------------------------

def maildir_info(flags: str, keywords: list[str]) -> str:
    """The ``2,<letters>`` info of a message with IMAP ``flags`` (space separated).

    Keywords get the letter of their index in ``keywords``, appended when new
    (Dovecot's ``dovecot-keywords``, at most 26).
    """
    letters: set[str] = set()
    for flag in flags.split():
        letter = _FLAG_LETTERS.get(flag.lower())
        if letter is not None:
            letters.add(letter)
        elif flag.startswith("\\"):
            continue  # \Recent and unknown system flags are not stored
        else:
            if flag not in keywords:
                if len(keywords) == len(_KEYWORD_LETTERS):
                    raise DovecotError(f"more than 26 keywords: {flag}")
                keywords.append(flag)
            letters.add(_KEYWORD_LETTERS[keywords.index(flag)])
    return "2," + "".join(sorted(letters))


# -- the instance ---------------------------------------------------------------------------

class Dovecot:
    """A private Dovecot on 127.0.0.1; see the module docstring."""

    def __init__(self, base_dir: Path, *, port: int, users: Mapping[str, str],
                 tls_port: int | None = None, tls_cert: Path | None = None,
                 tls_key: Path | None = None, max_connections: int = 1000,
                 login_mode: str = "high-performance",
                 settings: Mapping[str, str] | None = None,
                 password_scheme: str = "PLAIN") -> None:
        """``users``: login → password, or with ``password_scheme`` (e.g.
        ``"ARGON2ID"``) login → the hash in that scheme, as Dovecot reads it after
        ``{SCHEME}``. ``settings``: extra top-level dovecot.conf settings (override
        ours), e.g. ``auth_cache_size``."""
        if (tls_port is None) != (tls_cert is None) or (tls_cert is None) != (tls_key is None):
            raise ValueError("tls_port, tls_cert and tls_key go together")
        if login_mode not in ("high-performance", "high-security"):
            raise ValueError(f"login_mode: {login_mode!r}")
        for login, password in users.items():
            if not login or any(c in login + password for c in ":\n\r") or "/" in login:
                raise ValueError(f"unusable login or password for a passwd-file: {login!r}")
        self.base_dir = Path(base_dir).absolute()
        self.port = port
        self.tls_port = tls_port
        self.tls_cert = Path(tls_cert).absolute() if tls_cert else None
        self.tls_key = Path(tls_key).absolute() if tls_key else None
        self.users = dict(users)
        self.max_connections = max_connections
        self.login_mode = login_mode
        self.settings = dict(settings or {})
        self.password_scheme = password_scheme
        self.config_file = self.base_dir / "dovecot.conf"
        self.run_dir = self.base_dir / "run"
        self.state_dir = self.base_dir / "state"
        self.log_file = self.base_dir / "dovecot.log"
        self.users_file = self.base_dir / "users"
        self._version: str | None = None
        self._uid, self._gid = -1, -1

    @property
    def version(self) -> str:
        """The Dovecot version, e.g. ``"2.3.19.1"``."""
        if self._version is None:
            self._version = dovecot_version()
        return self._version

    def home(self, user: str) -> Path:
        return self.base_dir / "home" / user

    def maildir(self, user: str, folder: str = "INBOX") -> Path:
        """The Maildir of ``folder`` (Maildir++: ``.Name`` below INBOX's, "/" → ".")."""
        root = self.home(user) / "Maildir"
        if folder.upper() == "INBOX":
            return root
        return root / ("." + folder.replace("/", "."))

    # -- configuration

    def _config_text(self) -> str:
        cores = os.cpu_count() or 1
        clients = max(1000, self.max_connections)
        lines = [
            "# Written by bench/peers/dovecot.py; see its docstring for why each setting.",
            "protocols = imap",
            "listen = 127.0.0.1",
            f"base_dir = {self.run_dir}",
            f"state_dir = {self.state_dir}",
            f"instance_name = dovecot-bench-{self.port}",
            f"log_path = {self.log_file}",
            "disable_plaintext_auth = no",
            "auth_mechanisms = plain login",
            f"first_valid_uid = {self._uid}",
            f"mail_uid = {self._uid}",
            f"mail_gid = {self._gid}",
            "mail_location = maildir:~/Maildir",
            f"default_client_limit = {clients + 1000}",
        ]
        if self.tls_cert is not None and self.tls_key is not None:
            lines += ["ssl = yes", f"ssl_cert = <{self.tls_cert}", f"ssl_key = <{self.tls_key}",
                      "ssl_min_protocol = TLSv1.2"]
            if Path("/usr/share/dovecot/dh.pem").exists():
                lines.append("ssl_dh = </usr/share/dovecot/dh.pem")
        else:
            lines.append("ssl = no")
        lines += [f"{key} = {value}" for key, value in self.settings.items()]
        lines += [
            "passdb {",
            "  driver = passwd-file",
            f"  args = scheme=PLAIN username_format=%u {self.users_file}",
            "}",
            "userdb {",
            "  driver = static",
            f"  args = uid={self._uid} gid={self._gid} home={self.base_dir}/home/%u",
            "}",
            "protocol imap {",
            f"  mail_max_userip_connections = {clients}",
            "}",
            "service imap {",
            f"  process_limit = {clients}",
            "}",
            "service imap-login {",
            "  inet_listener imap {",
            "    address = 127.0.0.1",
            f"    port = {self.port}",
            "  }",
            "  inet_listener imaps {",
            "    address = 127.0.0.1",
            f"    port = {self.tls_port if self.tls_port is not None else 0}",
            "    ssl = yes",
            "  }",
        ]
        if self.login_mode == "high-performance":
            lines += ["  service_count = 0", f"  process_min_avail = {cores}",
                      f"  client_limit = {clients}", "  vsz_limit = 1G"]
        else:
            lines += [f"  process_limit = {clients}"]
        lines += ["}", ""]
        return "\n".join(lines)

    def configure(self) -> None:
        """Write dovecot.conf and the passwd-file, create the homes (start() calls it)."""
        self._prepare()
        for d in (self.run_dir, self.state_dir):
            d.mkdir(exist_ok=True)
        self.config_file.write_text(self._config_text())
        self.users_file.write_text("".join(f"{login}:{{{self.password_scheme}}}{password}\n"
                                           for login, password in self.users.items()))
        # The auth process runs as Dovecot's internal user and reads the passwd-file.
        self.users_file.chmod(0o640)
        os.chown(self.users_file, 0, grp.getgrnam("dovecot").gr_gid)
        for user in self.users:
            self._make_maildir(self.maildir(user))
        check = _run([_binary("doveconf"), "-c", str(self.config_file), "-n"], check=False)
        if check.returncode != 0:
            raise DovecotError(f"doveconf: {(check.stdout + check.stderr).strip()}")

    def _prepare(self) -> None:
        """The mail user, and ``base_dir`` and ``home/`` reachable by it."""
        if self._uid < 0:
            self._uid, self._gid = ensure_mail_user()
        for d in (self.base_dir, self.base_dir / "home"):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o755)
        grant_search(self.base_dir)

    def _make_maildir(self, path: Path) -> None:
        home = path
        while home.name != "Maildir":
            home = home.parent
        for d in (home.parent, home, path, path / "cur", path / "new", path / "tmp"):
            d.mkdir(exist_ok=True)
            d.chmod(0o700)
            os.chown(d, self._uid, self._gid)

    def write_messages(self, user: str, messages: Iterable[tuple[bytes, str, float]],
                       folder: str = "INBOX", *, uidvalidity: int | None = None) -> int:
        """Write ``(body, flags, internaldate)`` messages into a new folder; return how many.

        UIDs are 1..N in the order given. The folder must not have been written or
        opened yet (it must have no ``dovecot-uidlist``); the files are not fsync'ed.
        """
        self._prepare()
        path = self.maildir(user, folder)
        self._make_maildir(path)
        uidlist = path / "dovecot-uidlist"
        if uidlist.exists():
            raise DovecotError(f"{path} already has messages (write_messages fills a new "
                               "folder)")
        keywords: list[str] = []
        names: list[str] = []
        cur = str(path / "cur")
        pid = os.getpid()
        uid, gid = self._uid, self._gid
        flags_wr = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        for seq, (body, flags, internaldate) in enumerate(messages, 1):
            size = len(body)
            vsize = size + body.count(b"\n") - body.count(b"\r\n")
            base = f"{int(internaldate)}.M{seq}P{pid}Q{seq}.bench,S={size},W={vsize}"
            fd = os.open(f"{cur}/{base}:{maildir_info(flags, keywords)}", flags_wr, 0o600)
            try:
                os.write(fd, body)
                os.fchown(fd, uid, gid)
                os.utime(fd, (internaldate, internaldate))
            finally:
                os.close(fd)
            names.append(base)
        if keywords:
            _write_owned(path / "dovecot-keywords",
                         "".join(f"{i} {k}\n" for i, k in enumerate(keywords)), uid, gid)
        validity = uidvalidity if uidvalidity is not None else int(time.time())
        lines = [f"3 V{validity} N{len(names) + 1}\n"]
        lines += [f"{i} :{name}\n" for i, name in enumerate(names, 1)]
        _write_owned(uidlist, "".join(lines), uid, gid)
        if folder.upper() != "INBOX":
            subscriptions = self.maildir(user) / "subscriptions"
            existing = subscriptions.read_text() if subscriptions.exists() else ""
            _write_owned(subscriptions, existing + folder + "\n", uid, gid)
        return len(names)

    # -- running

    def master_pid(self) -> int | None:
        """The running master's pid, None when the instance is not running."""
        try:
            pid = int((self.run_dir / "master.pid").read_text().strip())
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            return None
        return pid if state not in ("Z", "X") else None

    def processes(self) -> list[int]:
        """The live processes of this instance: the master and its descendants."""
        pid = self.master_pid()
        return [] if pid is None else descendants(pid)

    def memory(self) -> Memory:
        """RSS and PSS of all the instance's processes (master, auth, login, imap...)."""
        return process_memory(self.processes())

    def start(self) -> None:
        """Configure and start the instance; wait for its port(s). Stops it on failure."""
        if self.master_pid() is not None:
            raise DovecotError("already running")
        try:
            self.configure()
            _raise_inotify_instances(self.max_connections + 1000)
            needed = 2 * max(1000, self.max_connections) + 4096

            def raise_fd_limit() -> None:  # up to the hard limit if it cannot be raised
                soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
                if soft < needed:
                    try:
                        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, max(hard, needed)))
                    except (ValueError, OSError):
                        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

            # The master daemonises: its output goes to a file, not to a pipe that its
            # children would keep open.
            startup = self.base_dir / "startup.log"
            with startup.open("wb") as out:
                code = subprocess.run([_binary("dovecot"), "-c", str(self.config_file)],
                                      stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                      timeout=60, check=False,
                                      preexec_fn=raise_fd_limit).returncode
            if code != 0:
                raise DovecotError(f"dovecot exited with {code}: "
                                   f"{startup.read_text(errors='replace').strip()}\n"
                                   f"{self.log_tail()}")
            deadline = time.monotonic() + 15
            for port in (self.port, self.tls_port):
                if port is None:
                    continue
                while True:
                    with contextlib.suppress(OSError), \
                            socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                    if time.monotonic() > deadline:
                        raise DovecotError(f"nothing listens on 127.0.0.1:{port}\n"
                                           f"{self.log_tail()}")
                    time.sleep(0.05)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 30) -> None:
        """Stop the instance and wait until all its processes are gone; safe to repeat."""
        master = self.master_pid()
        if master is None:
            return
        pids = set(descendants(master))
        with contextlib.suppress(ProcessLookupError):
            os.kill(master, signal.SIGTERM)

        def remaining() -> list[int]:
            live = {p for ps in _children().values() for p in ps}
            return [p for p in pids if p in live]

        wait_gone(remaining, timeout)

    def __enter__(self) -> Dovecot:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    async def __aenter__(self) -> Dovecot:
        import asyncio

        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        import asyncio

        await asyncio.to_thread(self.stop)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return f"({self.log_file}: no log)"
        return "\n".join(text.splitlines()[-lines:])

    def log_problems(self) -> list[str]:
        """The log's warning, error and fatal lines."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines()
                if re.search(r": (Warning|Error|Fatal|Panic): ", line)]


def _raise_inotify_instances(needed: int) -> None:
    """Raise fs.inotify.max_user_instances to ``needed`` if lower (see the docstring)."""
    path = Path("/proc/sys/fs/inotify/max_user_instances")
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text()) < needed:
            path.write_text(f"{needed}\n")


def _write_owned(path: Path, text: str, uid: int, gid: int) -> None:
    path.write_text(text)
    path.chmod(0o600)
    os.chown(path, uid, gid)




# -- self-check -----------------------------------------------------------------------------



def _sample(index: int) -> tuple[bytes, str, float]:
    body = (f"From: Dr Paul Dupont <dupont@ch-xyz.mssante.fr>\r\n"
            f"To: <jean.martin@medecin.mssante.fr>\r\nSubject: Compte rendu {index}\r\n"
            f"Message-ID: <check-{index}@ch-xyz.mssante.fr>\r\n\r\n"
            "Examen clinique sans particularite.\r\n").encode()
    flags = ("\\Seen", "\\Seen \\Answered", "", "\\Flagged $Label1")[index % 4]
    return body, flags, 1_700_000_000.0 + index * 60


def self_check(messages: int, tls: bool, keep: Path | None) -> int:
    print(f"Dovecot {ensure_dovecot_installed()}")
    base = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="dovecot-bench-"))
    user, password = "jean.martin@medecin.mssante.fr", "secret-for-the-check"
    port, tls_port = free_ports(2)
    cert = key = ca = None
    if tls:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
        from mssante.pki.ca import PKI

        pki = PKI.create_or_load(base / "pki")
        issued = pki.issue_server("imap.medecin.mssante.fr", organisation="MEDECIN",
                                  ip_addresses=["127.0.0.1"], out_dir=base / "pki-out",
                                  name="imap")
        cert, key, ca = issued.cert_file, issued.key_file, pki.root_cert_file
    server = Dovecot(base / "dovecot", port=port, users={user: password},
                     tls_port=tls_port if tls else None, tls_cert=cert, tls_key=key)
    failures: list[str] = []
    t0 = time.monotonic()
    server.write_messages(user, (_sample(i) for i in range(messages)))
    print(f"{messages} messages written in {time.monotonic() - t0:.2f} s")
    try:
        server.start()
        print(f"listening on 127.0.0.1:{port}" + (f" and {tls_port} (TLS)" if tls else "")
              + f", in {server.base_dir}")
        if tls and ca is not None:
            context = ssl.create_default_context(cafile=str(ca))
            context.check_hostname = False
            client: imaplib.IMAP4 = imaplib.IMAP4_SSL("127.0.0.1", tls_port, ssl_context=context)
        else:
            client = imaplib.IMAP4("127.0.0.1", port)
        with client:
            client.login(user, password)
            t0 = time.monotonic()
            status, data = client.select("INBOX")
            print(f"first SELECT: {data[0]!r} EXISTS in {time.monotonic() - t0:.2f} s")
            if status != "OK" or data[0] != str(messages).encode():
                failures.append(f"SELECT gave {status} {data!r}, expected {messages} EXISTS")
            if messages:
                _, data = client.uid("FETCH", "1:4", "(FLAGS INTERNALDATE RFC822.SIZE)")
                for line in data:
                    print(f"  {line!r}")
                for i, line in enumerate(data[:4]):
                    expected_flags = _sample(i)[1]
                    got = re.search(rb"FLAGS \(([^)]*)\)", line)  # type: ignore[arg-type]
                    if got is None or set(got.group(1).decode().split()) != \
                            set(expected_flags.split()):
                        failures.append(f"message {i + 1}: flags {line!r}, expected "
                                        f"{expected_flags!r}")
                _, data = client.uid("FETCH", "1", "(BODY.PEEK[])")
                if data[0][1] != _sample(0)[0]:  # type: ignore[index]
                    failures.append("message 1: the body differs from what was written")
            client.logout()
        memory = server.memory()
        print(f"{memory.processes} processes, RSS {memory.rss / 2**20:.1f} MiB, "
              f"PSS {memory.pss / 2**20:.1f} MiB")
        failures += [f"log: {line}" for line in server.log_problems()]
    finally:
        server.stop()
    if server.processes():
        failures.append("Dovecot processes left after stop()")
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    if not keep and not failures:
        shutil.rmtree(base, ignore_errors=True)
    print("OK" if not failures else f"FAILED (files in {base})")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--tls", action="store_true", help="also listen with implicit TLS "
                        "(certificate from the project's PKI) and check over it")
    parser.add_argument("--keep", type=Path, default=None,
                        help="work in this directory and keep it (default: a temp dir)")
    args = parser.parse_args(argv)
    return self_check(args.messages, args.tls, args.keep)


if __name__ == "__main__":
    sys.exit(main())
