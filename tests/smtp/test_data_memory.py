"""Memory of SMTP DATA: large messages sent at the same moment cost about their size.

Threat: a client (or several) sending large messages in parallel made the operator
hold several copies of each (issue 9: eight 20 MB submissions took 640 MB). The
clients run in a child process (bench/large_senders.py) so that only the
operator's memory is measured: the Python heap's peak (tracemalloc) while the
messages are received, checked and committed, against the bytes sent.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

from tests.e2e.mail import unique

DUPONT = "dupont@ch-xyz.mssante.fr"
MARTIN = "jean.martin@medecin.mssante.fr"
COUNT = 4
SIZE = 5_000_000
# The message is read into one buffer under its Received header, and that buffer is
# what is checked and stored: about its size once (the buffer grows by an eighth at a
# time), plus small things (headers, SQL parameters, TLS buffers).
MAX_PEAK_PER_MESSAGE = 1.5


def send_in_parallel(environment: Any, tmp_path: Path, spec: dict[str, Any]) -> int:
    """Send COUNT messages of SIZE bytes at once; the heap's peak above where it began."""
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({**spec, "ca_file": environment.ca_file, "size": SIZE}))
    root = Path(__file__).resolve().parents[2]
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        done = subprocess.run([sys.executable, "-m", "bench.large_senders", str(spec_file)],
                              cwd=root, capture_output=True, text=True, timeout=300)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    return peak


def test_parallel_large_submissions_memory_is_bounded(environment: Any, tmp_path: Path) -> None:
    subjects = [unique("large submission") for _ in range(COUNT)]
    submission = environment.operator("ch-xyz.mssante.fr")["submission"]
    peak = send_in_parallel(environment, tmp_path, {
        "host": submission["host"], "port": submission["port"], "login": DUPONT,
        "password": environment.password(DUPONT), "sender": DUPONT, "to": DUPONT,
        "subjects": subjects})
    for subject in subjects:  # 250 came after the commit: they are all there
        assert environment.wait_message(DUPONT, subject, timeout=1).size > SIZE * 0.99
    assert peak < MAX_PEAK_PER_MESSAGE * COUNT * SIZE, f"{peak / (COUNT * SIZE):.2f} × size"


def test_parallel_large_messages_at_the_mta_memory_is_bounded(environment: Any,
                                                              tmp_path: Path) -> None:
    subjects = [unique("large relayed") for _ in range(COUNT)]
    mta = environment.operator("medecin.mssante.fr")["smtp"]
    tls = environment.service("ch-xyz.mssante.fr").config.tls
    peak = send_in_parallel(environment, tmp_path, {
        "host": mta["host"], "port": mta["port"], "cert": [str(tls.cert_file), str(tls.key_file)],
        "sender": DUPONT, "to": MARTIN, "subjects": subjects})
    for subject in subjects:
        assert environment.wait_message(MARTIN, subject, timeout=1).size > SIZE * 0.99
    assert peak < MAX_PEAK_PER_MESSAGE * COUNT * SIZE, f"{peak / (COUNT * SIZE):.2f} × size"
