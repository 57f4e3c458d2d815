"""Application passwords (auth/apppasswords.py) without a server: their shape and
strength, how a client may type them, labels, and the hashes: argon2id that
passwords.py verifies, one salt per person, found among several."""

from __future__ import annotations

import math
import re

import pytest
from argon2 import PasswordHasher
from hypothesis import given
from hypothesis import strategies as st

from mssante.auth import apppasswords
from mssante.auth.apppasswords import InvalidLabel, check_label, hash_like, normalized, shown
from mssante.auth.passwords import VerifiedLogins, hash_password, salt_of, verify_password
from mssante.store.logins import AppPasswordHash


def test_a_generated_password_has_16_letters_and_75_bits() -> None:
    passwords = {apppasswords.generate() for _ in range(200)}
    assert len(passwords) == 200
    assert all(re.fullmatch(r"[a-z]{16}", p) for p in passwords)
    assert apppasswords.LENGTH * math.log2(len(apppasswords.LETTERS)) > 75
    assert re.fullmatch(r"[a-z]{4}( [a-z]{4}){3}", shown(passwords.pop()))


@pytest.mark.parametrize("typed", ["abcd efgh ijkl mnop", "abcdefghijklmnop",
                                   "ABCD-EFGH-IJKL-MNOP", " abcd efgh ijkl mnop "])
def test_a_client_may_send_it_with_or_without_spaces(typed: str) -> None:
    assert normalized(typed) == "abcdefghijklmnop"


@pytest.mark.parametrize("typed", ["abcd efgh ijkl mno", "abcdefghijklmnopq", "abcdéfghijklmnop",
                                   "abcd1fghijklmnop", "correct horse battery staple", ""])
def test_another_shape_is_not_an_application_password(typed: str) -> None:
    assert normalized(typed) is None


@given(st.text(max_size=40))
def test_normalized_is_always_16_lowercase_ascii_letters_or_none(text: str) -> None:
    found = normalized(text)
    assert found is None or re.fullmatch(r"[a-z]{16}", found)


def test_labels_are_trimmed_and_checked() -> None:
    assert check_label("  Thunderbird   du  cabinet ") == "Thunderbird du cabinet"
    assert check_label("Téléphone d'Élise") == "Téléphone d'Élise"
    for bad, reason in (("", InvalidLabel.EMPTY), ("   ", InvalidLabel.EMPTY),
                        ("x" * 65, InvalidLabel.TOO_LONG),
                        ("a\x00b", InvalidLabel.CONTROL), ("a\u202eb", InvalidLabel.CONTROL)):
        with pytest.raises(InvalidLabel) as refused:
            check_label(bad)
        assert refused.value.reason == reason


def test_a_persons_passwords_share_one_salt_and_verify_as_argon2() -> None:
    first = hash_like("aaaabbbbccccdddd", [])
    second = hash_like("eeeeffffgggghhhh", [first])
    assert first.startswith("$argon2id$") and second.startswith("$argon2id$")
    assert salt_of(first) == salt_of(second) and first != second
    assert verify_password(first, "aaaabbbbccccdddd")
    assert verify_password(second, "eeeeffffgggghhhh")
    assert not verify_password(second, "aaaabbbbccccdddd")
    assert salt_of(hash_like("aaaabbbbccccdddd", [])) != salt_of(first)  # another person


async def test_the_right_one_is_found_among_several() -> None:
    older = AppPasswordHash(1, hash_password("aaaabbbbccccdddd"), None, None)  # its own salt
    a = AppPasswordHash(2, hash_like("eeeeffffgggghhhh", []), None, None)
    b = AppPasswordHash(3, hash_like("iiiijjjjkkkkllll", [a.password_hash]), None, None)
    cache = VerifiedLogins()
    for password, entry in (("aaaabbbbccccdddd", older), ("eeeeffffgggghhhh", a),
                            ("iiiijjjjkkkkllll", b)):
        assert await apppasswords.match([older, a, b], password, cache) == entry
        assert cache.remembered(entry.password_hash, password)
    assert await apppasswords.match([older, a, b], "mmmmnnnnoooopppp", cache) is None
    assert await apppasswords.match([], "aaaabbbbccccdddd", cache) is None
    assert repr(a) == "AppPasswordHash(id=2)"


async def test_one_hashed_with_other_parameters_still_opens() -> None:
    """Made before the parameters changed (here: lighter ones), it is checked alone."""
    old = AppPasswordHash(1, PasswordHasher(time_cost=1, memory_cost=8 * 1024).hash(
        "aaaabbbbccccdddd"), None, None)
    new = AppPasswordHash(2, hash_like("eeeeffffgggghhhh", [old.password_hash]), None, None)
    assert salt_of(old.password_hash) is None and salt_of(new.password_hash) is not None
    cache = VerifiedLogins()
    assert await apppasswords.match([old, new], "aaaabbbbccccdddd", cache) == old
    assert await apppasswords.match([old, new], "eeeeffffgggghhhh", cache) == new
    assert await apppasswords.match([old, new], "iiiijjjjkkkkllll", cache) is None
