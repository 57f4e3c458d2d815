"""`mssante send`: send clinical documents from a PER mailbox (a login and its password)
or an APP mailbox (its organisation certificate, SASL EXTERNAL), the way any MSSanté
client does it: submission (RFC 6409) over TLS, the server verified against the
trust space's root, the message built by content/docmessage.py (the IHE_XDM.ZIP of the
CDA documents, the ``XDM/1.0/DDM+`` subject, ``X-MSS-CODECDA``, ``X-MSS-INS``).

A message goes to all its recipients or to none: every RCPT is asked before DATA, and
one refusal ends the transaction (RSET) with the server's replies printed. A password
is never taken from the command line (it would show in ``ps`` and shell histories):
``--password-file`` or the ``MSSANTE_PASSWORD`` environment variable.
"""

from __future__ import annotations

import json
import os
import smtplib
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from mssante.cli.common import fail, print_json
from mssante.content.docmessage import (
    DEFAULT_TEXT,
    DocumentMessage,
    NamedFile,
    documents_message,
)
from mssante.domain.addresses import AddressSyntaxError, parse_one_mailbox
from mssante.errors import DocumentRefused, PolicyViolation

MAX_INPUT = 64 * 1024 * 1024  # a file given on the command line, read whole
PASSWORD_VARIABLE = "MSSANTE_PASSWORD"


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    implicit: bool  # TLS from the first octet (465) rather than STARTTLS (587)
    ca_file: str


def _read(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_INPUT + 1)
    except OSError as exc:
        raise fail(f"{what} {path}: {exc.strerror}") from None
    if len(data) > MAX_INPUT:
        raise fail(f"{what} {path}: more than {MAX_INPUT} octets")
    return data


def _address(value: str, what: str) -> str:
    try:
        return parse_one_mailbox(value).addr_spec
    except AddressSyntaxError as exc:
        raise fail(f"{what} {value!r}: {exc}") from None


def endpoint_of(env_file: Path | None, server: str | None, ca: Path | None,
                sender: str, tls: str | None) -> Endpoint:
    """Where to submit: the sender's operator in ``environment.json`` (by the domain of
    the From address), or ``HOST:PORT`` with the CA file given."""
    if (env_file is None) == (server is None):
        raise fail("give either --env environment.json or --server HOST:PORT with --ca")
    if server is not None:
        if ca is None:
            raise fail("--server needs --ca, the trust space's root certificate")
        host, _, port_text = server.rpartition(":")
        if not host or not port_text.isdigit():
            raise fail(f"--server {server!r}: HOST:PORT expected")
        port = int(port_text)
        implicit = tls == "implicit" if tls else port == 465
        return Endpoint(host.strip("[]"), port, implicit, str(ca))
    assert env_file is not None
    try:
        environment: dict[str, Any] = json.loads(_read(env_file, "environment"))
    except ValueError as exc:
        raise fail(f"{env_file}: not JSON ({exc})") from None
    domain = sender.rpartition("@")[2].lower()
    operator = next((op for op in environment.get("operators", [])
                     if str(op.get("domain", "")).lower() == domain), None)
    if operator is None:
        raise fail(f"{env_file}: no operator serves {domain}")
    implicit = tls == "implicit"
    listener = operator.get("submissions" if implicit else "submission") or {}
    if not listener.get("port"):
        raise fail(f"{env_file}: the operator of {domain} has no submission endpoint")
    return Endpoint(str(listener["host"]), int(listener["port"]), implicit,
                    str(ca or environment["ca_file"]))


def _password(password_file: Path | None) -> str:
    if password_file is not None:
        text = _read(password_file, "password file").decode("utf-8", "replace")
        password = text.splitlines()[0] if text.splitlines() else ""
    else:
        password = os.environ.get(PASSWORD_VARIABLE, "")
    if not password:
        raise fail(f"no password: give --password-file FILE or set {PASSWORD_VARIABLE}")
    return password


def _reply(code: int, text: bytes | str) -> str:
    shown = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(shown.split())}"


