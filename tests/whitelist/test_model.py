"""The whitelist model: lookups by domain and DN, immutable updates."""

from __future__ import annotations

from datetime import UTC, datetime

from mssante.whitelist.model import Whitelist, WhitelistEntry

DN_A = "CN=mta1.ch-xyz.example,OU=318310021300028,O=CH XYZ,ST=Paris (75),C=FR"
DN_B = "CN=mta2.ch-xyz.example,OU=318310021300028,O=CH XYZ,ST=Paris (75),C=FR"
DN_C = "CN=mta.medecin.example,O=Medecins,C=FR"
WHEN = datetime(2025, 3, 13, 14, 54, 10, tzinfo=UTC)


def make() -> Whitelist:
    return Whitelist(generated_at=WHEN, entries=(
        WhitelistEntry("ch-xyz.mssante.fr", "CH XYZ", DN_A, updated_at=WHEN),
        WhitelistEntry("CH-XYZ.mssante.fr", "CH XYZ", DN_B, updated_at=WHEN),
        WhitelistEntry("medecin.mssante.fr", "Médecins", DN_C, updated_at=WHEN),
        WhitelistEntry("cabinet.mssante.fr", "Cabinet", DN_C, updated_at=WHEN),
    ))


def test_lookup_is_case_insensitive_and_keeps_every_dn() -> None:
    wl = make()
    assert wl.is_listed("Ch-Xyz.MSSante.fr")
    assert wl.is_listed("ch-xyz.mssante.fr.")
    assert not wl.is_listed("gmail.com")
    assert wl.dns_for("CH-xyz.mssante.fr") == (DN_A, DN_B)
    assert wl.dns_for("unknown.mssante.fr") == ()


def test_allows_compares_dns_by_meaning() -> None:
    wl = make()
    spaced = "cn=mta1.ch-xyz.example, OU=318310021300028, O=CH XYZ, ST=Paris (75), C=FR"
    assert wl.allows("ch-xyz.mssante.fr", spaced)
    assert wl.allows("ch-xyz.mssante.fr", DN_B)
    assert not wl.allows("ch-xyz.mssante.fr", DN_C)
    assert not wl.allows("medecin.mssante.fr", DN_A)
    assert not wl.allows("ch-xyz.mssante.fr", "not a dn")


def test_domains_for_dn() -> None:
    wl = make()
    assert wl.domains_for_dn(DN_C) == frozenset({"medecin.mssante.fr", "cabinet.mssante.fr"})
    assert wl.domains_for_dn("CN=mta.medecin.example, O=Medecins, C=FR") == frozenset(
        {"medecin.mssante.fr", "cabinet.mssante.fr"})
    assert wl.domains_for_dn(DN_A) == frozenset({"ch-xyz.mssante.fr"})
    assert wl.domains_for_dn("CN=nobody,C=FR") == frozenset()


def test_with_entry_replaces_same_name_and_dn_only() -> None:
    wl = make()
    updated = wl.with_entry(WhitelistEntry("CH-XYZ.MSSANTE.FR", "renamed", DN_A))
    assert len(updated) == len(wl)
    assert [e.description for e in updated.entries_for("ch-xyz.mssante.fr")] == [
        "CH XYZ", "renamed"]
    added = wl.with_entry(WhitelistEntry("new.mssante.fr", "New", DN_C))
    assert len(added) == len(wl) + 1
    assert added.allows("new.mssante.fr", DN_C)
    assert not wl.is_listed("new.mssante.fr")  # the original is unchanged


def test_without_domain_or_single_dn() -> None:
    wl = make()
    one_dn = wl.without("ch-xyz.mssante.fr", DN_A)
    assert one_dn.dns_for("ch-xyz.mssante.fr") == (DN_B,)
    gone = wl.without("CH-XYZ.mssante.fr")
    assert not gone.is_listed("ch-xyz.mssante.fr")
    assert gone.domains_for_dn(DN_A) == frozenset()
    assert len(gone) == 2


def test_empty_and_utc_dates() -> None:
    empty = Whitelist.empty()
    assert len(empty) == 0 and not empty.is_listed("ch-xyz.mssante.fr")
    assert empty.generated_at.tzinfo is not None
    naive = WhitelistEntry("a.mssante.fr", "", DN_A, updated_at=datetime(2025, 1, 1, 12))
    assert naive.updated_at == datetime(2025, 1, 1, 12, tzinfo=UTC)
