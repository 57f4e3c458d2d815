"""New-message notices: a patient whose mailbox receives mail is told, at their
personal address, that a message is waiting (notify/sender.py: no health data).

Implementation notes:
- The store calls ``delivered`` after the commit of each delivery batch
  (``Store.on_delivered``) with the addresses whose INBOX received a message. It
  only takes note and returns: the SMTP 250 never waits for a notice.
- One notice per burst: the first message to a patient mailbox schedules a notice
  ``notice_delay`` seconds later; messages arriving before it goes are covered by
  it. After a notice, the next one waits until ``notice_interval`` has passed
  (the sender's limit): one more notice then covers everything that came meanwhile.
- The patient's choices are read when the notice goes, not when the message lands:
  a patient who turned notices off, or removed their address, in the meantime gets
  nothing. Only PAT mailboxes are considered; their owner is the one told.
- A notice that cannot be sent is logged (with the login, not the address) and
  dropped: the message itself is safe in the mailbox, and the next one will try
  again. Notices pending when the operator stops are dropped.
- Per process: a patient whose messages arrive through several processes at once
  can get a notice from each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from mssante.domain.addresses import PATIENT_DOMAIN
from mssante.notify.sender import NotSent, OutsideMail
from mssante.store.logins import LoginStore

log = logging.getLogger(__name__)


class MessageNotices:
    def __init__(self, logins: LoginStore, mail: OutsideMail) -> None:
        self._logins = logins
        self._mail = mail
        self._pending: dict[str, asyncio.Task[None]] = {}  # mailbox -> its notice to come
        self.sent = 0  # notices sent by this process

    def pending(self, mailbox: str) -> bool:
        """Whether a notice for ``mailbox`` is scheduled and not sent yet."""
        return mailbox.lower() in self._pending

    @property
    def scheduled(self) -> int:
        """Notices scheduled and not sent yet (one per mailbox at most)."""
        return len(self._pending)

    def delivered(self, addresses: Sequence[str]) -> None:
        """``Store.on_delivered``: schedule a notice for each patient mailbox."""
        for address in addresses:
            key = address.lower()
            if not key.endswith("@" + PATIENT_DOMAIN) or key in self._pending:
                continue
            task = asyncio.get_running_loop().create_task(self._notify(key))
            self._pending[key] = task

    async def _notify(self, mailbox: str) -> None:
        try:
            await asyncio.sleep(self._mail.settings.notice_delay)
            contact = await self._logins.contact_of_mailbox(mailbox)
            if contact is None or not contact.notify_messages or not contact.personal_address:
                return
            wait = self._mail.next_notice_at(contact.personal_address) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            # read again after the wait: the choice may have changed meanwhile
            contact = await self._logins.contact_of_mailbox(mailbox)
            if contact is None or not contact.notify_messages or not contact.personal_address:
                return
            await self._mail.send_notice(contact.personal_address)
            self.sent += 1
        except NotSent as exc:
            log.warning("new-message notice for %s not sent: %s (%s)", mailbox, exc,
                        exc.__cause__ or "")
        except Exception:
            log.exception("new-message notice for %s failed", mailbox)
        finally:
            self._pending.pop(mailbox, None)

    async def stop(self) -> None:
        """Drop the notices still to come."""
        tasks = list(self._pending.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._pending.clear()
