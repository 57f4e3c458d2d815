"""Typed settings, one object per component, read from a TOML file at start.

Every key can be overridden by an environment variable named
``MSSANTE_<SECTION>__<KEY>`` (upper case, double underscore between section and
key), e.g. ``MSSANTE_SMTP__PORT=2525`` or ``MSSANTE_OPERATOR__DATABASE_URL=...``.
Values from the environment are parsed as TOML values when they parse (numbers,
booleans, arrays), else taken as strings.

Relative paths are resolved against the directory of the configuration file.
A missing or wrong setting raises ConfigError naming ``section.key``.
Nothing here opens a socket or a database.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import types
import typing
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mssante.domain.addresses import parse_address
from mssante.domain.logins import PasswordPolicy, SecondFactorPolicy, parse_personal_address
from mssante.errors import ConfigError, InvalidAddress
from mssante.files import private_dir

ENV_PREFIX = "MSSANTE_"
DEFAULT_MAX_MESSAGE_SIZE = 25 * 1024 * 1024  # MSSanté: over 25 MB is refused
MAX_PROCESSES = 256  # operator.processes
DEFAULT_MAX_PROCESSES = 8  # operator.processes = 0 on a machine with more cores


@dataclass(frozen=True, slots=True)
class Listener:
    """A TCP endpoint; port 0 disables it."""

    host: str = "127.0.0.1"  # address to bind
    port: int = 0  # TCP port; 0 means "do not listen"

    def problems(self) -> list[tuple[str, str]]:
        return [("port", "must be between 0 and 65535")] if not 0 <= self.port <= 65535 else []


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    domains: list[str]  # mail domains this operator serves, e.g. ["ch-xyz.mssante.fr"]
    hostname: str  # the MTA's name, used in the greeting and Received headers
    data_dir: Path = Path(".")  # store, queue and trust cache live here
    database_url: str = ""  # SQLAlchemy URL; empty: SQLite file under data_dir
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE  # bytes; SIZE limit of SMTP
    social_may_hold_per: bool = False  # let social-sector professionals hold PER mailboxes
    # failed password logins (IMAP, submission) for one login, from anywhere, in
    # login_failure_window seconds before that login must wait (throttle.py)
    max_login_failures: int = 10
    # the same from one client IP address (an IPv6 /64), whatever the logins tried;
    # higher, so that one person's mistakes do not lock out everyone behind a NAT
    max_login_failures_per_address: int = 100
    login_failure_window: float = 900.0  # seconds; a bound of 0 means no limit
    # the key that seals people's TOTP secrets in the store (auth/totp.py): 32 random
    # bytes, created by the first `operator user totp enrol`; every process (and
    # machine) sharing the database needs the same file. Empty: <data_dir>/totp.key
    totp_key_file: str = ""
    # mailboxes of health authorities (domain/alerts.py): a message of theirs with the
    # X-MSS-ALERTE header is stored with the $Alerte keyword; from anyone else, not
    alert_authorities: list[str] = field(default_factory=list)
    # processes serving the operator (environment/workers.py): 0, one per core (at most
    # DEFAULT_MAX_PROCESSES: each holds its own database connections)
    processes: int = 0

    @property
    def process_count(self) -> int:
        """How many processes serve: ``processes``, or one per core this process may
        use, at most ``DEFAULT_MAX_PROCESSES``."""
        cores = len(os.sched_getaffinity(0))
        return self.processes or max(1, min(cores, DEFAULT_MAX_PROCESSES))

    @property
    def totp_key_path(self) -> Path:
        path = Path(self.totp_key_file).expanduser() if self.totp_key_file else Path("totp.key")
        return path if path.is_absolute() else self.data_dir / path

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if self.max_message_size <= 0:
            out.append(("max_message_size", "must be positive"))
        if self.max_login_failures < 0:
            out.append(("max_login_failures", "cannot be negative (0: no limit)"))
        if self.max_login_failures_per_address < 0:
            out.append(("max_login_failures_per_address", "cannot be negative (0: no limit)"))
        if self.login_failure_window <= 0:
            out.append(("login_failure_window", "must be positive"))
        if not 0 <= self.processes <= MAX_PROCESSES:
            out.append(("processes", f"must be between 0 (one per core) and {MAX_PROCESSES}"))
        for address in self.alert_authorities:
            try:
                parse_address(address)
            except InvalidAddress as exc:
                out.append(("alert_authorities", f"{address!r}: {exc}"))
        return out


@dataclass(frozen=True, slots=True)
class TLSSettings:
    cert_file: Path  # PEM chain: the MTA certificate then its issuing CA
    key_file: Path  # PEM private key of cert_file
    ca_file: Path  # the trust-space root CA (the only trusted CA)


@dataclass(frozen=True, slots=True)
class TrustSettings:
    url: str  # base URL of the trust space, e.g. https://127.0.0.1:8443
    refresh_interval: float = 300.0  # seconds between whitelist and CRL refreshes
    stale_after: float = 86400.0  # log loudly when the last good copy is older (seconds)
    timeout: float = 10.0  # HTTP timeout (seconds)

    def problems(self) -> list[tuple[str, str]]:
        out = [(name, "must be positive") for name in ("refresh_interval", "stale_after", "timeout")
               if getattr(self, name) <= 0]
        if not self.url.startswith("https://"):
            out.append(("url", "must be an https:// URL"))
        return out


@dataclass(frozen=True, slots=True)
class QueueSettings:
    retry_delays: list[float] = field(  # seconds before each retry; the last repeats
        default_factory=lambda: [60.0, 300.0, 900.0, 3600.0, 14400.0])
    max_lifetime: float = 5 * 86400.0  # give up and bounce after this many seconds
    delay_notice_after: float = 4 * 3600.0  # send a "delayed" DSN once, after this
    workers: int = 32  # concurrent deliveries (one SMTP connection each)
    poll_interval: float = 1.0  # seconds between scans when idle
    connect_timeout: float = 30.0  # seconds to connect to the next hop
    # seconds a delivered or failed entry (and its body, when no mailbox holds it) is
    # kept for `operator queue list` before it is purged; the queue holds health data
    retention: float = 7 * 86400.0
    purge_interval: float = 3600.0  # seconds between two purges
    # seconds the XMSS-DELIVERY identifiers other operators delivered with are kept: a
    # retry after that is stored again; longer than any operator retries (RFC 5321
    # §4.5.4.1 suggests giving up after 4-5 days; max_lifetime above is 5)
    delivery_ids_kept: float = 10 * 86400.0

    def problems(self) -> list[tuple[str, str]]:
        out = [(name, "must be positive") for name in
               ("max_lifetime", "delay_notice_after", "poll_interval", "connect_timeout",
                "retention", "purge_interval", "delivery_ids_kept")
               if getattr(self, name) <= 0]
        if self.workers < 1:
            out.append(("workers", "must be at least 1"))
        if not self.retry_delays or any(d <= 0 for d in self.retry_delays):
            out.append(("retry_delays", "must be a non-empty list of positive numbers"))
        return out


@dataclass(frozen=True, slots=True)
class OperatorPSCSettings:
    """``[psc]`` of operator.toml: Pro Santé Connect access tokens at IMAP and submission
    (SASL XOAUTH2 and OAUTHBEARER, auth/psctoken.py), and who may still log in with a
    password (domain/logins.py). The trust space's ``[psc]`` (PSCSettings) is its
    provider's; an environment variable ``MSSANTE_PSC__<KEY>`` goes to whichever of the
    two knows the key."""

    # the provider's issuer URL (https); its discovery document gives the keys.
    # Empty: XOAUTH2 and OAUTHBEARER are not offered.
    issuer: str = ""
    client_id: str = ""  # this operator's client at the provider
    client_secret: str = ""  # its secret (for the flows the operator runs itself)
    audience: str = ""  # the ``aud`` tokens must carry; empty: client_id
    leeway: float = 30.0  # seconds of clock skew allowed on a token's expiry
    # kind of person ("professional", "social", "staff", "patient") -> "allowed" or
    # "disabled": password logins (IMAP LOGIN/PLAIN, submission PLAIN/LOGIN, web);
    # a kind not named is allowed
    passwords: dict[str, str] = field(default_factory=dict)
    # kind of person -> "totp" or "none": whether a password login at the web must be
    # followed by a TOTP code (RFC 6238); a kind not named: "none" (a person enrolled
    # still gives one). Patients' one-time codes by mail are set per patient instead
    # (`operator user contact`).
    second_factor: dict[str, str] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.issuer)

    @property
    def expected_audience(self) -> str:
        return self.audience or self.client_id

    @property
    def password_policy(self) -> PasswordPolicy:
        return PasswordPolicy.from_settings(self.passwords)

    @property
    def second_factor_policy(self) -> SecondFactorPolicy:
        return SecondFactorPolicy.from_settings(self.second_factor)

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if self.issuer and not self.issuer.startswith("https://"):
            out.append(("issuer", "must be an https:// URL"))
        if self.issuer and not self.expected_audience:
            out.append(("client_id", "is needed (or audience) when issuer is set"))
        if self.leeway < 0:
            out.append(("leeway", "cannot be negative"))
        try:
            PasswordPolicy.from_settings(self.passwords)
        except ValueError as exc:
            out.append(("passwords", str(exc)))
        try:
            SecondFactorPolicy.from_settings(self.second_factor)
        except ValueError as exc:
            out.append(("second_factor", str(exc)))
        return out


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """``[audit]``: the audit trail (store/audit.py). On by default: every submission,
    reception, delivery, relay, read, login and administrative change leaves an entry."""

    enabled: bool = True
    retention_days: float = 183.0  # about 6 months, rolling; older entries are exported
    seal_interval: float = 1.0  # seconds between checkpoints while entries wait
    purge_interval: float = 3600.0  # seconds between two looks for entries to purge
    # the checkpoints' Ed25519 key (PKCS#8 PEM), made at first start; every process
    # sharing the database needs the same file. Empty: <data_dir>/audit/ed25519.pem
    key_file: str = ""
    export_dir: str = ""  # where purged entries are exported. Empty: <data_dir>/audit/exports
    origin: str = ""  # the checkpoints' origin line. Empty: "<first domain>/audit"

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if self.retention_days <= 0:
            out.append(("retention_days", "must be positive"))
        if self.seal_interval <= 0:
            out.append(("seal_interval", "must be positive"))
        if self.purge_interval <= 0:
            out.append(("purge_interval", "must be positive"))
        if self.origin and any(c.isspace() for c in self.origin):
            out.append(("origin", "cannot hold spaces"))
        return out


@dataclass(frozen=True, slots=True)
class NotificationSettings:
    """``[notifications]``: mail to people's personal addresses, outside the trust space
    (notify/): patients' one-time login codes and new-message notices. It leaves
    through an ordinary SMTP relay, never the MSSanté queue, and holds no health data:
    fixed texts, a code or the web application's address, nothing of any message."""

    enabled: bool = False  # off: no code can be sent (patients who need one cannot log in)
    relay: str = ""  # host:port of the SMTP relay (submission of the organisation's mail)
    starttls: bool = True  # STARTTLS at the relay (RFC 3207), its certificate checked
    username: str = ""  # SMTP AUTH at the relay (RFC 4954); empty: none
    password: str = ""
    from_address: str = ""  # the From of every notification (outside the trust space)
    web_url: str = ""  # the web application's address, put in notices (https://...)
    timeout: float = 30.0  # seconds for one exchange with the relay
    code_lifetime: float = 600.0  # a one-time code expires after this many seconds
    code_attempts: int = 5  # wrong codes before a code is used up
    code_digits: int = 6  # digits of a one-time code (6 to 8)
    codes_per_hour: int = 5  # codes sent to one address within an hour, at most
    notice_delay: float = 60.0  # seconds a notice waits for more messages of a burst
    notice_interval: float = 900.0  # seconds between two notices to one address, at least

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if self.enabled:
            host, sep, port = self.relay.rpartition(":")
            if not sep or not _is_host(host) or not port.isdigit() \
                    or not 0 < int(port) <= 65535:
                out.append(("relay", "must be host:port"))
            try:
                parse_personal_address(self.from_address)
            except InvalidAddress as exc:
                out.append(("from_address", f"must be an address outside the trust "
                                            f"space: {exc}"))
            if not _is_base_url(self.web_url):
                out.append(("web_url", "must be an https:// URL"))
        if self.password and not self.username:
            out.append(("password", "is given without a username"))
        out += [(name, "must be positive") for name in
                ("timeout", "code_lifetime", "codes_per_hour", "code_attempts")
                if getattr(self, name) <= 0]
        if not 6 <= self.code_digits <= 8:
            out.append(("code_digits", "must be 6, 7 or 8"))
        out += [(name, "cannot be negative") for name in ("notice_delay", "notice_interval")
                if getattr(self, name) < 0]
        return out

    @property
    def relay_host(self) -> str:
        return self.relay.rpartition(":")[0]

    @property
    def relay_port(self) -> int:
        return int(self.relay.rpartition(":")[2])


