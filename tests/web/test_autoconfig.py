"""Mail client autoconfiguration, fetched as a mail client fetches it: over HTTPS from
a running environment, verified against the trust space's root, the document parsed
(defusedxml) and compared with the operator's real listeners."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
import httpx
import pytest
from cryptography import x509

from mssante.config import OperatorConfig, load_operator_config
from mssante.environment.operator import OperatorService
from tests.conftest import RunningEnvironment, environment_json

WELL_KNOWN = "/.well-known/autoconfig/mail/config-v1.1.xml"
AUTOCONFIG = "/mail/config-v1.1.xml"
HOSPITAL = "ch-xyz.mssante.fr"
PRO_METHODS = ["OAuth2", "TLS-client-cert", "password-cleartext"]


def base_url(env: RunningEnvironment, domain: str) -> str:
    https = env.operator(domain)["web"]
    return f"https://{https['host']}:{https['port']}"


def get(env: RunningEnvironment, domain: str, path: str,
        params: dict[str, str] | list[tuple[str, str]] | None = None) -> httpx.Response:
    with httpx.Client(verify=ssl.create_default_context(cafile=env.ca_file)) as client:
        return client.get(base_url(env, domain) + path, params=params)


def servers(doc: Element, tag: str) -> list[dict[str, Any]]:
    out = []
    for server in doc.iter(tag):
        out.append({"type": server.get("type"),
                    "hostname": server.findtext("hostname"),
                    "port": int(server.findtext("port") or 0),
                    "socketType": server.findtext("socketType"),
                    "username": server.findtext("username"),
                    "authentication": [a.text for a in server.findall("authentication")]})
    return out


def expected(host: str, ports: dict[str, int], methods: list[str]) -> tuple[list[Any], list[Any]]:
    def server(kind: str, name: str, socket_type: str) -> dict[str, Any]:
        return {"type": kind, "hostname": host, "port": ports[name], "socketType": socket_type,
                "username": "%EMAILADDRESS%", "authentication": methods}
    return ([server("imap", n, s) for n, s in (("imaps", "SSL"), ("imap", "STARTTLS"))
             if n in ports],
            [server("smtp", n, s) for n, s in (("submissions", "SSL"), ("submission", "STARTTLS"))
             if n in ports])


def test_the_well_known_document_lists_the_operators_own_endpoints(
        environment: RunningEnvironment) -> None:
    response = get(environment, HOSPITAL, WELL_KNOWN)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/xml"
    assert response.headers["cache-control"] == "public, max-age=3600"
    doc = SafeET.fromstring(response.content)
    assert doc.tag == "clientConfig" and doc.get("version") == "1.1"
    provider = doc.find("emailProvider")
    assert provider is not None and provider.get("id") == HOSPITAL
    assert [d.text for d in provider.findall("domain")] == [HOSPITAL]
    assert provider.findtext("displayName") == f"MSSanté {HOSPITAL}"
    # the ports the operator really listens on, implicit TLS first (RFC 8314)
    ports = environment.service(HOSPITAL).ports
    incoming, outgoing = expected("127.0.0.1", ports, PRO_METHODS)
    assert servers(doc, "incomingServer") == incoming
    assert servers(doc, "outgoingServer") == outgoing
    assert [s["socketType"] for s in incoming] == ["SSL", "STARTTLS"]


def test_environment_json_gives_each_operator_its_https_endpoint(
        environment: RunningEnvironment) -> None:
    for operator in environment_json(environment)["operators"]:
        service = environment.service(operator["domain"])
        port = service.ports["web"]
        assert operator["web"] == {"url": f"https://127.0.0.1:{port}", "host": "127.0.0.1",
                                   "port": port, "tls": "implicit"}


def test_served_with_the_operators_certificate(environment: RunningEnvironment) -> None:
    https = environment.operator(HOSPITAL)["web"]
    context = ssl.create_default_context(cafile=environment.ca_file)
    with socket.create_connection((https["host"], https["port"])) as raw, \
            context.wrap_socket(raw, server_hostname=https["host"]) as tls:
        der = tls.getpeercert(binary_form=True)
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    assert der is not None
    config = environment.service(HOSPITAL).config
    mta = x509.load_pem_x509_certificate(config.tls.cert_file.read_bytes())
    assert x509.load_der_x509_certificate(der) == mta


def test_the_autoconfig_path_answers_for_an_address_of_the_domain(
        environment: RunningEnvironment) -> None:
    plain = get(environment, HOSPITAL, WELL_KNOWN)
    for path in (AUTOCONFIG, WELL_KNOWN):
        response = get(environment, HOSPITAL, path,
                       {"emailaddress": "dupont@ch-xyz.mssante.fr"})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/xml"
        # the URL holds a person's address: no shared cache keeps it
        assert response.headers["cache-control"] == "private, max-age=3600"
        assert response.content == plain.content
    # the domain is read case-insensitively, as the parser reads it
    upper = get(environment, HOSPITAL, AUTOCONFIG, {"emailaddress": "Dupont@CH-XYZ.mssante.fr"})
    assert upper.content == plain.content


def test_an_unknown_mailbox_gets_the_same_answer_as_a_known_one(
        environment: RunningEnvironment) -> None:
    known = get(environment, HOSPITAL, AUTOCONFIG, {"emailaddress": "dupont@ch-xyz.mssante.fr"})
    unknown = get(environment, HOSPITAL, AUTOCONFIG,
                  {"emailaddress": "nobody.here@ch-xyz.mssante.fr"})
    store = environment.service(HOSPITAL).store
    assert environment.runner.call(store.get_mailbox("dupont@ch-xyz.mssante.fr")) is not None
    assert environment.runner.call(store.get_mailbox("nobody.here@ch-xyz.mssante.fr")) is None
    assert (unknown.status_code, unknown.content) == (known.status_code, known.content)
    assert {k: v for k, v in unknown.headers.items() if k != "date"} == \
        {k: v for k, v in known.headers.items() if k != "date"}


@pytest.mark.parametrize("address", ["jean.martin@medecin.mssante.fr", "someone@gmail.com",
                                     "x@mssante.fr", "x@sub.ch-xyz.mssante.fr"])
def test_an_address_of_another_domain_is_not_found(environment: RunningEnvironment,
                                                    address: str) -> None:
    response = get(environment, HOSPITAL, AUTOCONFIG, {"emailaddress": address})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["cache-control"] == "no-store"
    domain = address.rpartition("@")[2]
    assert response.text == (f"{domain} is not a domain of this operator "
                             f"(it serves {HOSPITAL})\n")


@pytest.mark.parametrize("params", [
    {"emailaddress": "dupont"},
    {"emailaddress": "dupont@"},
    {"emailaddress": "@ch-xyz.mssante.fr"},
    {"emailaddress": "a@b@ch-xyz.mssante.fr"},
    {"emailaddress": '"a b"@ch-xyz.mssante.fr'},
    {"emailaddress": "émile@ch-xyz.mssante.fr"},
    {"emailaddress": "dupont@ch-xyz.mssante.fr\r\nX-Injected: 1"},
    {"emailaddress": "dupont@ch_xyz.mssante.fr"},
    {"emailaddress": "<script>@ch-xyz.mssante.fr"},
    {"emailaddress": "a" * 65 + "@ch-xyz.mssante.fr"},
    {"emailaddress": "a" * 1000 + "@ch-xyz.mssante.fr"},  # longer than a path may be
])
def test_a_malformed_address_is_a_bad_request(environment: RunningEnvironment,
                                              params: dict[str, str]) -> None:
    response = get(environment, HOSPITAL, AUTOCONFIG, params)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == ("emailaddress: not a mail address (local@domain, at most 254 "
                             "characters)\n")  # the input is never repeated


@pytest.mark.parametrize("query,reason", [
    ("emailaddress=", "emailaddress: empty"),
    ("emailaddress=a@ch-xyz.mssante.fr&emailaddress=b@ch-xyz.mssante.fr",
     "emailaddress: give it once"),
    ("emailaddress=%FF%FE%00@ch-xyz.mssante.fr", "emailaddress: not a mail address"),
    ("emailaddress=%zz%%25", "emailaddress: not a mail address"),
    ("emailaddress=dupont%40ch-xyz.mssante.fr%00", "emailaddress: not a mail address"),
])
def test_hostile_query_strings_get_a_reason(environment: RunningEnvironment, query: str,
                                            reason: str) -> None:
    with httpx.Client(verify=ssl.create_default_context(cafile=environment.ca_file)) as client:
        response = client.get(f"{base_url(environment, HOSPITAL)}{AUTOCONFIG}?{query}")
    assert response.status_code == 400
    assert response.text.startswith(reason)


def test_a_request_line_of_a_megabyte_is_refused_and_the_server_goes_on(
        environment: RunningEnvironment) -> None:
    """Refused by uvicorn's HTTP parser (h11) or by the parser of addresses, depending
    on how the line arrives: either way a 400, and the next client is served."""
    https = environment.operator(HOSPITAL)["web"]
    context = ssl.create_default_context(cafile=environment.ca_file)
    with socket.create_connection((https["host"], https["port"])) as raw, \
            context.wrap_socket(raw, server_hostname=https["host"]) as tls:
        tls.sendall(b"GET " + AUTOCONFIG.encode() + b"?emailaddress=" + b"%41" * 350_000
                    + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        with contextlib.suppress(OSError):
            while chunk := tls.recv(4096):
                reply += chunk
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert get(environment, HOSPITAL, WELL_KNOWN).status_code == 200


def test_oauth2_names_pro_sante_connect_when_the_operator_has_an_issuer(
        environment: RunningEnvironment) -> None:
    doc = SafeET.fromstring(get(environment, HOSPITAL, WELL_KNOWN).content)
    oauth = doc.find("oAuth2")
    assert oauth is not None
    issuer = environment.service(HOSPITAL).config.psc.issuer
    assert issuer == environment.description["psc"]["issuer"]
    assert oauth.findtext("issuer") == httpx.URL(issuer).host
    assert oauth.findtext("scope") == "openid scope_all"
    assert oauth.find("authURL") is None and oauth.find("tokenURL") is None


def test_patients_log_in_with_a_password_only(environment: RunningEnvironment) -> None:
    response = get(environment, "patient.mssante.fr", AUTOCONFIG,
                   {"emailaddress": "279035121518989@patient.mssante.fr"})
    assert response.status_code == 200
    doc = SafeET.fromstring(response.content)
    ports = environment.service("patient.mssante.fr").ports
    incoming, outgoing = expected("127.0.0.1", ports, ["password-cleartext"])
    assert servers(doc, "incomingServer") == incoming
    assert servers(doc, "outgoingServer") == outgoing
    assert doc.find("oAuth2") is None


def test_head_and_other_methods(environment: RunningEnvironment) -> None:
    with httpx.Client(verify=ssl.create_default_context(cafile=environment.ca_file)) as client:
        head = client.head(base_url(environment, HOSPITAL) + WELL_KNOWN)
        post = client.post(base_url(environment, HOSPITAL) + WELL_KNOWN)
    assert head.status_code == 200 and head.content == b""
    assert "server" not in head.headers  # the software is not advertised
    assert head.headers["content-type"] == "application/xml"
    assert post.status_code == 405


# -- operators configured otherwise ------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def operator_variant(env: RunningEnvironment, tmp_path: Path,
                     overrides: dict[str, str]) -> Iterator[OperatorService]:
    """The hospital operator started again from its operator.toml, with ``overrides``
    (environment variables), its own data directory, and no MTA."""
    path = Path(env.operator(HOSPITAL)["config"])
    environ = {"MSSANTE_OPERATOR__DATA_DIR": str(tmp_path / "variant"),
               "MSSANTE_SMTP__PORT": "0", "MSSANTE_WEB__PORT": str(free_port()),
               **{name: "0" for name in ("MSSANTE_IMAP__PORT", "MSSANTE_IMAPS__PORT",
                                         "MSSANTE_SUBMISSION__PORT",
                                         "MSSANTE_SUBMISSIONS__PORT")},
               **overrides}
    config: OperatorConfig = load_operator_config(path, environ=environ)
    service = OperatorService(config)
    env.runner.call(service.start())
    try:
        yield service
    finally:
        env.runner.call(service.stop())


def fetch(env: RunningEnvironment, service: OperatorService, path: str) -> httpx.Response:
    url = f"https://127.0.0.1:{service.ports['web']}{path}"
    with httpx.Client(verify=ssl.create_default_context(cafile=env.ca_file)) as client:
        return client.get(url)


def test_no_oauth2_without_a_pro_sante_connect_issuer(environment: RunningEnvironment,
                                                      tmp_path: Path) -> None:
    ports = {"MSSANTE_IMAPS__PORT": str(free_port()),
             "MSSANTE_SUBMISSIONS__PORT": str(free_port())}
    with operator_variant(environment, tmp_path,
                          {"MSSANTE_PSC__ISSUER": "", **ports}) as service:
        doc = SafeET.fromstring(fetch(environment, service, WELL_KNOWN).content)
    assert doc.find("oAuth2") is None
    listening = {"imaps": service.config.imaps.port,
                 "submissions": service.config.submissions.port}
    incoming, outgoing = expected("127.0.0.1", listening, ["TLS-client-cert",
                                                           "password-cleartext"])
    assert servers(doc, "incomingServer") == incoming
    assert servers(doc, "outgoingServer") == outgoing


def test_behind_a_proxy_clients_are_told_the_public_name_and_ports(
        environment: RunningEnvironment, tmp_path: Path) -> None:
    imaps, submission = free_port(), free_port()
    overrides = {"MSSANTE_IMAPS__PORT": str(imaps), "MSSANTE_SUBMISSION__PORT": str(submission),
                 "MSSANTE_AUTOCONFIG__HOST": "mail.ch-xyz.mssante.fr",
                 "MSSANTE_AUTOCONFIG__IMAPS_PORT": "993",
                 "MSSANTE_AUTOCONFIG__DISPLAY_NAME": '"Centre Hospitalier <XYZ> & co"'}
    with operator_variant(environment, tmp_path, overrides) as service:
        assert service.ports["imaps"] == imaps  # the operator listens where it was told
        response = fetch(environment, service, WELL_KNOWN)
    doc = SafeET.fromstring(response.content)
    # only the listeners that listen; the advertised port where one is set
    incoming, outgoing = expected("mail.ch-xyz.mssante.fr",
                                  {"imaps": 993, "submission": submission}, PRO_METHODS)
    assert servers(doc, "incomingServer") == incoming
    assert servers(doc, "outgoingServer") == outgoing
    provider = doc.find("emailProvider")
    assert provider is not None
    assert provider.findtext("displayName") == "Centre Hospitalier <XYZ> & co"  # escaped
    assert b"&lt;XYZ&gt; &amp; co" in response.content


def test_web_port_0_means_no_listener(environment: RunningEnvironment,
                                        tmp_path: Path) -> None:
    with operator_variant(environment, tmp_path, {"MSSANTE_WEB__PORT": "0",
                                                  "MSSANTE_IMAPS__PORT": str(free_port())}
                          ) as service:
        assert "web" not in service.ports and "imaps" in service.ports
        assert service.web is None
