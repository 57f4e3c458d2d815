"""Small helpers to speak to the environment the way a mail client does."""

from __future__ import annotations

import smtplib
import ssl
import uuid
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any


def client_tls(ca_file: str, cert: tuple[str, str] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)
    if cert is not None:
        ctx.load_cert_chain(*cert)
    return ctx


def message(sender: str, to: list[str] | str, subject: str, text: str = "Bonjour,\n",
            **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to) if isinstance(to, list) else to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(text)
    return msg


def unique(subject: str) -> str:
    return f"{subject} {uuid.uuid4().hex[:8]}"


def submission(env: Any, domain: str, login: str | None = None, *,
               implicit: bool = False, cert: tuple[str, str] | None = None) -> smtplib.SMTP:
    """A logged-in submission session (587 STARTTLS, or 465 implicit TLS)."""
    op = env.operator(domain)
    ctx = client_tls(env.ca_file, cert)
    if implicit:
        ep = op["submissions"]
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(ep["host"], ep["port"], context=ctx, timeout=30)
    else:
        ep = op["submission"]
        smtp = smtplib.SMTP(ep["host"], ep["port"], timeout=30)
        smtp.starttls(context=ctx)
    smtp.ehlo("client.test")
    if login is not None:
        try:
            smtp.login(login, env.password(login))
        except BaseException:
            smtp.close()  # a refused login leaves no connection open
            raise
    return smtp


def send(env: Any, login: str, msg: EmailMessage, *, sender: str | None = None,
         to: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
    domain = login.rpartition("@")[2] or "ch-xyz.mssante.fr"
    with submission(env, kwargs.pop("domain", domain), login) as smtp:
        return smtp.send_message(msg, from_addr=sender, to_addrs=to, **kwargs)
