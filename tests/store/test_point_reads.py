"""Point reads (``Transactions.point`` and ``point_rows``): on a SQLite file they run
in the event loop's thread on connections of their own; they must see every commit
at once, another process's included, and give what a read through SQLAlchemy gives."""

from __future__ import annotations

from tests.store.conftest import DOMAIN, Database

from mssante.domain.mailboxes import Role, Rules
from mssante.store import Store
from mssante.store.folders import HOLDINGS_OF_LOGIN, read_holdings

CARDIO = f"cardiologie@{DOMAIN}"


async def test_a_grant_and_a_revocation_by_another_store_count_at_once(
        database: Database, mailboxes: Store) -> None:
    """The rights submission reads at MAIL and DATA: another store (another process,
    as `mssante operator mailbox grant|revoke`) changes them; the next read sees it."""
    other = await database.open()
    assert CARDIO.lower() not in await mailboxes.usable_mailboxes("sec")
    await other.grant(CARDIO, "sec", Role.AUTHORISED, rules=Rules())
    assert CARDIO.lower() in await mailboxes.usable_mailboxes("sec")
    await other.revoke(CARDIO, "sec")
    assert CARDIO.lower() not in await mailboxes.usable_mailboxes("sec")
    await other.set_mailbox_active(CARDIO, False)
    assert CARDIO.lower() not in await mailboxes.usable_mailboxes("dr")
    assert (await mailboxes.get_mailbox(CARDIO)).active is False  # type: ignore[union-attr]


async def test_point_rows_give_what_a_read_gives(mailboxes: Store) -> None:
    rows = await mailboxes.tx.point_rows(HOLDINGS_OF_LOGIN, {"login": "dr"})
    async with mailboxes.tx.read() as conn:
        held = await read_holdings(conn, login="dr")
    assert [r[0] for r in rows] == [h.address for h in held] == sorted(h.address for h in held)
    assert len(held) == 2
    assert await mailboxes.tx.point_rows(HOLDINGS_OF_LOGIN, {"login": "nobody"}) == []
