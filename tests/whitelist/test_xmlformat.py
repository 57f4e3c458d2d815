"""The ANS XML format: round trip, refusals, speed on a list of the real size."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mssante.errors import WhitelistError
from mssante.whitelist.model import Whitelist, WhitelistEntry
from mssante.whitelist.xmlformat import NAMESPACE, from_xml, to_xml

WHEN = datetime(2025, 3, 13, 14, 54, 10, tzinfo=UTC)
DN_A = "CN=mta1.ch-xyz.example,OU=318310021300028,O=CH XYZ,ST=Paris (75),C=FR"
DN_B = "CN=mta2.ch-xyz.example,OU=318310021300028,O=CH XYZ,ST=Paris (75),C=FR"

REAL_SAMPLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<ListeBlancheMSSante xmlns="https://listeblanche.mssante.fr/schema">
  <DateDeGeneration>2025-03-13T14:54:10Z</DateDeGeneration>
  <ListeDomaines>
    <Domaine>
      <Nom>ch-xyz.mssante.fr</Nom>
      <Description>CENTRE HOSPITALIER XYZ</Description>
      <DNCertificatOperateur>CN=mta.ch-xyz.example,OU=318310021300028,O=CH XYZ,\
ST=Paris (75),C=FR</DNCertificatOperateur>
      <ResponsableContact>dsi@ch-xyz.example</ResponsableContact>
      <SupportContact>support@ch-xyz.example</SupportContact>
      <DateMAJ>2025-03-12T08:00:00Z</DateMAJ>
    </Domaine>
  </ListeDomaines>
</ListeBlancheMSSante>
"""


def sample() -> Whitelist:
    return Whitelist(generated_at=WHEN, entries=(
        WhitelistEntry("ch-xyz.mssante.fr", "CENTRE HOSPITALIER XYZ", DN_A,
                       "dsi@ch-xyz.example", "support@ch-xyz.example", WHEN),
        WhitelistEntry("ch-xyz.mssante.fr", "CENTRE HOSPITALIER XYZ", DN_B, updated_at=WHEN),
        WhitelistEntry("medecin.mssante.fr", "Cabinet médical Saint-Étienne & Cie <ÉÀÇ> 🩺",
                       "CN=mta.médecin.example,O=Médecins \\+ Associés,C=FR",
                       updated_at=datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ))


def test_round_trip_keeps_everything() -> None:
    original = sample()
    data = to_xml(original)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert f'xmlns="{NAMESPACE}"'.encode() in data
    assert b"<DateDeGeneration>2025-03-13T14:54:10Z</DateDeGeneration>" in data
    assert "Saint-Étienne".encode() in data  # UTF-8, not character references
    parsed = from_xml(data)
    assert parsed == original
    assert parsed.dns_for("ch-xyz.mssante.fr") == (DN_A, DN_B)


def test_parses_the_published_format() -> None:
    wl = from_xml(REAL_SAMPLE)
    assert wl.generated_at == WHEN
    (entry,) = wl.entries
    assert entry.name == "ch-xyz.mssante.fr"
    assert entry.support_contact == "support@ch-xyz.example"
    assert entry.updated_at == datetime(2025, 3, 12, 8, tzinfo=UTC)
    assert wl.allows("ch-xyz.mssante.fr",
                     "CN=mta.ch-xyz.example,OU=318310021300028,O=CH XYZ,ST=Paris (75),C=FR")


@pytest.mark.parametrize(("data", "message"), [
    (b"<ListeBlancheMSSante", "not well-formed"),
    (b"", "not well-formed"),
    (REAL_SAMPLE.replace(b"https://listeblanche.mssante.fr/schema", b"urn:other"),
     "namespace"),
    (REAL_SAMPLE.replace(b' xmlns="https://listeblanche.mssante.fr/schema"', b""), "namespace"),
    (REAL_SAMPLE.replace(b"ListeBlancheMSSante", b"WhiteList"), "root element"),
    (REAL_SAMPLE.replace(b"<Nom>ch-xyz.mssante.fr</Nom>", b""), "missing Nom"),
    (REAL_SAMPLE.replace(b"<Nom>ch-xyz.mssante.fr</Nom>", b"<Nom> </Nom>"), "missing Nom"),
    (REAL_SAMPLE.replace(b"DNCertificatOperateur", b"DN"), "missing DNCertificatOperateur"),
    (REAL_SAMPLE.replace(b"2025-03-12T08:00:00Z", b"12/03/2025"), "DateMAJ"),
    (REAL_SAMPLE.replace(b"2025-03-13T14:54:10Z", b"yesterday"), "DateDeGeneration"),
    (REAL_SAMPLE.replace(b"<DateDeGeneration>2025-03-13T14:54:10Z</DateDeGeneration>", b""),
     "no DateDeGeneration"),
])
def test_malformed_input_is_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(WhitelistError, match=message):
        from_xml(data)


def test_entities_are_refused() -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b'<ListeBlancheMSSante xmlns="https://listeblanche.mssante.fr/schema">'
            b"<DateDeGeneration>&b;</DateDeGeneration></ListeBlancheMSSante>")
    with pytest.raises(WhitelistError, match="refused"):
        from_xml(bomb)


def test_a_list_of_the_real_size_round_trips() -> None:
    """6,500 entries, the size of the real list (its speed: bench/whitelist.py)."""
    entries = tuple(
        WhitelistEntry(f"domaine-{i // 2}.mssante.fr", f"ÉTABLISSEMENT {i}",
                       f"CN=mta{i % 390}.operateur.example,O=Operateur {i % 390},C=FR",
                       updated_at=WHEN)
        for i in range(6500))
    wl = from_xml(to_xml(Whitelist(generated_at=WHEN, entries=entries)))
    assert len(wl) == 6500
    assert len(wl.domains) == 3250
    assert wl.entries == entries
    for i in range(0, 6500, 2):
        assert wl.allows(f"DOMAINE-{i // 2}.mssante.fr",
                         f"CN=mta{i % 390}.operateur.example,O=Operateur {i % 390},C=FR")
    assert not wl.allows("domaine-0.mssante.fr", "CN=mta389.operateur.example,O=Operateur 389,C=FR")
