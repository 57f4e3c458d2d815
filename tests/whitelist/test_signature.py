"""The detached signature of the whitelist: who may sign, and what a change does."""

from __future__ import annotations

import pytest

from mssante.errors import WhitelistError
from mssante.pki.ca import IssuedCertificate
from mssante.trustspace.service import TrustSpace, checker_for
from mssante.whitelist.signature import sign, verify

from .conftest import Foreign

DATA = b'<?xml version="1.0" encoding="UTF-8"?>\n<ListeBlancheMSSante/>\n'


def signed(ts: TrustSpace) -> tuple[bytes, bytes]:
    cert = ts.signing_cert
    return sign(DATA, cert.cert_file, cert.key_file), cert.cert_file.read_bytes()


def test_a_signature_by_the_trust_space_verifies(trust_space: TrustSpace) -> None:
    signature, chain = signed(trust_space)
    verify(DATA, signature, chain, checker_for(trust_space.pki))  # no exception


def test_changed_data_is_refused(trust_space: TrustSpace) -> None:
    signature, chain = signed(trust_space)
    with pytest.raises(WhitelistError, match="signature does not match"):
        verify(DATA.replace(b"Blanche", b"Noire"), signature, chain,
               checker_for(trust_space.pki))


def test_changed_signature_is_refused(trust_space: TrustSpace) -> None:
    signature, chain = signed(trust_space)
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    with pytest.raises(WhitelistError, match="signature does not match"):
        verify(DATA, flipped, chain, checker_for(trust_space.pki))
    with pytest.raises(WhitelistError, match="empty"):
        verify(DATA, b"", chain, checker_for(trust_space.pki))


def test_a_signer_from_a_foreign_pki_is_refused(trust_space: TrustSpace,
                                                 foreign: Foreign) -> None:
    signature = sign(DATA, foreign.signing.cert_file, foreign.signing.key_file)
    with pytest.raises(WhitelistError, match=r"signer certificate rejected.*not issued by"):
        verify(DATA, signature, foreign.signing.cert_file.read_bytes(),
               checker_for(trust_space.pki))


def test_a_tls_certificate_of_the_pki_may_not_sign(trust_space: TrustSpace,
                                                    mta: IssuedCertificate) -> None:
    signature = sign(DATA, mta.cert_file, mta.key_file)
    with pytest.raises(WhitelistError, match="not a signing certificate"):
        verify(DATA, signature, mta.cert_file.read_bytes(), checker_for(trust_space.pki))


def test_a_revoked_signer_is_refused(trust_space: TrustSpace) -> None:
    signature, chain = signed(trust_space)
    trust_space.pki.revoke(trust_space.signing_cert.serial, "keyCompromise")
    with pytest.raises(WhitelistError, match="revoked"):
        verify(DATA, signature, chain, checker_for(trust_space.pki))


def test_key_must_match_certificate(trust_space: TrustSpace, mta: IssuedCertificate) -> None:
    with pytest.raises(WhitelistError, match="is not the key of"):
        sign(DATA, trust_space.signing_cert.cert_file, mta.key_file)
