"""The MTA between operators: mutual TLS and the whitelist, from a client's side."""

from __future__ import annotations

import smtplib
import ssl
from pathlib import Path

import pytest

from mssante.pki.ca import PKI
from tests.e2e.mail import message, send, unique

MARTIN = "jean.martin@medecin.mssante.fr"
DUPONT = "dupont@ch-xyz.mssante.fr"


def mta(environment, domain: str = "medecin.mssante.fr") -> smtplib.SMTP:
    ep = environment.operator(domain)["smtp"]
    return smtplib.SMTP(ep["host"], ep["port"], timeout=30)


def tls(ca_file: str, cert: tuple[Path, Path] | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


def ch_xyz_cert(environment) -> tuple[Path, Path]:
    cfg = environment.service("ch-xyz.mssante.fr").config
    return cfg.tls.cert_file, cfg.tls.key_file


def test_mail_from_the_right_operator_is_accepted(environment) -> None:
    subject = unique("direct MTA")
    with mta(environment) as smtp:
        smtp.starttls(context=tls(environment.ca_file, ch_xyz_cert(environment)))
        smtp.ehlo("peer.test")
        smtp.sendmail(DUPONT, [MARTIN], message(DUPONT, MARTIN, subject).as_bytes())
    environment.wait_message(MARTIN, subject)


def test_starttls_is_required(environment) -> None:
    with mta(environment) as smtp:
        smtp.ehlo("peer.test")
        assert smtp.has_extn("starttls")
        code, text = smtp.mail(DUPONT)
    assert code == 530 and b"STARTTLS" in text


def test_no_client_certificate(environment) -> None:
    with mta(environment) as smtp:
        smtp.starttls(context=tls(environment.ca_file, None))
        smtp.ehlo("peer.test")
        code, text = smtp.mail(DUPONT)
    assert code == 530 and b"client certificate" in text


def test_certificate_from_another_ca(environment, tmp_path: Path) -> None:
    rogue = PKI.create_or_load(tmp_path / "rogue-pki")
    cert = rogue.issue_server("mta.ch-xyz.mssante.fr", organisation="CH XYZ",
                              out_dir=tmp_path, name="rogue")
    ctx = tls(environment.ca_file, (cert.cert_file, cert.key_file))
    with mta(environment) as smtp, pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected,
                                                  ConnectionError)):
        smtp.starttls(context=ctx)
        smtp.ehlo("peer.test")
        smtp.mail(DUPONT)


def test_dn_not_listed_for_the_sender_domain(environment, tmp_path: Path) -> None:
    pki = environment.env.trust_space.pki
    cert = pki.issue_server("mta.intrus.example", organisation="INTRUS", out_dir=tmp_path,
                            name="intrus")
    with mta(environment) as smtp:
        smtp.starttls(context=tls(environment.ca_file, (cert.cert_file, cert.key_file)))
        smtp.ehlo("peer.test")
        code, text = smtp.mail(DUPONT)
    assert code == 550 and b"not served by certificate" in text


def test_medecin_certificate_cannot_send_as_ch_xyz(environment) -> None:
    cfg = environment.service("medecin.mssante.fr").config
    with mta(environment, "patient.mssante.fr") as smtp:
        smtp.starttls(context=tls(environment.ca_file, (cfg.tls.cert_file, cfg.tls.key_file)))
        smtp.ehlo("peer.test")
        code, _ = smtp.mail(DUPONT)
    assert code == 550


def test_revoked_certificate_refused_after_refresh(environment, tmp_path: Path) -> None:
    pki = environment.env.trust_space.pki
    cert = pki.issue_server("mta2.ch-xyz.mssante.fr", organisation="CH XYZ", out_dir=tmp_path,
                            name="second")
    publisher = environment.env.trust_space.publisher
    import datetime as dt

    from mssante.whitelist.model import WhitelistEntry

    publisher.add(WhitelistEntry(name="ch-xyz.mssante.fr", description="second MTA",
                                 operator_dn=cert.subject_dn,
                                 updated_at=dt.datetime.now(dt.UTC).replace(microsecond=0)))
    try:
        environment.refresh_trust()
        ctx = tls(environment.ca_file, (cert.cert_file, cert.key_file))
        with mta(environment) as smtp:
            smtp.starttls(context=ctx)
            smtp.ehlo("peer.test")
            code, _ = smtp.mail(DUPONT)
            assert code == 250  # listed and valid: accepted
        pki.revoke(cert.serial, "keyCompromise")
        environment.refresh_trust()
        with mta(environment) as smtp:
            smtp.starttls(context=ctx)
            smtp.ehlo("peer.test")
            code, text = smtp.mail(DUPONT)
        assert code == 550 and b"revoked" in text
    finally:
        publisher.remove("ch-xyz.mssante.fr", cert.subject_dn)
        environment.refresh_trust()


def test_not_an_open_relay(environment) -> None:
    with mta(environment) as smtp:
        smtp.starttls(context=tls(environment.ca_file, ch_xyz_cert(environment)))
        smtp.ehlo("peer.test")
        smtp.mail(DUPONT)
        code, text = smtp.rcpt("someone@patient.mssante.fr")
        assert code == 550 and b"Relaying denied" in text
        code, text = smtp.rcpt("nobody@medecin.mssante.fr")
        assert code == 550 and b"5.1.1" in text


def test_domain_removed_from_whitelist_refused_after_refresh(environment) -> None:
    ts = environment.env.trust_space
    current = ts.publisher.current()
    (entry,) = [e for e in current.entries if e.name == "medecin.mssante.fr"]
    ts.publisher.remove("medecin.mssante.fr")
    try:
        environment.refresh_trust()
        # at submission: the domain is now outside the trust space
        from tests.e2e.mail import submission

        with submission(environment, "ch-xyz.mssante.fr", DUPONT) as smtp:
            smtp.mail(DUPONT)
            code, text = smtp.rcpt(MARTIN)
        assert code == 550 and b"outside the MSSante trust space" in text
        # at the MTA of medecin: mail *from* the removed domain is refused
        cfg = environment.service("medecin.mssante.fr").config
        with mta(environment, "ch-xyz.mssante.fr") as smtp:
            smtp.starttls(context=tls(environment.ca_file, (cfg.tls.cert_file, cfg.tls.key_file)))
            smtp.ehlo("peer.test")
            code, _ = smtp.mail(MARTIN)
        assert code == 550
    finally:
        ts.publisher.add(entry)
        environment.refresh_trust()
    subject = unique("après réintégration")
    send(environment, DUPONT, message(DUPONT, MARTIN, subject))
    environment.wait_message(MARTIN, subject)
