"""Sending the fixed notifications to personal addresses, through an ordinary relay.

A personal address (a patient's gmail) is outside the trust space: the MSSanté queue
refuses it, and nothing about care may reach it. So this module:

- never uses the operator's queue, the MSSanté MTA or its certificates: it submits
  to the relay of ``[notifications]`` with aiosmtplib (STARTTLS, RFC 3207, and SMTP
  AUTH, RFC 4954, when set);
- sends only two texts, written here whole: a one-time login code, and "a new
  message is waiting, at <web URL>". Neither takes anything of a message (no
  subject, sender, name, content), nor the person's name or MSSanté address;
- refuses a recipient inside the trust space (domain/logins.py);
- limits what one address receives: ``codes_per_hour`` codes in any hour, and one
  notice per ``notice_interval`` (notices.py schedules the next one then). The
  limits are per process; several processes can send each up to them.

The messages are marked ``Auto-Submitted: auto-generated`` (RFC 3834 §5), so that
an absence responder does not answer them.
"""

from __future__ import annotations

import email.utils
import ssl
import time
from collections import OrderedDict, deque
from email.message import EmailMessage
from email.policy import SMTP
from typing import TypeVar

import aiosmtplib

from mssante.config import NotificationSettings
from mssante.domain.logins import parse_personal_address
from mssante.errors import InvalidAddress

CODE_SUBJECT = "Votre code de connexion"
NOTICE_SUBJECT = "Un nouveau message vous attend"
T = TypeVar("T")
_HOUR = 3600.0
_MAX_FOLLOWED = 100_000  # addresses whose sends are remembered, the oldest forgotten


class NotSent(Exception):
    """The notification was not sent; the message is safe to show the person."""


def code_text(code: str, lifetime: float) -> str:
    minutes = max(1, round(lifetime / 60))
    return (f"Votre code de connexion : {code}\n\n"
            f"Il est valable {minutes} minutes et une seule fois.\n"
            "Si vous n'avez pas demandé ce code, quelqu'un connaît peut-être votre mot de "
            "passe : changez-le.\n")


def notice_text(web_url: str) -> str:
    return ("Un nouveau message vous attend dans votre espace de messagerie :\n"
            f"{web_url}\n\n"
            "Pour le lire, connectez-vous à cette adresse. Ce courriel ne contient rien "
            "du message.\n")


class OutsideMail:
    """The sender of ``[notifications]`` (one per operator process)."""

    def __init__(self, settings: NotificationSettings, *,
                 tls_context: ssl.SSLContext | None = None) -> None:
        """``tls_context``: how the relay's certificate is checked (default: the
        system's trusted CAs)."""
        self.settings = settings
        self._tls = tls_context
        self._codes: OrderedDict[str, deque[float]] = OrderedDict()
        self._notices: OrderedDict[str, float] = OrderedDict()  # address -> last sent

    # -- limits ------------------------------------------------------------------------

    def may_send_code(self, to: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        sent = self._codes.get(to.lower())
        if sent is None:
            return True
        while sent and sent[0] <= now - _HOUR:
            sent.popleft()
        return len(sent) < self.settings.codes_per_hour

    def next_notice_at(self, to: str) -> float:
        """The monotonic time from which a notice may go to ``to``."""
        last = self._notices.get(to.lower())
        return 0.0 if last is None else last + self.settings.notice_interval

    # -- sending -----------------------------------------------------------------------

    async def send_code(self, to: str, code: str) -> None:
        """Send a one-time login code to ``to``; NotSent past the limit or on failure."""
        key = to.lower()
        if not self.may_send_code(key):
            raise NotSent("Too many codes were sent to your address in the last hour: "
                          "try again later")
        sent = self._codes.setdefault(key, deque())
        sent.append(time.monotonic())
        self._followed(self._codes, key)
        await self._send(to, CODE_SUBJECT, code_text(code, self.settings.code_lifetime))

    async def send_notice(self, to: str) -> None:
        """Tell ``to`` that a message is waiting; NotSent before ``next_notice_at``."""
        key = to.lower()
        now = time.monotonic()
        if now < self.next_notice_at(key):
            raise NotSent("a notice was sent to this address a moment ago")
        self._notices[key] = now
        self._followed(self._notices, key)
        await self._send(to, NOTICE_SUBJECT, notice_text(self.settings.web_url))

    @staticmethod
    def _followed(table: OrderedDict[str, T], key: str) -> None:
        table.move_to_end(key)
        while len(table) > _MAX_FOLLOWED:
            table.popitem(last=False)

    def build(self, to: str, subject: str, text: str) -> EmailMessage:
        """The whole message: these headers and ``text``, nothing else."""
        try:
            recipient = parse_personal_address(to)
        except InvalidAddress as exc:
            raise NotSent(f"not a personal address: {exc}") from None
        sender = parse_personal_address(self.settings.from_address)
        message = EmailMessage(policy=SMTP)
        message["From"] = str(sender)
        message["To"] = str(recipient)
        message["Subject"] = subject
        message["Date"] = email.utils.formatdate(usegmt=True)
        message["Message-ID"] = email.utils.make_msgid(domain=sender.domain)
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834 §5
        message.set_content(text, charset="utf-8")
        return message

    async def _send(self, to: str, subject: str, text: str) -> None:
        settings = self.settings
        message = self.build(to, subject, text)
        try:
            await aiosmtplib.send(
                message, hostname=settings.relay_host, port=settings.relay_port,
                start_tls=settings.starttls, tls_context=self._tls,
                username=settings.username or None, password=settings.password or None,
                timeout=settings.timeout)
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise NotSent("The message could not be sent: try again later") from exc
