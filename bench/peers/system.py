"""What the peers' set-up shares: finding and running the system's programs, ports,
directory permissions, disabling the package's own instance."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class PeerError(RuntimeError):
    """A peer could not be installed, configured, started or stopped."""


def program(name: str, package: str, error: type[PeerError] = PeerError) -> str:
    """The path of a program, looked for in PATH then in the system directories."""
    found = shutil.which(name) or shutil.which(name, path=SYSTEM_PATH)
    if found is None:
        raise error(f"{name}: not found (is {package} installed?)")
    return found


def run(args: list[str], *, error: type[PeerError] = PeerError, timeout: float = 60,
        env: dict[str, str] | None = None, check: bool = True
        ) -> subprocess.CompletedProcess[str]:
    """Run a command; ``error`` on failure to start, timeout, or (``check``) exit != 0."""
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise error(f"{' '.join(args)}: {exc}") from exc
    if check and proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()
        raise error(f"{' '.join(args)} exited with {proc.returncode}: {output}")
    return proc


def disable_service(name: str, error: type[PeerError] = PeerError) -> None:
    """Make sure the package's own instance does not start at boot (systemd or sysv)."""
    if shutil.which("systemctl") and Path("/run/systemd/system").is_dir():
        run(["systemctl", "disable", "--now", name], error=error, check=False)
    elif shutil.which("update-rc.d"):
        run(["update-rc.d", name, "disable"], error=error, check=False)


def grant_search(path: Path) -> None:
    """Give o+x to ``path`` and its ancestors that lack it (no read, no write)."""
    for d in (path, *path.parents):
        mode = d.stat().st_mode
        if not mode & stat.S_IXOTH:
            d.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def live_processes() -> dict[int, list[str]]:
    """pid → the fields of /proc/<pid>/stat after the command name (state, ppid,
    pgrp, session, ...), for the processes that are not zombies."""
    found: dict[int, list[str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2:].split()
        if len(fields) > 3 and fields[0] not in ("Z", "X"):
            found[int(entry.name)] = fields
    return found


def wait_gone(remaining: Callable[[], list[int]], timeout: float) -> None:
    """Wait until ``remaining()`` (the processes still alive) is empty; past
    ``timeout`` seconds, kill what is left."""
    deadline = time.monotonic() + timeout
    while True:
        left = remaining()
        if not left:
            return
        if time.monotonic() > deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
            return
        time.sleep(0.05)
