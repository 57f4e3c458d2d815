"""A patient's one-time login code, sent to their personal address.

After a patient's password is found right at the web, a code goes to the personal
address they registered (outside the trust space, notify/sender.py), unless their
operator turned the code off for them (``operator user contact --no-code``) or they
use TOTP instead (domain/logins.py decides).

- The code is 6 to 8 random digits (``[notifications] code_digits``), from the
  system's CSPRNG (``secrets``).
- It is kept hashed in the store (store/logins.py), one per patient: a new code
  replaces the last, so every process of the operator can check it. A hash of a few
  digits does not resist a search by whoever reads the database; what protects the
  code is that it lives ``code_lifetime`` seconds (10 minutes), allows
  ``code_attempts`` wrong tries (5), and is used up by the first right one, and
  that a code is sent only after the right password.
- At most ``codes_per_hour`` codes (5) go to one address in an hour: 25 guesses an
  hour of one chance in a million each.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from enum import StrEnum

from mssante.config import NotificationSettings
from mssante.domain.logins import SecondFactor, SecondFactorPolicy, SecondFactorUnavailable
from mssante.notify.sender import NotSent, OutsideMail
from mssante.store.logins import LoginStore


class CodeStart(StrEnum):
    SENT = "sent"  # a code went to the personal address: ask for it
    NOT_NEEDED = "not_needed"  # this person logs in without it


class CodeNotSent(Exception):
    """A code is needed and none could be sent (no address, the limit reached, the
    relay failing, notifications off): refuse the login; the message says why and is
    safe to show."""


def code_hash(login: str, code: str) -> str:
    return hashlib.sha256(f"{login}\x00{code}".encode()).hexdigest()


class LoginCodes:
    """``start`` and ``verify`` of the web's patient login (``runtime.login_codes``)."""

    def __init__(self, logins: LoginStore, mail: OutsideMail | None,
                 settings: NotificationSettings, policy: SecondFactorPolicy) -> None:
        self._logins = logins
        self._mail = mail  # None: notifications are off
        self._settings = settings
        self._policy = policy

    async def start(self, login: str, *, now: float | None = None) -> CodeStart:
        """Send ``login`` a new code if their login needs one. Call it only once their
        password was found right (``password_login``). Raises CodeNotSent."""
        contact = await self._logins.contact(login)
        if contact is None:
            raise CodeNotSent("Authentication failed")
        try:
            factor = self._policy.needed(contact.factors)
        except SecondFactorUnavailable as exc:
            raise CodeNotSent(str(exc)) from None
        if factor is not SecondFactor.EMAIL_CODE:
            return CodeStart.NOT_NEEDED
        assert contact.personal_address is not None  # needed() checked it
        if self._mail is None:
            raise CodeNotSent("Login codes cannot be sent at the moment: contact your "
                              "operator")
        if not self._mail.may_send_code(contact.personal_address):
            raise CodeNotSent("Too many codes were sent to your address in the last hour: "
                              "try again later")
        code = "".join(secrets.choice("0123456789")
                       for _ in range(self._settings.code_digits))
        now = time.time() if now is None else now
        await self._logins.put_code(login, code_hash(login, code),
                                    expires_at=now + self._settings.code_lifetime, now=now)
        try:
            await self._mail.send_code(contact.personal_address, code)
        except NotSent as exc:
            raise CodeNotSent(str(exc)) from exc
        return CodeStart.SENT

    async def verify(self, login: str, code: str, *, now: float | None = None) -> bool:
        """Whether ``code`` is the code last sent to ``login``, in time and with tries
        left; a right code is used up."""
        code = code.strip().replace(" ", "")
        if not code.isascii() or not code.isdigit() or len(code) > 8:
            code = ""  # still counts as a try
        return await self._logins.check_code(
            login, code_hash(login, code), now=time.time() if now is None else now,
            max_attempts=self._settings.code_attempts)