def connect(endpoint: Endpoint, cert: tuple[Path, Path] | None,
            timeout: float = 60.0) -> smtplib.SMTP:
    """A TLS submission session, the server's certificate checked against the CA (its
    name or IP address included), with the client certificate when given."""
    context = ssl.create_default_context(cafile=endpoint.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        try:
            context.load_cert_chain(str(cert[0]), str(cert[1]))
        except (OSError, ssl.SSLError) as exc:
            raise fail(f"certificate {cert[0]} / key {cert[1]}: {exc}") from None
    try:
        if endpoint.implicit:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(endpoint.host, endpoint.port,
                                                  context=context, timeout=timeout)
        else:
            smtp = smtplib.SMTP(endpoint.host, endpoint.port, timeout=timeout)
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                smtp.close()
                raise fail(f"{endpoint.host}:{endpoint.port} offers no STARTTLS: "
                           "nothing is sent in clear")
            smtp.starttls(context=context)
        smtp.ehlo()
    except ssl.SSLCertVerificationError as exc:
        raise fail(f"{endpoint.host}:{endpoint.port}: the server's certificate is not "
                   f"trusted ({exc.verify_message})") from None
    except smtplib.SMTPResponseException as exc:
        raise fail(f"{endpoint.host}:{endpoint.port} answered "
                   f"{_reply(exc.smtp_code, exc.smtp_error)}") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise fail(f"cannot reach {endpoint.host}:{endpoint.port}: {exc}") from None
    return smtp


def authenticate(smtp: smtplib.SMTP, login: str | None, password: str | None) -> None:
    """AUTH PLAIN with a login and its password, or AUTH EXTERNAL (RFC 4422 App. A:
    the TLS client certificate is the credential, the empty authorisation identity
    ``=`` lets the server take the certificate's)."""
    if login is not None:
        assert password is not None
        try:
            smtp.login(login, password)
        except smtplib.SMTPAuthenticationError as exc:
            raise fail(f"login {login} refused: "
                       f"{_reply(exc.smtp_code, exc.smtp_error)}") from None
        except smtplib.SMTPException as exc:
            raise fail(f"login {login} failed: {exc}") from None
        return
    code, text = smtp.docmd("AUTH", "EXTERNAL =")
    if code != 235:
        raise fail(f"certificate login (AUTH EXTERNAL) refused: {_reply(code, text)}")


def submit(smtp: smtplib.SMTP, sender: str, recipients: list[str], message: bytes,
           *, dsn: bool) -> None:
    """MAIL, every RCPT, then DATA only when all recipients are accepted."""
    code, text = smtp.mail(sender, ["BODY=8BITMIME"] if smtp.has_extn("8bitmime") else [])
    if code != 250:
        raise fail(f"sender {sender} refused: {_reply(code, text)}")
    options = ["NOTIFY=SUCCESS,FAILURE"] if dsn else []
    if dsn and not smtp.has_extn("dsn"):
        smtp.rset()
        raise fail("the server does not offer DSN (RFC 3461): --dsn cannot be honoured")
    refused = []
    for recipient in recipients:
        code, text = smtp.rcpt(recipient, options)
        if code not in (250, 251):
            refused.append(f"recipient {recipient} refused: {_reply(code, text)}")
    if refused:
        smtp.rset()
        raise fail("; ".join(refused) + " (nothing was sent)")
    code, text = smtp.data(message)
    if code != 250:
        raise fail(f"message refused: {_reply(code, text)}")


def _message(sender: str, recipients: list[str], cdas: list[Path], pdfs: list[Path],
             text_file: Path | None, subject: str | None, read_receipt: bool,
             software_reference: str, class_code: str | None) -> DocumentMessage:
    """The message of content/docmessage.py's ``documents_message``, as the webmail and
    its REST path build it; the PDFs paired with the CDAs by file name, else in order."""
    text = _read(text_file, "text").decode("utf-8", "replace") if text_file else DEFAULT_TEXT
    try:
        return documents_message(
            [NamedFile(cda.name, _read(cda, "CDA")) for cda in cdas],
            [NamedFile(pdf.name, _read(pdf, "PDF")) for pdf in pdfs],
            sender=sender, to=recipients, text=text, subject=subject,
            software_reference=software_reference, class_code=class_code,
            headers=[("Disposition-Notification-To", sender)] if read_receipt  # RFC 8098 §2.1
            else [])
    except DocumentRefused as exc:
        for reason in exc.reasons:
            typer.echo(f"error: {reason}", err=True)
        raise typer.Exit(1) from None
    except (PolicyViolation, ValueError) as exc:  # ValueError: a line break in --subject
        raise fail(str(exc)) from None


def send(
        sender: Annotated[str, typer.Option("--from", help="The sending mailbox.")],
        to: Annotated[list[str], typer.Option("--to", help="A recipient (repeatable).")],
        cda: Annotated[list[Path], typer.Option(
            "--cda", help="A CDA R2 document (repeatable; one patient).")],
        pdf: Annotated[list[Path] | None, typer.Option(
            "--pdf", help="The PDF rendering of the --cda of the same file name "
                          "stem, else of the same rank (repeatable).")] = None,
        text: Annotated[Path | None, typer.Option(
            "--text", help="The message's text (UTF-8 file).")] = None,
        subject: Annotated[str | None, typer.Option(
            "--subject", help="The subject (default: XDM/1.0/DDM+<title> <NOM> <prénom> "
                              "<birth date>, from the CDA).")] = None,
        env: Annotated[Path | None, typer.Option(
            "--env", help="environment.json of `mssante up`: the submission endpoint of "
                          "the --from domain's operator, and the CA.")] = None,
        server: Annotated[str | None, typer.Option(
            "--server", help="HOST:PORT of submission (465: implicit TLS, else "
                             "STARTTLS).")] = None,
        ca: Annotated[Path | None, typer.Option(
            "--ca", help="The trust space's root certificate, to verify the "
                         "server.")] = None,
        tls: Annotated[str | None, typer.Option(
            "--tls", help="implicit or starttls (default: by the port; starttls with "
                          "--env).")] = None,
        login: Annotated[str | None, typer.Option(
            "--login", help="Log in with this login (PER mailbox); the password from "
                            "--password-file or MSSANTE_PASSWORD.")] = None,
        password_file: Annotated[Path | None, typer.Option(
            "--password-file", help="A file whose first line is the password.")] = None,
        cert: Annotated[Path | None, typer.Option(
            "--cert", help="Log in with this certificate (APP mailbox: its organisation "
                           "certificate, PEM; SASL EXTERNAL).")] = None,
        key: Annotated[Path | None, typer.Option(
            "--key", help="The certificate's private key (PEM).")] = None,
        dsn: Annotated[bool, typer.Option(
            "--dsn", help="Ask for delivery reports (NOTIFY=SUCCESS,FAILURE).")] = False,
        read_receipt: Annotated[bool, typer.Option(
            "--read-receipt", help="Ask for an MDN: Disposition-Notification-To, which "
                                   "the receiving software answers once it has "
                                   "integrated the documents.")] = False,
        software_reference: Annotated[str, typer.Option(
            "--software-reference", help="X-MSS-NIL: the sending software's "
                                         "reference.")] = "mssante send",
        class_code: Annotated[str | None, typer.Option(
            "--class-code", help="XDS classCode, for a document type not known "
                                 "here.")] = None,
        as_json: Annotated[bool, typer.Option(
            "--json", help='Print {"message_id", "recipients"}.')] = False) -> None:
    """Send CDA documents (with their PDF renderings) in an IHE_XDM.ZIP, by submission
    over TLS, as a PER mailbox (--login) or an APP mailbox (--cert/--key)."""
    if (login is None) == (cert is None):
        raise fail("log in with either --login (and a password) or --cert and --key")
    if cert is not None and key is None:
        raise fail("--cert needs --key")
    if tls not in (None, "implicit", "starttls"):
        raise fail(f"--tls {tls!r}: implicit or starttls")
    if not to:
        raise fail("at least one --to")
    from_address = _address(sender, "--from")
    recipients = [_address(r, "--to") for r in to]
    password = _password(password_file) if login is not None else None
    endpoint = endpoint_of(env, server, ca, from_address, tls)
    built = _message(from_address, recipients, cda, pdf or [], text, subject, read_receipt,
                     software_reference, class_code)
    raw, message_id = built.raw, built.message_id
    smtp = connect(endpoint, (cert, key) if cert is not None and key is not None else None)
    try:
        authenticate(smtp, login, password)
        submit(smtp, from_address, recipients, raw, dsn=dsn)
    except smtplib.SMTPServerDisconnected as exc:
        raise fail(f"the server closed the connection: {exc}") from None
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()
    if as_json:
        print_json({"message_id": message_id, "recipients": recipients})
        return
    typer.echo(f"sent {message_id} to {', '.join(recipients)}")
