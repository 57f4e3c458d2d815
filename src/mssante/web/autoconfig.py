"""Mail client autoconfiguration, in Thunderbird's clientConfig format 1.1.

Two paths, both ``GET`` (and ``HEAD``), both taking an optional ``emailaddress``:

- ``/.well-known/autoconfig/mail/config-v1.1.xml``: what Thunderbird asks
  ``https://<domain>/`` for;
- ``/mail/config-v1.1.xml?emailaddress=<address>``: what it asks
  ``https://autoconfig.<domain>/`` for (Thunderbird's FetchConfig sends the address to
  both unless told not to).

The format is Thunderbird's: https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat
(read by Thunderbird's ``readFromXML``, by Evolution, KMail and others).

Invariants:
- The document is made from the configuration only, once, when the application is
  built: never from the request's Host header, never from the store. An address of a
  served domain gets the same document whether its mailbox exists or not (nothing
  here tells who has a mailbox); the user name is the client-side placeholder
  ``%EMAILADDRESS%``.
- ``emailaddress`` is read with the project's one strict parser
  (``domain.addresses.parse_address``): malformed, it is a ``400``; of a domain this
  operator does not serve, a ``404``. Both answer in plain text and never repeat the
  input (it may be anything, of any length).
- Only the listeners that listen (port not 0) are listed, each once, implicit TLS
  first (RFC 8314 §3.2, §3.3: implicit TLS for IMAP and submission, preferred to
  STARTTLS); clients take
  the first server they support and keep the others as alternatives (Thunderbird's
  ``readFromXML``). The host and ports are those of ``[autoconfig]`` (a proxy, a NAT),
  else ``operator.hostname`` and each listener's own port.
- Authentication, in the order clients should try it (they take the first they
  support): for professionals ``OAuth2`` (a Pro Santé Connect token over SASL
  XOAUTH2/OAUTHBEARER, when ``[psc]`` has an issuer),
  ``TLS-client-cert`` (the CPS card, SASL EXTERNAL) and ``password-cleartext`` (SASL
  PLAIN, only ever over TLS: every listed server is TLS). A patients' domain
  (``patient.mssante.fr``) lists the password only: patients have neither card nor
  PSC account. Thunderbird skips ``OAuth2`` for providers it does not know and does
  not implement ``TLS-client-cert``: it uses the password.
- ``<oAuth2>`` (when PSC is configured) names the issuer as Thunderbird's provider
  entries do, by host name, and the scope ``openid scope_all`` (PSC's). It gives no
  ``authURL``/``tokenURL``: they are in the provider's discovery document
  (``<issuer>/.well-known/openid-configuration``), which the operator reads only
  inside its token checker (``auth/psctoken.py``), not through an interface this
  package may use; a client needs a client registered at PSC anyway, which no
  autoconfiguration gives.
"""

from __future__ import annotations

import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response

from mssante.config import Listener, OperatorConfig
from mssante.domain.addresses import MAX_PATH, PATIENT_DOMAIN, parse_address
from mssante.domain.policy import serves
from mssante.errors import InvalidAddress
from mssante.web.context import WebContext

WELL_KNOWN_PATH = "/.well-known/autoconfig/mail/config-v1.1.xml"
AUTOCONFIG_PATH = "/mail/config-v1.1.xml"
MEDIA_TYPE = "application/xml"
USERNAME = "%EMAILADDRESS%"  # the client puts the address the user typed
PSC_SCOPE = "openid scope_all"  # the scope PSC's clients ask for (psc/flow.py)
# The answer changes only with the configuration, read at start; an address in the
# URL is a person's: shared caches keep no copy of those answers.
CACHE = "public, max-age=3600"
CACHE_WITH_ADDRESS = "private, max-age=3600"
NO_STORE = "no-store"

# Thunderbird's authentication values, in the order clients should try them
OAUTH2 = "OAuth2"
CLIENT_CERT = "TLS-client-cert"
PASSWORD = "password-cleartext"


