"""The patient's national health identifier (INS) and patient addresses.

An INS is 15 digits: the 13-digit NIR followed by a 2-digit key equal to
97 − (NIR mod 97). Corsican NIRs carry ``2A``/``2B`` as department; for the key they
count as ``19``/``18`` (INSEE rule). A patient's MSSanté address is
``<INS>@patient.mssante.fr``.
"""

from __future__ import annotations

from mssante.domain.addresses import PATIENT_DOMAIN, Address, parse_address
from mssante.errors import InvalidINS

INS_LENGTH = 15


def _nir_number(nir: str) -> int:
    department = nir[5:7].upper()
    corsica = {"2A": "19", "2B": "18"}
    if department in corsica:
        return int(nir[:5] + corsica[department] + nir[7:])
    return int(nir)


def ins_key(nir: str) -> int:
    """The control key of a 13-character NIR."""
    if len(nir) != 13:
        raise InvalidINS(f"a NIR has 13 characters, not {len(nir)}: {nir!r}")
    digits_ok = nir.isdigit() or (nir[:5].isdigit() and nir[5:7].upper() in {"2A", "2B"}
                                  and nir[7:].isdigit())
    if not digits_ok or not nir.isascii():
        raise InvalidINS(f"a NIR is made of digits: {nir!r}")
    return 97 - (_nir_number(nir) % 97)


def validate_ins(ins: str) -> str:
    """Return the INS unchanged if valid, else raise InvalidINS with the reason."""
    if len(ins) != INS_LENGTH:
        raise InvalidINS(f"an INS has {INS_LENGTH} digits, not {len(ins)}: {ins!r}")
    nir, key = ins[:13], ins[13:]
    if not key.isdigit() or not key.isascii():
        raise InvalidINS(f"the INS key must be two digits: {ins!r}")
    expected = ins_key(nir)
    if int(key) != expected:
        raise InvalidINS(f"wrong INS key in {ins!r}: expected {expected:02d}")
    return ins


def make_ins(nir: str) -> str:
    """Append the key to a NIR."""
    return f"{nir}{ins_key(nir):02d}"


def patient_address(ins: str) -> Address:
    """The MSSanté address of the patient whose INS is given."""
    return Address(validate_ins(ins), PATIENT_DOMAIN)


def parse_patient_address(text: str) -> Address:
    """Parse an address of ``patient.mssante.fr`` and check its INS."""
    address = parse_address(text)
    if address.domain != PATIENT_DOMAIN:
        raise InvalidINS(f"{address} is not a patient address (@{PATIENT_DOMAIN})")
    validate_ins(address.local)
    return address


# --- the INS in documents ----------------------------------------------------------
# The assigning authorities of an INS (CI-SIS, ANS "Référentiel INS"): the OID that
# travels beside the matricule in a CDA (``patientRole/id/@root``) and in XDM metadata
# (``<INS>^^^&<OID>&ISO^NH``). The test and demonstration OIDs are for test data only.
INS_NIR_OID = "1.2.250.1.213.1.4.8"
INS_NIA_OID = "1.2.250.1.213.1.4.9"
INS_NIR_TEST_OID = "1.2.250.1.213.1.4.10"
INS_NIR_DEMO_OID = "1.2.250.1.213.1.4.11"
INS_OIDS: dict[str, str] = {
    INS_NIR_OID: "INS-NIR",
    INS_NIA_OID: "INS-NIA",
    INS_NIR_TEST_OID: "INS-NIR de test",
    INS_NIR_DEMO_OID: "INS-NIR de démonstration",
}
TEST_INS_OIDS = frozenset({INS_NIR_TEST_OID, INS_NIR_DEMO_OID})


def is_ins_oid(oid: str) -> bool:
    """Whether ``oid`` is the assigning authority of an INS (production or test)."""
    return oid in INS_OIDS


def is_qualified_ins(ins: str | None, oid: str | None, *, birth_name: str | None,
                     first_given_name: str | None, birth_date: str | None,
                     sex: str | None) -> bool:
    """Whether a document carries a qualified INS (MSSanté Réf#2 ECO.2.4.2, the value of
    ``X-MSS-INS``): the matricule, valid, with the OID of an INS authority, and the four
    identity traits beside it (birth name, first given name, birth date, sex). A test
    or demonstration OID counts: test documents are qualified in a test environment."""
    if not ins or not oid or not is_ins_oid(oid):
        return False
    try:
        validate_ins(ins)
    except InvalidINS:
        return False
    return all(value and value.strip()
               for value in (birth_name, first_given_name, birth_date, sex))
