"""A private Roundcube webmail: the webmail operators deploy today, next to mssante's.

``Roundcube`` runs Debian's Roundcube (``roundcube-core`` with ``roundcube-sqlite3``)
under PHP's built-in web server, on 127.0.0.1, with its own configuration and
everything under ``base_dir``::

    config/config.inc.php   the whole local configuration (below)
    config/defaults.inc.php, config/mimetypes.php   links to the package's
    roundcube.db            its SQLite database (sessions, users), created at first use
    logs/, temp/            Roundcube's log and temporary files
    php.log                 the web server's output

The web server is ``php -S 127.0.0.1:PORT -t /var/lib/roundcube/public_html`` (the
package's document root) with ``PHP_CLI_SERVER_WORKERS`` processes: PHP forks that many
workers on the one listening socket, each serving one request at a time, as php-fpm's
children do behind a web server; ``-q`` keeps it from logging every request.
``ROUNDCUBE_CONFIG_DIR`` points Roundcube at
``config/`` instead of ``/etc/roundcube`` (Roundcube's ``program/include/iniset.php``
reads it). OPcache is on (``opcache.enable``, PHP's default for the built-in server;
``-d`` makes it explicit). The built-in server closes the connection after each
response (no keep-alive) and speaks plain HTTP.

Configuration, all because the setup needs it; otherwise the package's defaults
(``defaults.inc.php``):

- ``db_dsnw``: SQLite in ``base_dir`` (Roundcube creates the schema from the package's
  ``SQL/sqlite.initial.sql`` when the file is missing);
- ``imap_host``: ``127.0.0.1:PORT``, the IMAP server given (plain IMAP on loopback);
  ``smtp_host`` empty (nothing is sent);
- ``des_key``: 24 random characters (encrypts the IMAP password in the session);
- ``plugins``: none; ``skin``: ``elastic`` (the package's); ``language``: ``fr_FR``;
- ``mail_pagesize``: the page size given (50, as mssante's); ``message_sort_col`` ``''``
  and ``message_sort_order`` ``DESC`` (the defaults: arrival order, newest first, as
  mssante lists by UID);
- ``imap_cache`` and ``messages_cache``: Roundcube's defaults (no cache: each request
  asks the IMAP server, whose own index is the cache) unless ``cache=True``, which sets
  ``imap_cache = 'db'`` and ``messages_cache = true`` (the folder index and the
  messages in Roundcube's database);
- ``log_dir`` and ``temp_dir`` in ``base_dir``; ``login_rate_limit`` 0 (the benchmark
  logs 50 sessions in at once from one address; the limit counts failed logins only,
  but is turned off so that it cannot get in the way).

Roundcube is installed with ``apt-get install --no-install-recommends roundcube-core
roundcube-sqlite3 php8.2-cli php8.2-cgi`` when missing (``php8.2-cgi`` satisfies the
``php`` dependency, which apt would otherwise satisfy with Apache's PHP module; no web
server is installed, and the Debian database configuration is declined).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from bench.peers.system import PeerError, program, run

PACKAGES = ["roundcube-core", "roundcube-sqlite3", "php8.2-cli", "php8.2-cgi"]
SHARE = Path("/usr/share/roundcube")
DOCROOT = Path("/var/lib/roundcube/public_html")
PACKAGE_CONFIG = Path("/etc/roundcube")


class RoundcubeError(PeerError):
    """Roundcube could not be installed, configured, started or stopped."""


def _installed() -> bool:
    return (DOCROOT / "index.php").exists() and (PACKAGE_CONFIG / "defaults.inc.php").exists() \
        and (SHARE / "SQL" / "sqlite.initial.sql").exists() and _php_has("pdo_sqlite")


def _php_has(module: str) -> bool:
    try:
        php = program("php", "php8.2-cli", RoundcubeError)
    except RoundcubeError:
        return False
    modules = run([php, "-m"], error=RoundcubeError, check=False).stdout.lower().split()
    return module in modules


def roundcube_version() -> str:
    """The installed Roundcube's version, e.g. ``"1.6.5"``, from its ``iniset.php``."""
    text = (SHARE / "program" / "include" / "iniset.php").read_text(errors="replace")
    for line in text.splitlines():
        if "RCMAIL_VERSION" in line and "define" in line:
            return line.split(",")[1].strip(" ');\"")
    return "unknown"


def php_version() -> str:
    return run([program("php", "php8.2-cli", RoundcubeError), "-r", "echo PHP_VERSION;"],
               error=RoundcubeError).stdout.strip()


