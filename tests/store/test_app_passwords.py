"""Application passwords in the store (store/logins.py), on both engines: several per
person, listed without their hashes, revoked one by one and only by their owner,
bounded in number, gone with the person; the last use recorded."""

from __future__ import annotations

import pytest
from tests.store.conftest import RowCounter

from mssante.errors import NotFound
from mssante.store import Store
from mssante.store.logins import MAX_APP_PASSWORDS, TooManyAppPasswords


async def test_a_person_has_several_listed_oldest_first(people: Store) -> None:
    first = await people.logins.add_app_password("sec", "Thunderbird", "$h1", now=10.0)
    second = await people.logins.add_app_password("sec", "Téléphone", "$h2", now=20.0)
    assert first.id != second.id
    listed = await people.logins.app_passwords("sec")
    assert [(e.label, e.created_at, e.last_used_at, e.last_used_from) for e in listed] == [
        ("Thunderbird", 10.0, None, None), ("Téléphone", 20.0, None, None)]
    hashes = await people.logins.app_password_hashes("sec")
    assert [(h.id, h.password_hash) for h in hashes] == [(first.id, "$h1"), (second.id, "$h2")]
    assert "$h1" not in repr(hashes)  # never in a log line
    assert await people.logins.app_passwords("dr") == []
    assert await people.logins.app_password_hashes("nobody") == []


async def test_revoking_one_leaves_the_others_and_another_persons_is_untouched(
        people: Store) -> None:
    mine = await people.logins.add_app_password("sec", "Thunderbird", "$h1", now=1.0)
    kept = await people.logins.add_app_password("sec", "Téléphone", "$h2", now=2.0)
    theirs = await people.logins.add_app_password("dr", "Outlook", "$h3", now=3.0)
    assert not await people.logins.revoke_app_password("sec", theirs.id)
    assert await people.logins.revoke_app_password("sec", mine.id)
    assert not await people.logins.revoke_app_password("sec", mine.id)  # gone already
    assert [e.id for e in await people.logins.app_passwords("sec")] == [kept.id]
    assert [e.id for e in await people.logins.app_passwords("dr")] == [theirs.id]


async def test_the_last_use_is_recorded(people: Store) -> None:
    entry = await people.logins.add_app_password("sec", "Thunderbird", "$h1", now=1.0)
    await people.logins.app_password_used(entry.id, at=50.0, address="192.0.2.7")
    (listed,) = await people.logins.app_passwords("sec")
    assert (listed.last_used_at, listed.last_used_from) == (50.0, "192.0.2.7")
    (checked,) = await people.logins.app_password_hashes("sec")
    assert (checked.last_used_at, checked.last_used_from) == (50.0, "192.0.2.7")


async def test_their_number_is_bounded(people: Store) -> None:
    for n in range(MAX_APP_PASSWORDS):
        await people.logins.add_app_password("sec", f"appareil {n}", f"$h{n}", now=1.0)
    with pytest.raises(TooManyAppPasswords):
        await people.logins.add_app_password("sec", "un de trop", "$h", now=1.0)
    assert len(await people.logins.app_passwords("sec")) == MAX_APP_PASSWORDS


async def test_an_unknown_person_gets_none(people: Store) -> None:
    with pytest.raises(NotFound):
        await people.logins.add_app_password("nobody", "Thunderbird", "$h", now=1.0)


async def test_they_go_with_the_person(people: Store, count_rows: RowCounter) -> None:
    await people.logins.add_app_password("sec", "Thunderbird", "$h1", now=1.0)
    await people.logins.add_app_password("dr", "Outlook", "$h2", now=1.0)
    await people.delete_person("sec")
    assert await count_rows("app_passwords") == 1