# RFC 1123 §2.1 host name: LDH labels of 1 to 63 characters, 253 in all
# (fullmatch: "$" would let a label end with a newline, copied into what clients read)
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _is_host(value: str) -> bool:
    """A DNS host name or an IP address (what a client connects to)."""
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        pass
    labels = value.removesuffix(".").split(".")
    return len(value) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)


@dataclass(frozen=True, slots=True)
class AutoconfigSettings:
    """What mail clients are told to connect to (web/autoconfig.py): by default the
    operator's ``hostname`` and each listener's own port. Behind a proxy or NAT, the
    name and ports the clients reach. A listener with port 0 is never advertised."""

    host: str = ""  # host name (or IP address) of IMAP and submission; empty: operator.hostname
    imap_port: int = 0  # the port clients reach [imap] at; 0: [imap].port
    imaps_port: int = 0  # the same for [imaps]
    submission_port: int = 0  # the same for [submission]
    submissions_port: int = 0  # the same for [submissions]
    display_name: str = ""  # the service's name clients show; empty: the first domain

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if self.host and not _is_host(self.host):
            out.append(("host", "must be a host name or an IP address (no scheme, no port)"))
        for name in ("imap_port", "imaps_port", "submission_port", "submissions_port"):
            if not 0 <= getattr(self, name) <= 65535:
                out.append((name, "must be between 0 and 65535 (0: the listener's port)"))
        if len(self.display_name) > 100 or not self.display_name.isprintable():
            out.append(("display_name", "must be printable, at most 100 characters"))
        return out


