"""The local environment of `mssante up`: the trust space and three operators on 127.0.0.1.

Layout under the data directory (created on first start, reused afterwards):

    trust/                      the trust space: PKI, whitelist, HTTPS certificate,
                                the PSC provider's keys and operator clients (psc/)
    trust.toml                  its configuration
    operators/<domain>/         one operator: operator.toml, certs/, operator.sqlite3
    outside-operators.toml      written by you: other MTAs joining the environment
                                (routes and whitelist entries, see outside.py)
    accounts.json               generated passwords (mode 0600)
    notifications/              what the operators sent to personal addresses (one-time
                                codes, new-message notices), one .eml file each: the
                                local stand-in for a mail relay (notify/sink.py)
    environment.json            endpoints, CA file and logins (mode 0600), for tools

Every folder is 0700 and every file 0600 (files.py); a tree left readable by others
is repaired at each start, and what was repaired is logged.

Ports: the trust space listens on ``base_port``; operator *i* (0, 1, 2) on
``base_port + 10*(i+1)`` (MTA), ``+1`` (submission, STARTTLS), ``+2`` (submissions,
implicit TLS), ``+3`` (IMAP, STARTTLS), ``+4`` (IMAP, implicit TLS), ``+5`` (HTTPS:
client autoconfiguration). The notification sink listens on ``base_port + 9``
(plain SMTP, every operator's ``[notifications] relay``). Mail clients are told to
connect to 127.0.0.1 (``[autoconfig] host``): the operators' names do not resolve on a
laptop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from mssante.auth.passwords import generate_password, hash_password
from mssante.config import OperatorConfig, PSCSettings, load_operator_config
from mssante.directory.model import Organisation, Practitioner
from mssante.directory.store import open_directory
from mssante.domain.mailboxes import MailboxType, PersonKind, Role, Rules
from mssante.environment.operator import OperatorService
from mssante.environment.outside import OUTSIDE_FILE, OutsideOperator, load_outside_operators
from mssante.errors import ConfigError, TrustSpaceUnavailable
from mssante.files import private_dir, repair_permissions, write_atomic
from mssante.httpserve import wait_started
from mssante.notify.sink import NotificationSink
from mssante.pki.ca import IssuedCertificate
from mssante.pki.names import dn_string, same_dn
from mssante.psc.clients import Client, Clients
from mssante.store import Store, open_store
from mssante.store.models import PENDING
from mssante.trustspace.server import serve as serve_trust_space
from mssante.trustspace.service import TrustSpace
from mssante.web.login import LOGIN_PATH, PSC_RETURN_PATH
from mssante.web.psclogout import PATH as PSC_BACKCHANNEL_PATH
from mssante.whitelist.model import WhitelistEntry

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
DEMO_EXTRACT_INTERVAL = 2.0  # seconds: the demo's published extract follows changes quickly
DEFAULT_BASE_PORT = 10000
# Where the PSC provider sends a professional back with a code: a loopback URI of a
# native application (RFC 8252 §7.3); `mssante psc token` reads the code from it.
PSC_REDIRECT_URI = "http://127.0.0.1/callback"

log = logging.getLogger(__name__)


# The health authority of the environment (domain/alerts.py, README "Health alerts"):
# the program behind this APP mailbox sends alerts (`mssante alert send`), and every
# operator lists it in [operator] alert_authorities. It lives on the hospital's
# operator: a fourth operator would add six listeners for one mailbox.
AUTHORITY_MAILBOX = "alertes-sanitaires@ch-xyz.mssante.fr"


@dataclass(frozen=True)
class DemoPerson:
    login: str
    kind: PersonKind
    name: str
    rpps: str | None = None
    # outside the trust space: one-time codes and new-message notices go there (the
    # sink); a patient's one-time code is off in the demo (`operator user contact`)
    personal_address: str | None = None


@dataclass(frozen=True)
class DemoMailbox:
    address: str
    type: MailboxType
    description: str
    owner: str | None = None
    responsible: tuple[str, ...] = ()
    authorised: tuple[str, ...] = ()
    application: bool = False  # gets an organisation certificate
    # the certificate's CN, after which comes the organisation; each APP mailbox has
    # its own, since a certificate logs in to the APP mailbox bound to its DN
    program: str = "DPI"


@dataclass(frozen=True)
class DemoOperator:
    domain: str
    organisation: str
    finess: str  # goes in the OU of the MTA certificate, like the real whitelist DNs
                 # and, prefixed with "1", is the idNatSt of its ORG and APP mailboxes
    state: str
    people: tuple[DemoPerson, ...] = ()
    mailboxes: tuple[DemoMailbox, ...] = ()


DEMO: tuple[DemoOperator, ...] = (
    DemoOperator(
        domain="ch-xyz.mssante.fr", organisation="CENTRE HOSPITALIER XYZ", finess="750000001",
        state="Paris (75)",
        people=(
            DemoPerson("dupont@ch-xyz.mssante.fr", PersonKind.HEALTH, "Dr Paul Dupont, cardiologue",
                       rpps="10102727017"),
            DemoPerson("marie.bernard", PersonKind.STAFF, "Marie Bernard, secrétaire médicale"),
        ),
        mailboxes=(
            DemoMailbox("dupont@ch-xyz.mssante.fr", MailboxType.PER, "Dr Paul Dupont",
                        owner="dupont@ch-xyz.mssante.fr"),
            DemoMailbox("cardiologie@ch-xyz.mssante.fr", MailboxType.ORG,
                        "Service de cardiologie", responsible=("dupont@ch-xyz.mssante.fr",),
                        authorised=("marie.bernard",)),
            DemoMailbox("compte_rendu_patient_noreply@ch-xyz.mssante.fr", MailboxType.APP,
                        "Comptes rendus du DPI", responsible=("dupont@ch-xyz.mssante.fr",),
                        application=True),
            DemoMailbox(AUTHORITY_MAILBOX, MailboxType.APP,
                        "Alertes sanitaires (autorité de démonstration)",
                        responsible=("dupont@ch-xyz.mssante.fr",), application=True,
                        program="Alertes sanitaires"),
        ),
    ),
    DemoOperator(
        domain="medecin.mssante.fr", organisation="CABINET MEDICAL MARTIN", finess="690000002",
        state="Rhône (69)",
        people=(DemoPerson("jean.martin@medecin.mssante.fr", PersonKind.HEALTH,
                           "Dr Jean Martin, médecin généraliste", rpps="10003456789"),),
        mailboxes=(DemoMailbox("jean.martin@medecin.mssante.fr", MailboxType.PER,
                               "Dr Jean Martin", owner="jean.martin@medecin.mssante.fr"),),
    ),
    DemoOperator(
        domain="patient.mssante.fr", organisation="MON ESPACE SANTE", finess="130000003",
        state="Paris (75)",
        people=(DemoPerson("279035121518989@patient.mssante.fr", PersonKind.PATIENT,
                           "Patient 279035121518989",
                           personal_address="patient.demo@example.org"),),
        mailboxes=(DemoMailbox("279035121518989@patient.mssante.fr", MailboxType.PAT,
                               "Messagerie patient", owner="279035121518989@patient.mssante.fr"),),
    ),
)


# The national referential behind the demo accounts (RPPS and FINESS), seeded in the
# trust space's directory so that the operators' publications find their professional
# or organisation (MSSanté reference, "National directory").
DEMO_PRACTITIONERS: tuple[Practitioner, ...] = (
    Practitioner(id_nat_ps="810102727017", id_type="8", pp_id="10102727017", civility="DR",
                 family_name="DUPONT", given_name="Paul", profession_category="C",
                 profession_category_label="Civil", profession_code="10",
                 profession_label="Médecin", skill_code="SM04",
                 skill_label="Cardiologie et maladies vasculaires"),
    Practitioner(id_nat_ps="810003456789", id_type="8", pp_id="10003456789", civility="DR",
                 family_name="MARTIN", given_name="Jean", profession_category="C",
                 profession_category_label="Civil", profession_code="10",
                 profession_label="Médecin", skill_code="SM54",
                 skill_label="Médecine générale"),
)
DEMO_ORGANISATIONS: tuple[Organisation, ...] = (
    Organisation(id_nat_st="1750000001", id_type="1", legal_name="CENTRE HOSPITALIER XYZ",
                 street_number="1", street_type="R", street_name="DE LA SANTE",
                 routing_line="75013 PARIS", postal_code="75013", department="75",
                 country="FRANCE"),
    Organisation(id_nat_st="1690000002", id_type="1", legal_name="CABINET MEDICAL MARTIN",
                 street_number="12", street_type="AV", street_name="JEAN JAURES",
                 routing_line="69007 LYON", postal_code="69007", department="69",
                 country="FRANCE"),
)
DEMO_ROLES: tuple[tuple[str, str], ...] = (("810102727017", "1750000001"),
                                           ("810003456789", "1690000002"))


async def seed_directory(url: str) -> None:
    """Put the demo referential in the directory at ``url`` (idempotent)."""
    directory = await open_directory(url)
    try:
        for practitioner in DEMO_PRACTITIONERS:
            await directory.add_practitioner(practitioner)
        for organisation in DEMO_ORGANISATIONS:
            await directory.add_organisation(organisation)
        for id_nat_ps, id_nat_st in DEMO_ROLES:
            await directory.add_role(id_nat_ps, id_nat_st)
    finally:
        await directory.close()


def _private_data_dir(data_dir: Path) -> None:
    """Create the data directory (0700), or take back what others could read in an
    existing one: earlier versions left databases 0644 in 0755 folders."""
    private_dir(data_dir)
    repaired = repair_permissions(data_dir)
    if repaired:
        shown = ", ".join(str(p.relative_to(data_dir)) for p in repaired[:5])
        more = f" and {len(repaired) - 5} more" if len(repaired) > 5 else ""
        log.warning("%s: %d files and folders were readable by other users, now by their "
                    "owner only: %s%s", data_dir, len(repaired), shown, more)


def _write_private(path: Path, text: str) -> None:
    write_atomic(path, text.encode("utf-8"), mode=0o600)  # it holds passwords


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


@dataclass
class LocalEnvironment:
    data_dir: Path
    base_port: int = DEFAULT_BASE_PORT
    retry_delays: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0)  # queue backoff of operators
    refresh_interval: float = 30.0  # trust client refresh of operators (seconds)
    database_urls: dict[str, str] = field(default_factory=dict)  # domain -> URL; else SQLite
    psc_token_lifetime: float = 300.0  # seconds an access token of the PSC provider lives
    notice_delay: float = 2.0  # [notifications] of the operators: a burst's notice waits
    notice_interval: float = 60.0  # and the next one to the same address waits
    trust_space: TrustSpace | None = None
    operators: list[OperatorService] = field(default_factory=list)
    description: dict[str, Any] = field(default_factory=dict)
    sink: NotificationSink | None = None
    _trust_task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.data_dir = self.data_dir.resolve()

    @property
    def trust_url(self) -> str:
        return f"https://{HOST}:{self.base_port}"

    @property
    def sink_port(self) -> int:
        return self.base_port + 9

    @property
    def notifications_dir(self) -> Path:
        return self.data_dir / "notifications"

    def ports(self, index: int) -> dict[str, int]:
        base = self.base_port + 10 * (index + 1)
        return {"smtp": base, "submission": base + 1, "submissions": base + 2,
                "imap": base + 3, "imaps": base + 4, "web": base + 5}

    # -- first start and later starts ---------------------------------------------------

    async def prepare(self) -> None:
        """Create what is missing (PKI, certificates, whitelist, configs, accounts)."""
        _private_data_dir(self.data_dir)
        (self.data_dir / "trust.toml").write_text(
            f"[trust_space]\ndata_dir = \"trust\"\nhost = \"{HOST}\"\nport = {self.base_port}\n"
            f"public_url = \"{self.trust_url}\"\n\n"
            "[psc]\nsimulator = true  # the e-CPS approval page of the local environment\n",
            encoding="utf-8")
        ts = await asyncio.to_thread(TrustSpace.create_or_load, self.data_dir / "trust")
        ts.extract_interval = DEMO_EXTRACT_INTERVAL
        ts.public_url = self.trust_url  # FHIR links name it, whatever Host a client sends
        ts.psc = PSCSettings(simulator=True, access_token_lifetime=self.psc_token_lifetime)
        self.trust_space = ts
        await seed_directory(ts.directory_database)
        outside = await asyncio.to_thread(self._outside_operators, ts)
        passwords = self._load_passwords()
        accounts: list[dict[str, Any]] = []
        applications: list[dict[str, str]] = []
        operators: list[dict[str, Any]] = []
        for index, demo in enumerate(DEMO):
            op_dir = self.data_dir / "operators" / demo.domain
            mta = await asyncio.to_thread(self._mta_certificate, ts, demo, op_dir)
            entry_now = dt.datetime.now(dt.UTC).replace(microsecond=0)
            if not ts.publisher.current().allows(demo.domain, mta.subject_dn):
                ts.publisher.add(WhitelistEntry(
                    name=demo.domain, description=demo.organisation, operator_dn=mta.subject_dn,
                    responsible_contact=f"responsable@{demo.domain}",
                    support_contact=f"support@{demo.domain}", updated_at=entry_now))
            client = await asyncio.to_thread(self._psc_client, ts, demo,
                                             self.ports(index)["web"])
            config_path = self._write_operator_config(index, demo, op_dir, mta, outside,
                                                      client)
            config = load_operator_config(config_path)
            store = await open_store(config.database_url)
            try:
                for person in demo.people:
                    secret = passwords.setdefault(person.login, generate_password())
                    await self._ensure_person(store, person, secret)
                    boxes = [m.address for m in demo.mailboxes
                             if m.owner == person.login or person.login in m.authorised
                             or (person.login in m.responsible and not m.application)]
                    account: dict[str, Any] = {"login": person.login, "password": secret,
                                               "kind": _account_kind(person.kind),
                                               "mailboxes": boxes}
                    if person.personal_address:
                        account["personal_address"] = person.personal_address
                    if person.rpps:
                        account["id_nat_ps"] = "8" + person.rpps
                    accounts.append(account)
                for mailbox in demo.mailboxes:
                    cert = None
                    if mailbox.application:
                        cert = await asyncio.to_thread(self._app_certificate, ts, demo, mailbox,
                                                       op_dir)
                        applications.append({"mailbox": mailbox.address,
                                             "cert_file": str(cert.cert_file),
                                             "key_file": str(cert.key_file)})
                    await self._ensure_mailbox(store, mailbox, demo, cert, config)
            finally:
                await store.close()
            ports = self.ports(index)
            operators.append({
                "domain": demo.domain, "config": str(config_path),
                "smtp": {"host": HOST, "port": ports["smtp"], "tls": "starttls"},
                "submission": {"host": HOST, "port": ports["submission"], "tls": "starttls"},
                "submissions": {"host": HOST, "port": ports["submissions"], "tls": "implicit"},
                "imap": {"host": HOST, "port": ports["imap"], "tls": "starttls"},
                "imaps": {"host": HOST, "port": ports["imaps"], "tls": "implicit"},
                "web": {"url": f"https://{HOST}:{ports['web']}", "host": HOST,
                        "port": ports["web"], "tls": "implicit"},
                "psc_client": {"client_id": client.client_id, "client_secret": client.secret,
                               "redirect_uri": PSC_REDIRECT_URI},
            })
        _write_private(self.data_dir / "accounts.json", json.dumps(passwords, indent=2))
        authority_domain = AUTHORITY_MAILBOX.rpartition("@")[2]
        authority_config = next(o["config"] for o in operators
                                if o["domain"] == authority_domain)
        self.description = {
            "ca_file": str(ts.pki.root_cert_file),
            "trust_space": {"url": self.trust_url},
            "directory": {"fhir": f"{self.trust_url}/fhir",
                          "autocomplete": f"{self.trust_url}/directory/autocomplete",
                          "extract": f"{self.trust_url}/extractions/"
                                     "Extraction_Correspondance_MSSante.txt"},
            "psc": {"issuer": ts.psc_issuer(self.trust_url)},
            "operators": operators,
            "outside_operators": [{"domain": o.domain, "mta": o.mta, "dn": o.dn}
                                  for o in outside],
            "accounts": accounts,
            "applications": applications,
            "authority": {"mailbox": AUTHORITY_MAILBOX, "config": authority_config},
            "notifications": {"folder": str(self.notifications_dir),
                              "relay": {"host": HOST, "port": self.sink_port}},
        }

    def _outside_operators(self, ts: TrustSpace) -> list[OutsideOperator]:
        """The operators of ``outside-operators.toml``, their DNs whitelisted."""
        outside = load_outside_operators(self.data_dir, {d.domain for d in DEMO})
        for operator in outside:
            if operator.dn is None or ts.publisher.current().allows(operator.domain,
                                                                    operator.dn):
                continue
            ts.publisher.add(WhitelistEntry(
                name=operator.domain, description=operator.description,
                operator_dn=operator.dn, responsible_contact=f"responsable@{operator.domain}",
                support_contact=f"support@{operator.domain}"))
            if not any(same_dn(r.subject_dn, operator.dn) for r in ts.pki.issued()):
                log.warning("outside operator %s: no certificate issued by this trust space "
                            "has the DN %s", operator.domain, operator.dn)
        return outside

    @staticmethod
    def _psc_client(ts: TrustSpace, demo: DemoOperator, web_port: int) -> Client:
        """The operator's client at the PSC provider (its secret kept across starts),
        told of the sessions that end at the operator's web listener."""
        web = f"https://{HOST}:{web_port}"
        return Clients(ts.psc_dir).register(
            demo.domain, (PSC_REDIRECT_URI, web + PSC_RETURN_PATH), name=demo.organisation,
            post_logout_redirect_uris=(web + LOGIN_PATH,),
            backchannel_logout_uri=web + PSC_BACKCHANNEL_PATH)

    def _load_passwords(self) -> dict[str, str]:
        path = self.data_dir / "accounts.json"
        if not path.exists():
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(k): str(v) for k, v in data.items()}

    @staticmethod
    def _mta_certificate(ts: TrustSpace, demo: DemoOperator, op_dir: Path) -> IssuedCertificate:
        certs = op_dir / "certs"
        existing = _load_issued(certs / "mta.pem", certs / "mta.key")
        if existing is not None:
            return existing
        certs.mkdir(parents=True, exist_ok=True)
        return ts.pki.issue_server(f"mta.{demo.domain}", organisation=demo.organisation,
                                   organisation_unit=demo.finess, state=demo.state,
                                   dns_names=["localhost"], ip_addresses=[HOST],
                                   out_dir=certs, name="mta")

    @staticmethod
    def _app_certificate(ts: TrustSpace, demo: DemoOperator, mailbox: DemoMailbox,
                         op_dir: Path) -> IssuedCertificate:
        certs = op_dir / "certs"
        name = "app-" + mailbox.address.split("@")[0]
        existing = _load_issued(certs / f"{name}.pem", certs / f"{name}.key")
        if existing is not None:
            return existing
        return ts.pki.issue_organisation(f"{mailbox.program} {demo.organisation}",
                                         organisation=demo.organisation,
                                         organisation_unit=demo.finess, out_dir=certs, name=name)

    def _write_operator_config(self, index: int, demo: DemoOperator, op_dir: Path,
                               mta: IssuedCertificate,
                               outside: list[OutsideOperator], client: Client) -> Path:
        ports = self.ports(index)
        routes = "\n".join(
            [f"{_toml_str(other.domain)} = \"{HOST}:{self.ports(i)['smtp']}\""
             for i, other in enumerate(DEMO) if other.domain != demo.domain]
            + [f"{_toml_str(o.domain)} = {_toml_str(o.mta)}  # {OUTSIDE_FILE}"
               for o in outside])
        assert self.trust_space is not None
        text = f"""# Operator {demo.domain}, written by `mssante up`.
[operator]
domains = [{_toml_str(demo.domain)}]
hostname = {_toml_str("mta." + demo.domain)}
data_dir = "."
database_url = {_toml_str(self.database_urls.get(demo.domain, ""))}
alert_authorities = [{_toml_str(AUTHORITY_MAILBOX)}]  # domain/alerts.py

[tls]
cert_file = {_toml_str(str(mta.cert_file))}
key_file = {_toml_str(str(mta.key_file))}
ca_file = {_toml_str(str(self.trust_space.pki.root_cert_file))}

[trust]
url = {_toml_str(self.trust_url)}
refresh_interval = {self.refresh_interval}

[smtp]
host = "{HOST}"
port = {ports['smtp']}

[submission]
host = "{HOST}"
port = {ports['submission']}

[submissions]
host = "{HOST}"
port = {ports['submissions']}

[imap]
host = "{HOST}"
port = {ports['imap']}

[imaps]
host = "{HOST}"
port = {ports['imaps']}

[web]
host = "{HOST}"
port = {ports['web']}

[autoconfig]
host = "{HOST}"  # what mail clients are told to connect to

[psc]
issuer = {_toml_str(self.trust_space.psc_issuer(self.trust_url))}
client_id = {_toml_str(client.client_id)}
client_secret = {_toml_str(client.secret)}

[notifications]  # one-time codes and notices to personal addresses: the local sink
enabled = true
relay = "{HOST}:{self.sink_port}"
starttls = false
from_address = {_toml_str("ne-pas-repondre@" + demo.domain.split(".")[0] + ".example")}
web_url = "https://{HOST}:{ports['web']}"
notice_delay = {self.notice_delay}
notice_interval = {self.notice_interval}

[queue]
retry_delays = [{", ".join(str(d) for d in self.retry_delays)}]
poll_interval = 0.5

[routes]
{routes}
"""
        op_dir.mkdir(parents=True, exist_ok=True)
        path = op_dir / "operator.toml"
        _write_private(path, text)  # it holds the PSC client's secret
        return path

    @staticmethod
    async def _ensure_person(store: Store, person: DemoPerson, secret: str) -> None:
        existing = await store.get_person(person.login)
        if existing is None:
            await store.create_person(person.login, person.kind, person.name,
                                      password_hash=hash_password(secret), rpps=person.rpps)
        contact = await store.logins.contact(person.login)
        if person.personal_address and contact is not None \
                and contact.personal_address is None:  # first start (or older data)
            await store.logins.set_contact(person.login,
                                           personal_address=person.personal_address,
                                           login_code=False)

    @staticmethod
    async def _ensure_mailbox(store: Store, mailbox: DemoMailbox, demo: DemoOperator,
                              cert: IssuedCertificate | None, config: OperatorConfig) -> None:
        if await store.get_mailbox(mailbox.address) is not None:
            return
        rules = Rules(social_may_hold_per=config.operator.social_may_hold_per)
        await store.create_mailbox(
            mailbox.address, mailbox.type, rules=rules, owner=mailbox.owner,
            responsible=mailbox.responsible, description=mailbox.description,
            organisation=demo.organisation, cert_dn=cert.subject_dn if cert else None,
            structure=("1" + demo.finess
                       if mailbox.type in (MailboxType.ORG, MailboxType.APP) else None))
        for login in mailbox.authorised:
            await store.grant(mailbox.address, login, Role.AUTHORISED, rules=rules)

    # -- running ------------------------------------------------------------------------

    async def start(self) -> None:
        if self.trust_space is None:
            await self.prepare()
        assert self.trust_space is not None
        ready = asyncio.Event()
        self._trust_task = asyncio.get_running_loop().create_task(
            serve_trust_space(self.trust_space, HOST, self.base_port, ready=ready))
        try:
            started = await wait_started(self._trust_task, ready)
        except OSError as exc:
            raise ConfigError(f"--base-port: the trust space cannot listen on "
                              f"{HOST}:{self.base_port}: {exc.strerror or exc}") from None
        if not started:
            raise TrustSpaceUnavailable("the trust space's HTTPS server stopped while starting")
        try:
            self.sink = NotificationSink(self.notifications_dir, HOST, self.sink_port)
            try:
                await self.sink.start()
            except OSError as exc:
                raise ConfigError(f"--base-port: the notification sink cannot listen on "
                                  f"{HOST}:{self.sink_port}: {exc.strerror or exc}") from None
            for operator in self.description["operators"]:
                service = OperatorService(load_operator_config(Path(operator["config"])))
                await service.start()
                self.operators.append(service)
            await self._published()
        except BaseException:
            await self.stop()
            raise
        _write_private(self.data_dir / "environment.json",
                       json.dumps(self.description, indent=2, ensure_ascii=False))

    async def _published(self, timeout: float = 10.0) -> None:
        """Wait (at most ``timeout`` seconds) until the trust space accepted the
        operators' publications of their mailboxes: once started, the directory and its
        extract list the demo mailboxes (`mssante alert send` selects from it)."""
        deadline = asyncio.get_running_loop().time() + timeout
        for service in self.operators:
            if service.store is None:
                continue
            while await service.store.directory_entries(state=PENDING):
                if asyncio.get_running_loop().time() > deadline:
                    log.warning("%s: mailboxes not yet published to the directory after "
                                "%.0f s", service.config.operator.domains[0], timeout)
                    return
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        for service in reversed(self.operators):
            await service.stop()
        self.operators.clear()
        if self.sink is not None:
            await self.sink.close()
            self.sink = None
        if self._trust_task is not None:
            self._trust_task.cancel()
            await asyncio.gather(self._trust_task, return_exceptions=True)
            self._trust_task = None


def _account_kind(kind: PersonKind) -> str:
    if kind is PersonKind.PATIENT:
        return "patient"
    if kind is PersonKind.HEALTH:
        return "professional"
    return "staff"


def _load_issued(cert_file: Path, key_file: Path) -> IssuedCertificate | None:
    """An already issued certificate, described as the PKI describes new ones."""
    if not cert_file.exists() or not key_file.exists():
        return None
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    return IssuedCertificate(cert_file=cert_file, key_file=key_file, serial=cert.serial_number,
                             subject_dn=dn_string(cert.subject),
                             not_after=cert.not_valid_after_utc, kind="existing")
