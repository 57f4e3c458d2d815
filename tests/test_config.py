"""Typed settings: TOML, environment overrides, and errors that name the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mssante.config import load_operator_config, load_trust_space_config
from mssante.domain.logins import PasswordPolicy, SecondFactorPolicy
from mssante.domain.mailboxes import PersonKind
from mssante.errors import ConfigError

MINIMAL = """
[operator]
domains = ["ch-xyz.mssante.fr"]
hostname = "mta.ch-xyz.mssante.fr"
data_dir = "data"
[tls]
cert_file = "certs/mta.pem"
key_file = "certs/mta.key"
ca_file = "certs/root.pem"
[trust]
url = "https://trust.example:8443"
[routes]
"medecin.mssante.fr" = "127.0.0.1:2525"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "operator.toml"
    path.write_text(text)
    return path


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    config = load_operator_config(write(tmp_path, MINIMAL), environ={})
    assert config.operator.data_dir == tmp_path / "data"
    assert config.operator.data_dir.is_dir()
    assert config.tls.cert_file == tmp_path / "certs/mta.pem"
    assert config.operator.max_message_size == 25 * 1024 * 1024
    assert config.smtp.port == 0  # disabled unless set
    assert config.queue.retry_delays[0] == 60.0
    assert config.routes == {"medecin.mssante.fr": "127.0.0.1:2525"}
    assert config.database_url.startswith("sqlite+aiosqlite:///")


def test_environment_overrides(tmp_path: Path) -> None:
    env = {"MSSANTE_SMTP__PORT": "2525", "MSSANTE_QUEUE__RETRY_DELAYS": "[1, 2.5]",
           "MSSANTE_OPERATOR__DATABASE_URL": "postgresql+asyncpg://db/x",
           "MSSANTE_TRUST_SPACE__PORT": "9",  # another component's: ignored here
           "UNRELATED": "x"}
    config = load_operator_config(write(tmp_path, MINIMAL), environ=env)
    assert config.smtp.port == 2525
    assert config.queue.retry_delays == [1.0, 2.5]
    assert config.database_url == "postgresql+asyncpg://db/x"