@dataclass(frozen=True, slots=True)
class OperatorConfig:
    """The whole configuration of one operator process."""

    path: Path
    operator: OperatorSettings
    tls: TLSSettings
    trust: TrustSettings
    smtp: Listener = Listener()  # MTA for other operators (:25), mutual TLS
    submission: Listener = Listener()  # submission with STARTTLS (:587)
    submissions: Listener = Listener()  # submission with implicit TLS (:465)
    imap: Listener = Listener()  # IMAP with STARTTLS (:143)
    imaps: Listener = Listener()  # IMAP with implicit TLS (:993)
    web: Listener = Listener()  # HTTPS: the web application, client autoconfiguration (:443)
    autoconfig: AutoconfigSettings = AutoconfigSettings()
    queue: QueueSettings = QueueSettings()
    routes: dict[str, str] = field(default_factory=dict)  # domain -> "host:port"
    psc: OperatorPSCSettings = field(default_factory=OperatorPSCSettings)
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)

    @property
    def database_url(self) -> str:
        if self.operator.database_url:
            return self.operator.database_url
        return f"sqlite+aiosqlite:///{self.operator.data_dir / 'operator.sqlite3'}"


@dataclass(frozen=True, slots=True)
class TrustSpaceSettings:
    data_dir: Path = Path(".")  # PKI, whitelist and directory live here
    host: str = "127.0.0.1"  # HTTPS listener
    port: int = 8443
    crl_validity: float = 7 * 86400.0  # nextUpdate of published CRLs (seconds)
    directory_url: str = ""  # SQLAlchemy URL of the directory; empty: SQLite in data_dir
    extract_interval: float = 60.0  # the published extract is at most this late (seconds)
    # The URL clients reach the trust space at (https://host[:port], behind a proxy the
    # proxy's): the start of every absolute URL it answers with, such as the FHIR
    # Bundle links; never taken from a request's Host header. Empty: the HTTPS
    # address it serves, https://<host>:<port>.
    public_url: str = ""

    def problems(self) -> list[tuple[str, str]]:
        out = [] if 0 < self.port <= 65535 else [("port", "must be between 1 and 65535")]
        if self.public_url and not _is_base_url(self.public_url):
            out.append(("public_url", "must be an https:// URL without query or fragment"))
        if self.crl_validity <= 0:
            out.append(("crl_validity", "must be positive"))
        if self.extract_interval < 0:
            out.append(("extract_interval", "must be zero or more"))
        return out