@dataclass(frozen=True, slots=True)
class Server:
    """One endpoint as clients are told of it."""

    kind: str  # "imap" (incomingServer) or "smtp" (outgoingServer)
    host: str
    port: int
    socket_type: str  # "SSL" (implicit TLS) or "STARTTLS"


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Everything the documents say, from the configuration."""

    domains: tuple[str, ...]  # lower case, in the configured order
    display_name: str
    servers: tuple[Server, ...]  # in the order clients should prefer them
    psc_issuer_host: str | None  # None: no Pro Santé Connect


def client_settings(config: OperatorConfig) -> ClientSettings:
    """What clients are told, from an operator's configuration."""
    advertised = config.autoconfig
    host = advertised.host or config.operator.hostname
    domains = tuple(d.lower().rstrip(".") for d in config.operator.domains)

    def server(kind: str, listener: Listener, port: int, socket_type: str) -> list[Server]:
        if listener.port == 0:
            return []
        return [Server(kind, host, port or listener.port, socket_type)]

    servers = (server("imap", config.imaps, advertised.imaps_port, "SSL")
               + server("imap", config.imap, advertised.imap_port, "STARTTLS")
               + server("smtp", config.submissions, advertised.submissions_port, "SSL")
               + server("smtp", config.submission, advertised.submission_port, "STARTTLS"))
    issuer = config.psc.issuer
    return ClientSettings(
        domains=domains,
        display_name=advertised.display_name or f"MSSanté {domains[0]}",
        servers=tuple(servers),
        psc_issuer_host=urllib.parse.urlsplit(issuer).hostname if issuer else None)


def authentication_methods(settings: ClientSettings, domain: str) -> tuple[str, ...]:
    """How the users of ``domain`` log in, the strongest first."""
    if domain == PATIENT_DOMAIN:
        return (PASSWORD,)
    oauth = (OAUTH2,) if settings.psc_issuer_host else ()
    return (*oauth, CLIENT_CERT, PASSWORD)


def config_document(settings: ClientSettings, domain: str) -> bytes:
    """The clientConfig document for the users of ``domain`` (one the operator serves)."""
    root = ET.Element("clientConfig", version="1.1")
    provider = ET.SubElement(root, "emailProvider", id=domain)
    for served in settings.domains:
        ET.SubElement(provider, "domain").text = served
    ET.SubElement(provider, "displayName").text = settings.display_name
    ET.SubElement(provider, "displayShortName").text = "MSSanté"
    methods = authentication_methods(settings, domain)
    for server in settings.servers:
        tag = "incomingServer" if server.kind == "imap" else "outgoingServer"
        element = ET.SubElement(provider, tag, type=server.kind)
        ET.SubElement(element, "hostname").text = server.host
        ET.SubElement(element, "port").text = str(server.port)
        ET.SubElement(element, "socketType").text = server.socket_type
        ET.SubElement(element, "username").text = USERNAME
        for method in methods:
            ET.SubElement(element, "authentication").text = method
    if OAUTH2 in methods and settings.psc_issuer_host:
        oauth = ET.SubElement(root, "oAuth2")
        ET.SubElement(oauth, "issuer").text = settings.psc_issuer_host
        ET.SubElement(oauth, "scope").text = PSC_SCOPE
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


class Refusal(Exception):
    """A request this module answers with an error; ``str()`` is the plain-text reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def requested_domain(settings: ClientSettings, values: list[str]) -> str:
    """The domain the document is for: that of ``emailaddress`` when given (it must be
    one this operator serves), else the operator's first."""
    if not values:
        return settings.domains[0]
    if len(values) > 1:
        raise Refusal(400, "emailaddress: give it once")
    value = values[0]
    if not value:
        raise Refusal(400, "emailaddress: empty; give the address, e.g. "
                           f"emailaddress=dupont@{settings.domains[0]}")
    try:
        if len(value) > MAX_PATH - 2:
            raise InvalidAddress("too long")
        address = parse_address(value)
    except InvalidAddress:
        raise Refusal(400, f"emailaddress: not a mail address (local@domain, at most "
                           f"{MAX_PATH - 2} characters)") from None
    if not serves(frozenset(settings.domains), address.domain):
        raise Refusal(404, f"{address.domain} is not a domain of this operator "
                           f"(it serves {', '.join(settings.domains)})")
    return address.domain


def create_router(web: WebContext) -> APIRouter:
    """The two autoconfiguration paths of one operator."""
    settings = client_settings(web.config)
    documents = {domain: config_document(settings, domain) for domain in settings.domains}
    router = APIRouter()

    @router.api_route(WELL_KNOWN_PATH, methods=["GET", "HEAD"], include_in_schema=False)
    @router.api_route(AUTOCONFIG_PATH, methods=["GET", "HEAD"], include_in_schema=False)
    def autoconfiguration(request: Request) -> Response:
        values = request.query_params.getlist("emailaddress")
        try:
            domain = requested_domain(settings, values)
        except Refusal as refusal:
            return Response(f"{refusal}\n", status_code=refusal.status,
                            media_type="text/plain",
                            headers={"Cache-Control": NO_STORE,
                                     "X-Content-Type-Options": "nosniff"})
        return Response(documents[domain], media_type=MEDIA_TYPE,
                        headers={"Cache-Control": CACHE_WITH_ADDRESS if values else CACHE,
                                 "X-Content-Type-Options": "nosniff"})

    return router