@pytest.mark.parametrize("text,env,key", [
    (MINIMAL.replace('hostname = "mta.ch-xyz.mssante.fr"\n', ""), {}, "operator.hostname"),
    (MINIMAL, {"MSSANTE_SMTP__PORT": "twenty-five"}, "smtp.port"),
    (MINIMAL, {"MSSANTE_QUEUE__WORKERS": "true"}, "queue.workers"),
    (MINIMAL + "[smtp]\nprot = 25\n", {}, "smtp.prot"),
    (MINIMAL + "[pop3]\nport = 110\n", {}, "pop3"),
    (MINIMAL.replace('domains = ["ch-xyz.mssante.fr"]', "domains = []"), {}, "operator.domains"),
    (MINIMAL.replace("[tls]", "[tlss]"), {}, "tlss"),
    ("not = [valid", {}, "not valid TOML"),
    (MINIMAL, {"MSSANTE_QUEUE__WORKERS": "0"}, "queue.workers"),
    (MINIMAL, {"MSSANTE_QUEUE__RETRY_DELAYS": "[]"}, "queue.retry_delays"),
    (MINIMAL, {"MSSANTE_SMTP__PORT": "70000"}, "smtp.port"),
    (MINIMAL, {"MSSANTE_OPERATOR__MAX_MESSAGE_SIZE": "-1"}, "operator.max_message_size"),
    (MINIMAL, {"MSSANTE_OPERATOR__MAX_LOGIN_FAILURES": "-1"}, "operator.max_login_failures"),
    (MINIMAL, {"MSSANTE_OPERATOR__MAX_LOGIN_FAILURES_PER_ADDRESS": "-1"},
     "operator.max_login_failures_per_address"),
    (MINIMAL, {"MSSANTE_OPERATOR__LOGIN_FAILURE_WINDOW": "0"}, "operator.login_failure_window"),
    (MINIMAL, {"MSSANTE_OPERATOR__PROCESSES": "-1"}, "operator.processes"),
    (MINIMAL, {"MSSANTE_OPERATOR__PROCESSES": "257"}, "operator.processes"),
    (MINIMAL, {"MSSANTE_TRUST__URL": "http://trust"}, "trust.url"),
])
def test_errors_name_the_key(tmp_path: Path, text: str, env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.").replace("[", r"\[")):
        load_operator_config(write(tmp_path, text), environ=env)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_operator_config(tmp_path / "nope.toml", environ={})


def test_trust_space_config(tmp_path: Path) -> None:
    path = tmp_path / "trust.toml"
    path.write_text('[trust_space]\ndata_dir = "ts"\nport = 8443\n')
    config = load_trust_space_config(path, environ={"MSSANTE_QUEUE__WORKERS": "32"})
    assert config.trust_space.data_dir == tmp_path / "ts"
    assert config.trust_space.port == 8443
    assert config.trust_space.public_url == ""  # the HTTPS address it serves


@pytest.mark.parametrize("url", ["http://trust.example", "https://trust.example/?a=1",
                                 "trust.example", "https://user:pw@trust.example"])
def test_trust_space_public_url_must_be_https(tmp_path: Path, url: str) -> None:
    path = tmp_path / "trust.toml"
    path.write_text(f'[trust_space]\npublic_url = "{url}"\n')
    with pytest.raises(ConfigError, match=r"trust_space\.public_url"):
        load_trust_space_config(path, environ={})


def test_the_example_configurations_load(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parent.parent / "examples"
    # data_dir points under /var/lib: redirect it, the rest is checked as written
    env = {"MSSANTE_OPERATOR__DATA_DIR": str(tmp_path / "op")}
    operator = load_operator_config(examples / "operator.toml", environ=env)
    assert operator.smtp.port == 25 and operator.submissions.port == 465
    assert operator.queue.workers == 32
    assert not operator.psc.enabled  # XOAUTH2 and OAUTHBEARER off
    assert operator.web.port == 443 and operator.autoconfig.host == ""
    trust = load_trust_space_config(examples / "trust.toml", environ={})
    assert trust.trust_space.port == 8443
    assert trust.psc.simulator is False and trust.psc.access_token_lifetime == 300.0


def test_imap_listeners_are_read(tmp_path: Path) -> None:
    text = MINIMAL + "[imap]\nport = 143\n[imaps]\nhost = \"0.0.0.0\"\nport = 993\n"
    config = load_operator_config(write(tmp_path, text), environ={"MSSANTE_IMAP__PORT": "1143"})
    assert (config.imap.host, config.imap.port) == ("127.0.0.1", 1143)
    assert (config.imaps.host, config.imaps.port) == ("0.0.0.0", 993)


def test_operator_psc_settings(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '[psc]\nissuer = "https://psc.example/x"\n'
                 'client_id = "ch-xyz.mssante.fr"\n')
    psc = load_operator_config(path, environ={}).psc
    assert psc.enabled and psc.expected_audience == "ch-xyz.mssante.fr" and psc.leeway == 30.0
    assert psc.password_policy == PasswordPolicy()  # every kind may use a password
    for text, key in [('issuer = "http://psc.example"\nclient_id = "c"', "issuer"),
                      ('issuer = "https://psc.example"', "client_id"),
                      ('leeway = -1', "leeway"),
                      ('passwords = {doctor = "disabled"}', "passwords"),
                      ('passwords = {professional = "off"}', "passwords"),
                      ('passwords = "disabled"', "passwords")]:
        path = write(tmp_path, MINIMAL + f"[psc]\n{text}\n")
        with pytest.raises(ConfigError, match=rf"psc\.{key}"):
            load_operator_config(path, environ={})


def test_the_password_policy_per_kind_of_person(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '[psc.passwords]\nprofessional = "disabled"\n'
                 'social = "disabled"\nstaff = "allowed"\n')
    policy = load_operator_config(path, environ={}).psc.password_policy
    assert policy.disabled == {PersonKind.HEALTH, PersonKind.SOCIAL}
    assert policy.allows(PersonKind.STAFF) and policy.allows(PersonKind.PATIENT)


def test_psc_variables_go_to_the_component_that_knows_the_key(tmp_path: Path) -> None:
    """One environment for the trust space and the operators: MSSANTE_PSC__SIMULATOR is
    the provider's, MSSANTE_PSC__AUDIENCE the operator's; neither refuses the other's,
    and a key neither knows is still an error."""
    operator_file = write(tmp_path, MINIMAL + '[psc]\nissuer = "https://psc.example/x"\n'
                          'client_id = "ch-xyz.mssante.fr"\n')
    trust_file = tmp_path / "trust.toml"
    trust_file.write_text("[trust_space]\n", encoding="utf-8")
    env = {"MSSANTE_PSC__AUDIENCE": "mss", "MSSANTE_PSC__SIMULATOR": "true",
           "MSSANTE_PSC__PASSWORDS": '{professional = "disabled"}'}
    psc = load_operator_config(operator_file, environ=env).psc
    assert psc.expected_audience == "mss"
    assert psc.password_policy.disabled == {PersonKind.HEALTH}
    assert load_trust_space_config(trust_file, environ=env).psc.simulator is True
    for config, load in [(operator_file, load_operator_config),
                         (trust_file, load_trust_space_config)]:
        with pytest.raises(ConfigError, match=r"psc\.audiance: unknown setting"):
            load(config, environ={"MSSANTE_PSC__AUDIANCE": "mss"})  # type: ignore[operator]


def test_https_and_autoconfig_settings(tmp_path: Path) -> None:
    config = load_operator_config(write(tmp_path, MINIMAL), environ={})
    assert config.web.port == 0  # no HTTPS listener unless set
    assert config.autoconfig.host == "" and config.autoconfig.imaps_port == 0
    text = MINIMAL + ('[web]\nhost = "0.0.0.0"\nport = 443\n[imaps]\nport = 993\n'
                      '[autoconfig]\nhost = "imap.ch-xyz.mssante.fr"\nimaps_port = 10993\n'
                      'display_name = "Centre Hospitalier XYZ"\n')
    config = load_operator_config(write(tmp_path, text), environ={})
    assert (config.web.host, config.web.port) == ("0.0.0.0", 443)
    assert config.autoconfig.host == "imap.ch-xyz.mssante.fr"
    assert config.autoconfig.imaps_port == 10993
    for host in ("192.0.2.7", "2001:db8::7", "localhost", "mail.example."):
        config = load_operator_config(write(tmp_path, MINIMAL), environ={
            "MSSANTE_AUTOCONFIG__HOST": host})
        assert config.autoconfig.host == host


@pytest.mark.parametrize("env,key", [
    ({"MSSANTE_WEB__PORT": "65536"}, "web.port"),
    ({"MSSANTE_WEB__PORT": "https"}, "web.port"),
    ({"MSSANTE_AUTOCONFIG__HOST": "https://mail.example"}, "autoconfig.host"),
    ({"MSSANTE_AUTOCONFIG__HOST": "mail.example:993"}, "autoconfig.host"),
    ({"MSSANTE_AUTOCONFIG__HOST": "mail example"}, "autoconfig.host"),
    ({"MSSANTE_AUTOCONFIG__HOST": "-mail.example"}, "autoconfig.host"),
    # a newline would be copied into the autoconfig XML and the profiles clients read
    ({"MSSANTE_AUTOCONFIG__HOST": "mail.example\n"}, "autoconfig.host"),
    ({"MSSANTE_AUTOCONFIG__HOST": "mail\n.example"}, "autoconfig.host"),
    ({"MSSANTE_AUTOCONFIG__HOST": "a" * 64 + ".example"}, "autoconfig.host"),
    ({"MSSANTE_AUTOCONFIG__IMAPS_PORT": "-1"}, "autoconfig.imaps_port"),
    ({"MSSANTE_AUTOCONFIG__SUBMISSION_PORT": "70000"}, "autoconfig.submission_port"),
    ({"MSSANTE_AUTOCONFIG__DISPLAY_NAME": '"a\\u0001b"'}, "autoconfig.display_name"),
    ({"MSSANTE_AUTOCONFIG__DISPLAY_NAME": "x" * 101}, "autoconfig.display_name"),
    ({"MSSANTE_AUTOCONFIG__PORT": "443"}, "autoconfig.port"),
    # a port told to clients for a listener that does not listen
    ({"MSSANTE_AUTOCONFIG__IMAP_PORT": "143"}, "autoconfig.imap_port"),
])
def test_https_and_autoconfig_errors_name_the_key(tmp_path: Path, env: dict[str, str],
                                                  key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_operator_config(write(tmp_path, MINIMAL), environ=env)


def test_second_factor_and_notification_settings(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '[psc.second_factor]\nstaff = "totp"\n'
                 'professional = "none"\n'
                 '[notifications]\nenabled = true\nrelay = "smtp.example.org:587"\n'
                 'from_address = "ne-pas-repondre@example.org"\n'
                 'web_url = "https://webmail.example.org/"\n')
    config = load_operator_config(path, environ={})
    assert config.psc.second_factor_policy == SecondFactorPolicy(frozenset({PersonKind.STAFF}))
    n = config.notifications
    assert n.enabled and (n.relay_host, n.relay_port) == ("smtp.example.org", 587)
    assert n.starttls and n.code_digits == 6 and n.code_lifetime == 600.0
    assert config.operator.totp_key_path == config.operator.data_dir / "totp.key"
    defaults = load_operator_config(write(tmp_path, MINIMAL), environ={})
    assert not defaults.notifications.enabled  # off unless configured
    assert defaults.psc.second_factor_policy == SecondFactorPolicy()


@pytest.mark.parametrize(("text", "key"), [
    ('[psc.second_factor]\nstaff = "sms"', r"psc\.second_factor"),
    ('[psc.second_factor]\nnurse = "totp"', r"psc\.second_factor"),
    ('[notifications]\nenabled = true\nrelay = "smtp.example.org"\n'
     'from_address = "a@example.org"\nweb_url = "https://w.example.org"', r"notifications\.relay"),
    ('[notifications]\nenabled = true\nrelay = "smtp.example.org:25"\n'
     'from_address = "noreply@ch-xyz.mssante.fr"\nweb_url = "https://w.example.org"',
     r"notifications\.from_address"),
    ('[notifications]\nenabled = true\nrelay = "smtp.example.org:25"\n'
     'from_address = "a@example.org"\nweb_url = "http://w.example.org"',
     r"notifications\.web_url"),
    ('[notifications]\ncode_digits = 4', r"notifications\.code_digits"),
    ('[notifications]\ncodes_per_hour = 0', r"notifications\.codes_per_hour"),
    ('[notifications]\npassword = "x"', r"notifications\.password"),
])
def test_second_factor_and_notification_errors_name_the_key(tmp_path: Path, text: str,
                                                            key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_operator_config(write(tmp_path, MINIMAL + text + "\n"), environ={})


def test_alert_authorities_are_addresses(tmp_path: Path) -> None:
    config = load_operator_config(write(tmp_path, MINIMAL), environ={
        "MSSANTE_OPERATOR__ALERT_AUTHORITIES": '["alertes@sante.mssante.fr"]'})
    assert config.operator.alert_authorities == ["alertes@sante.mssante.fr"]
    assert load_operator_config(write(tmp_path, MINIMAL), environ={}
                                ).operator.alert_authorities == []
    with pytest.raises(ConfigError, match=r"operator\.alert_authorities: 'pas une adresse'"):
        load_operator_config(write(tmp_path, MINIMAL), environ={
            "MSSANTE_OPERATOR__ALERT_AUTHORITIES": '["pas une adresse"]'})


def test_processes_one_per_core_by_default_bounded(tmp_path: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    config = load_operator_config(write(tmp_path, MINIMAL))
    assert config.operator.processes == 0
    assert config.operator.process_count == max(1, min(cores, 8))
    chosen = load_operator_config(write(tmp_path, MINIMAL),
                                  environ={"MSSANTE_OPERATOR__PROCESSES": "3"})
    assert chosen.operator.process_count == 3
