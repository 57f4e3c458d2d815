"""The mail log: one INFO line per message received, refused or delivered, on a real
exchange between two operators of the environment (and a peer that forgets its chain)."""

from __future__ import annotations

import logging
import smtplib
import ssl
from pathlib import Path

import pytest

from tests.conftest import RunningEnvironment
from tests.e2e.mail import message, send, unique

DUPONT = "dupont@ch-xyz.mssante.fr"
MARTIN = "jean.martin@medecin.mssante.fr"


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "mssante.mail" and r.levelno == logging.INFO]


def test_a_delivery_is_logged_once_on_each_side(environment: RunningEnvironment,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mssante.mail")
    subject = unique("journal")
    send(environment, DUPONT, message(DUPONT, MARTIN, subject))
    environment.wait_message(MARTIN, subject)
    port = environment.operator("medecin.mssante.fr")["smtp"]["port"]
    environment.wait_for(lambda: any("status=sent" in line for line in lines(caplog)),
                         what="the sending side's line")
    sent = [line for line in lines(caplog) if "status=sent" in line]
    assert len(sent) == 1
    assert f"to=<{MARTIN}>, from=<{DUPONT}>, relay=127.0.0.1:{port} " in sent[0]
    assert 'dn="CN=mta.medecin.mssante.fr,' in sent[0]
    assert ", dsn=2.6.0, status=sent (250 2.6.0 Message accepted as " in sent[0]
    received = [line for line in lines(caplog) if "status=accepted" in line
                and f"to=<{MARTIN}>" in line and "sasl_username=" not in line]
    assert len(received) == 1
    assert f"from=<{DUPONT}>, to=<{MARTIN}>, size=" in received[0]
    assert 'client=127.0.0.1, dn="CN=mta.ch-xyz.mssante.fr,' in received[0]
    queue_id = sent[0].rpartition("Message accepted as ")[2].rstrip(")")
    assert received[0].startswith(f"{queue_id}: ")  # the same id on both sides
    submitted = [line for line in lines(caplog)
                 if "sasl_username=" in line and f"to=<{MARTIN}>" in line]
    assert len(submitted) == 1  # and the submission that started it, with who sent it
    assert f"from=<{DUPONT}>, to=<{MARTIN}>, size=" in submitted[0]
    assert f"client=127.0.0.1, sasl_username={DUPONT}, status=accepted" in submitted[0]


def test_a_message_delivered_inside_one_operator_is_logged(
        environment: RunningEnvironment, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mssante.mail")
    cardio = "cardiologie@ch-xyz.mssante.fr"
    send(environment, DUPONT, message(DUPONT, cardio, unique("interne")))
    [line] = [line for line in lines(caplog) if f"to=<{cardio}>" in line]
    assert f"from=<{DUPONT}>" in line and f"sasl_username={DUPONT}, status=accepted" in line


def mta(environment: RunningEnvironment) -> smtplib.SMTP:
    ep = environment.operator("medecin.mssante.fr")["smtp"]
    return smtplib.SMTP(ep["host"], ep["port"], timeout=30)


def test_a_refused_sender_is_logged_with_the_peer_dn(environment: RunningEnvironment,
                                                     caplog: pytest.LogCaptureFixture,
                                                     tmp_path: Path) -> None:
    caplog.set_level(logging.INFO, logger="mssante.mail")
    pki = environment.env.trust_space.pki
    cert = pki.issue_server("mta.intrus.example", organisation="INTRUS", out_dir=tmp_path,
                            name="intrus")
    tls = ssl.create_default_context(cafile=environment.ca_file)
    tls.load_cert_chain(str(cert.cert_file), str(cert.key_file))
    with mta(environment) as smtp:
        smtp.starttls(context=tls)
        smtp.ehlo("peer.test")
        code, _ = smtp.mail(DUPONT)
    assert code == 550
    (line,) = [line for line in lines(caplog) if line.startswith("NOQUEUE: reject: MAIL")]
    assert "from 127.0.0.1: 550 5.7.1 Sender domain ch-xyz.mssante.fr is not served" in line
    assert f"from=<{DUPONT}>, dn=\"CN=mta.intrus.example,O=INTRUS,C=FR\"" in line


def test_a_peer_without_its_intermediate_ca_is_logged_with_the_reason(
        environment: RunningEnvironment, caplog: pytest.LogCaptureFixture,
        tmp_path: Path) -> None:
    """The handshake fails on our side after the client thinks it is done (TLS 1.3): the
    log line is all the peer's administrator can be told."""
    caplog.set_level(logging.INFO, logger="mssante.mail")
    cfg = environment.service("ch-xyz.mssante.fr").config
    chain = cfg.tls.cert_file.read_text()
    leaf_only = tmp_path / "leaf.pem"
    leaf_only.write_text(chain[:chain.index("-----END CERTIFICATE-----") + 26])
    tls = ssl.create_default_context(cafile=environment.ca_file)
    tls.load_cert_chain(str(leaf_only), str(cfg.tls.key_file))
    with mta(environment) as smtp, pytest.raises((smtplib.SMTPServerDisconnected, ssl.SSLError,
                                                  ConnectionError)):
        smtp.starttls(context=tls)
        smtp.ehlo("peer.test")
        smtp.mail(DUPONT)
    environment.wait_for(lambda: any("reject: STARTTLS" in line for line in lines(caplog)),
                         what="the refusal line")
    (line,) = [line for line in lines(caplog) if "reject: STARTTLS" in line]
    assert "from 127.0.0.1: TLS handshake failed: certificate verify failed: " in line
    assert "unable to get local issuer certificate" in line
    assert "must send its certificate chain" in line


def test_a_refused_message_is_logged_with_its_envelope(environment: RunningEnvironment,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mssante.mail")
    cfg = environment.service("ch-xyz.mssante.fr").config
    tls = ssl.create_default_context(cafile=environment.ca_file)
    tls.load_cert_chain(str(cfg.tls.cert_file), str(cfg.tls.key_file))
    with mta(environment) as smtp:
        smtp.starttls(context=tls)
        smtp.ehlo("peer.test")
        with pytest.raises(smtplib.SMTPDataError) as refused:
            smtp.sendmail(DUPONT, [MARTIN], f"From: {DUPONT}\r\nFrom: {DUPONT}\r\n"
                          "Subject: deux From\r\n\r\nx\r\n".encode())
    assert refused.value.smtp_code == 550
    (line,) = [line for line in lines(caplog) if line.startswith("NOQUEUE: reject: DATA")]
    assert line.startswith("NOQUEUE: reject: DATA from 127.0.0.1: 550 5.6.0 ")
    assert line.endswith(f'; from=<{DUPONT}>, to=<{MARTIN}>, dn="{_dn(cfg.tls.cert_file)}"')


def _dn(cert_file: Path) -> str:
    from cryptography import x509

    from mssante.pki.names import dn_string

    return dn_string(x509.load_pem_x509_certificate(cert_file.read_bytes()).subject)
