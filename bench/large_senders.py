"""Send large messages in parallel with smtplib, from a process of its own.

    python -m bench.large_senders SPEC.json

Used by tests/smtp/test_data_memory.py and bench/smtp_memory.py: the clients run
outside the process whose memory is measured, since smtplib makes copies of each
message on its side. SPEC names the
listener (host, port, CA file), either a login and password (submission) or a client
certificate (the MTA), the sender, the recipient, and the subjects, size and count.
"""

from __future__ import annotations

import email.utils
import json
import smtplib
import ssl
import sys
import threading
from pathlib import Path
from typing import Any

LINE = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3\r\n"


def message(sender: str, to: str, subject: str, size: int) -> bytes:
    """Date and Message-ID included, as mail clients send them."""
    head = (f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Date: {email.utils.formatdate()}\r\n"
            f"Message-ID: {email.utils.make_msgid(domain=sender.rpartition('@')[2])}\r\n"
            "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
            "\r\n").encode()
    return head + LINE * ((size - len(head)) // len(LINE))


def main(spec: dict[str, Any]) -> int:
    subjects: list[str] = spec["subjects"]
    bodies = [message(spec["sender"], spec["to"], s, spec["size"]) for s in subjects]
    ready = threading.Barrier(len(subjects))
    errors: list[str] = []

    def send(body: bytes) -> None:
        try:
            tls = ssl.create_default_context(cafile=spec["ca_file"])
            if spec.get("cert"):
                tls.load_cert_chain(*spec["cert"])
            with smtplib.SMTP(spec["host"], spec["port"], timeout=300) as smtp:
                smtp.starttls(context=tls)
                smtp.ehlo("senders.test")
                if spec.get("login"):
                    smtp.login(spec["login"], spec["password"])
                ready.wait()
                smtp.sendmail(spec["sender"], [spec["to"]], body)
        except Exception as exc:  # reported to the test
            errors.append(repr(exc))

    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print("\n".join(errors) or "sent")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(json.loads(Path(sys.argv[1]).read_text())))