@dataclass(frozen=True, slots=True)
class PSCSettings:
    """The Pro Santé Connect-like OpenID provider the trust space serves under /psc."""

    # The simulated e-CPS approval: the authorize endpoint shows a page where a
    # professional gives their idNatPs and approves. Off, nobody can log in (the
    # endpoint says the simulator is disabled): a real trust space never turns it on.
    simulator: bool = False
    access_token_lifetime: float = 300.0  # access and ID tokens (seconds), as PSC's
    refresh_token_lifetime: float = 1800.0  # a refresh token unused this long expires
    code_lifetime: float = 60.0  # an authorization code not exchanged by then is refused

    def problems(self) -> list[tuple[str, str]]:
        return [(name, "must be positive") for name in
                ("access_token_lifetime", "refresh_token_lifetime", "code_lifetime")
                if getattr(self, name) <= 0]


@dataclass(frozen=True, slots=True)
class TrustSpaceConfig:
    path: Path
    trust_space: TrustSpaceSettings
    psc: PSCSettings = field(default_factory=PSCSettings)


T = TypeVar("T")


def _is_base_url(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return (parts.scheme == "https" and bool(parts.hostname) and not parts.query
            and not parts.fragment and not parts.username and not parts.password)


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].partition("__")
        try:
            value: Any = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        out.setdefault(section.lower(), {})[key.lower()] = value
    return out