def ensure_roundcube_installed() -> str:
    """Install Roundcube and PHP if missing (needs root); return Roundcube's version."""
    if not _installed():
        if os.geteuid() != 0:
            raise RoundcubeError("Roundcube is not installed, and installing it needs root: "
                                 "apt-get install --no-install-recommends "
                                 + " ".join(PACKAGES))
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["debconf-set-selections"], input=(
            "roundcube-core roundcube/dbconfig-install boolean false\n"), text=True,
            check=False, capture_output=True)
        run(["apt-get", "update", "-q"], error=RoundcubeError, env=env, timeout=600)
        run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES],
            error=RoundcubeError, env=env, timeout=900)
        if not _installed():
            raise RoundcubeError("apt-get installed Roundcube but its files are not found")
    return roundcube_version()


def _php_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Roundcube:
    """A private Roundcube on 127.0.0.1; see the module docstring."""

    def __init__(self, base_dir: Path, *, port: int, imap_port: int, workers: int,
                 page_size: int = 50, cache: bool = False) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.port = port
        self.imap_port = imap_port
        self.workers = workers
        self.page_size = page_size
        self.cache = cache
        self.config_dir = self.base_dir / "config"
        self.log_file = self.base_dir / "php.log"
        self.url = f"http://127.0.0.1:{port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def config_text(self) -> str:
        settings: dict[str, str] = {
            "db_dsnw": _php_string(f"sqlite:///{self.base_dir / 'roundcube.db'}?mode=0640"),
            "imap_host": _php_string(f"127.0.0.1:{self.imap_port}"),
            "smtp_host": "''",
            "des_key": _php_string(secrets.token_urlsafe(18)[:24]),
            "plugins": "[]",
            "skin": "'elastic'",
            "language": "'fr_FR'",
            "mail_pagesize": str(self.page_size),
            "message_sort_col": "''",
            "message_sort_order": "'DESC'",
            "imap_cache": "'db'" if self.cache else "null",
            "messages_cache": "true" if self.cache else "false",
            "log_dir": _php_string(f"{self.base_dir / 'logs'}/"),
            "temp_dir": _php_string(f"{self.base_dir / 'temp'}/"),
            "login_rate_limit": "0",
            "enable_spellcheck": "false",
        }
        lines = ["<?php", "// Written by bench/peers/roundcube.py; see its docstring.",
                 "$config = [];"]
        lines += [f"$config['{key}'] = {value};" for key, value in settings.items()]
        return "\n".join(lines) + "\n"

    def configure(self) -> None:
        for d in (self.config_dir, self.base_dir / "logs", self.base_dir / "temp"):
            d.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "config.inc.php").write_text(self.config_text())
        for name in ("defaults.inc.php", "mimetypes.php"):
            link = self.config_dir / name
            if not link.exists():
                link.symlink_to(PACKAGE_CONFIG / name)

    def start(self) -> None:
        """Configure, start the web server and wait for its port. Stops it on failure."""
        if self._proc is not None:
            raise RoundcubeError("already running")
        self.configure()
        env = {**os.environ, "PHP_CLI_SERVER_WORKERS": str(self.workers),
               "ROUNDCUBE_CONFIG_DIR": str(self.config_dir)}
        php = program("php", "php8.2-cli", RoundcubeError)
        with self.log_file.open("wb") as out:
            # A session of its own: stop() ends the server and its workers together.
            self._proc = subprocess.Popen(
                [php, "-q", "-d", "opcache.enable=1", "-d", "display_errors=stderr",
                 "-S", f"127.0.0.1:{self.port}", "-t", str(DOCROOT)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                cwd=self.base_dir, start_new_session=True)
        try:
            deadline = time.monotonic() + 15
            while True:
                with contextlib.suppress(OSError), \
                        socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise RoundcubeError(f"php -S did not listen on {self.port}:\n"
                                         f"{self.log_tail()}")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise

    def pids(self) -> list[int]:
        """The web server and its workers."""
        if self._proc is None or self._proc.poll() is not None:
            return []
        from bench.peers.dovecot import descendants

        return descendants(self._proc.pid)

    def stop(self) -> None:
        """Stop the web server and its workers; safe to repeat."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        found = []
        for path in (self.log_file, self.base_dir / "logs" / "errors.log"):
            with contextlib.suppress(OSError):
                found += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(found)

    def errors(self) -> list[str]:
        """Roundcube's error log (IMAP, database and PHP errors)."""
        try:
            return (self.base_dir / "logs" / "errors.log").read_text(
                errors="replace").splitlines()
        except OSError:
            return []

    def __enter__(self) -> Roundcube:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