def _convert(value: Any, hint: Any, where: str, base: Path) -> Any:
    origin = typing.get_origin(hint)
    if hint is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a path (string), got {value!r}")
        path = Path(value).expanduser()
        return path if path.is_absolute() else (base / path).resolve()
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_convert(v, item, f"{where}[{i}]", base) for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return {str(k): _convert(v, item, f"{where}.{k}", base) for k, v in value.items()}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return _build(hint, value, where, base)
    raise ConfigError(f"{where}: unsupported setting type {hint!r}")  # pragma: no cover


def _build(cls: type[T], table: Mapping[str, Any], section: str, base: Path) -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(table) - set(fields)
    if unknown:
        raise ConfigError(f"{section}.{sorted(unknown)[0]}: unknown setting "
                          f"(known: {', '.join(sorted(fields))})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        where = f"{section}.{name}" if section else name
        if name in table:
            kwargs[name] = _convert(table[name], hints[name], where, base)
        elif isinstance(f.default, Path):
            kwargs[name] = (base / f.default).resolve()
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required setting")
    obj = cls(**kwargs)
    check = getattr(obj, "problems", None)
    for name, problem in check() if check is not None else []:
        raise ConfigError(f"{section}.{name}: {problem}")
    return obj


def _read(path: Path, environ: Mapping[str, str] | None, own: type[Any],
          other: type[Any]) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    ours, theirs = _section_keys(own), _section_keys(other)
    for section, values in _env_overrides(os.environ if environ is None else environ).items():
        if section not in ours:  # another component's variable (one environment, many
            continue  # processes): not ours to judge
        keys = ours[section]
        if keys is not None:  # a section both have ([psc]): each takes the keys it knows;
            foreign = theirs.get(section) or set()  # a key neither knows is an error here
            values = {k: v for k, v in values.items() if k in keys or k not in foreign}
        if not values:
            continue
        target = data.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"{section}: expected a table")
        target.update(values)
    return data


def _section_keys(cls: type[Any]) -> dict[str, set[str] | None]:
    """Each section of a configuration and its keys (None: free keys, as [routes])."""
    hints = typing.get_type_hints(cls)
    out: dict[str, set[str] | None] = {}
    for f in dataclasses.fields(cls):
        if f.name == "path":
            continue
        hint = hints[f.name]
        out[f.name] = ({g.name for g in dataclasses.fields(hint)}
                       if dataclasses.is_dataclass(hint) else None)
    return out


def _top_level(cls: type[T], path: Path, data: dict[str, Any]) -> T:
    base = path.resolve().parent
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "path"}  # type: ignore[arg-type]
    unknown = set(data) - set(fields)
    if unknown:
        raise ConfigError(f"{sorted(unknown)[0]}: unknown section (known: "
                          f"{', '.join(sorted(fields))})")
    kwargs: dict[str, Any] = {"path": path.resolve()}
    for name, f in fields.items():
        hint = hints[name]
        if name in data:
            if isinstance(hint, types.GenericAlias):
                kwargs[name] = _convert(data[name], hint, name, base)
            else:
                kwargs[name] = _build(hint, data[name], name, base)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{name}: missing required section [{name}]")
    return cls(**kwargs)


def load_operator_config(path: Path, environ: Mapping[str, str] | None = None) -> OperatorConfig:
    """Read and validate an operator's configuration file."""
    data = _read(path, environ, OperatorConfig, TrustSpaceConfig)
    config = _top_level(OperatorConfig, path, data)
    if not config.operator.domains:
        raise ConfigError("operator.domains: at least one domain is needed")
    for name in ("imap", "imaps", "submission", "submissions"):
        listener: Listener = getattr(config, name)
        if getattr(config.autoconfig, f"{name}_port") and listener.port == 0:
            raise ConfigError(f"autoconfig.{name}_port: [{name}] does not listen (port 0), "
                              "so clients are not told of it")
    private_dir(config.operator.data_dir)
    return config


def load_trust_space_config(path: Path,
                            environ: Mapping[str, str] | None = None) -> TrustSpaceConfig:
    """Read and validate the trust space's configuration file."""
    return _top_level(TrustSpaceConfig, path,
                      _read(path, environ, TrustSpaceConfig, OperatorConfig))
