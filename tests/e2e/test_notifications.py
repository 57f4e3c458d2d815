"""New-message notices and one-time codes in the running environment: a professional's
message submitted over real SMTP to a patient's mailbox is announced at the patient's
personal address through the local sink, with nothing of the message in it."""

from __future__ import annotations

import email
import email.policy
import random
import uuid
from pathlib import Path

from mssante.auth.emailcode import CodeStart
from mssante.domain.ins import make_ins
from mssante.domain.mailboxes import MailboxType, PersonKind, Rules
from tests.conftest import RunningEnvironment
from tests.e2e.mail import message, send, unique

DUPONT = "dupont@ch-xyz.mssante.fr"
DEMO_PATIENT = "279035121518989@patient.mssante.fr"
PATIENTS = "patient.mssante.fr"


def new_patient(env: RunningEnvironment, name: str) -> tuple[str, str]:
    """A patient of its own (and a personal address no other test writes to)."""
    login = f"{make_ins('2' + ''.join(random.choices('0123456789', k=12)))}@{PATIENTS}"
    home = f"patient-{uuid.uuid4().hex[:12]}@example.org"
    store = env.service(PATIENTS).store

    async def create() -> None:
        await store.create_person(login, PersonKind.PATIENT, name)
        await store.create_mailbox(login, MailboxType.PAT, rules=Rules(), owner=login)
        await store.logins.set_contact(login, personal_address=home)

    env.runner.call(create())
    return login, home


def notices_to(env: RunningEnvironment, home: str) -> list[bytes]:
    folder = Path(env.description["notifications"]["folder"])
    return [raw for raw in (p.read_bytes() for p in sorted(folder.glob("*.eml")))
            if f"X-Sink-Rcpt: {home}\r\n".encode() in raw]


def test_a_message_to_a_patient_is_announced_without_its_content(
        environment: RunningEnvironment) -> None:
    patient, home = new_patient(environment, "Eve Confidentielle")
    ins = patient.partition("@")[0]
    subject = unique("Résultats de votre biopsie")
    text = "Votre compte rendu d'anatomopathologie est disponible. Marqueur ZQX-4417.\n"
    msg = message(DUPONT, patient, subject, text)
    msg.replace_header("From", f"Dr Paul Dupont <{DUPONT}>")
    send(environment, DUPONT, msg)
    environment.wait_message(patient, subject)
    environment.wait_for(lambda: len(notices_to(environment, home)) == 1, 30,
                         f"a notice to {home}")
    [raw] = notices_to(environment, home)
    web_url = environment.operator(PATIENTS)["web"]["url"]
    notice = email.message_from_bytes(raw, policy=email.policy.default)
    assert notice["To"] == home and web_url in notice.get_content()
    # the bytes as sent, and the text once its transfer encoding is undone
    readable = [raw.lower(), notice.get_content().lower().encode(),
                "".join(f"{k}: {v}\n" for k, v in notice.items()).lower().encode()]
    for secret in (subject, "biopsie", "anatomopathologie", "ZQX-4417", "Dupont",
                   "ch-xyz", ins, "Confidentielle", msg["Message-ID"].strip("<>"),
                   "mssante.fr"):
        for form in readable:
            assert secret.lower().encode() not in form, secret


def test_a_burst_gets_one_notice(environment: RunningEnvironment) -> None:
    patient, home = new_patient(environment, "Eve Rafale")
    first = unique("premier")
    send(environment, DUPONT, message(DUPONT, patient, first))
    environment.wait_for(lambda: len(notices_to(environment, home)) == 1, 30, "the notice")
    notices = environment.service(PATIENTS).notices
    environment.wait_for(lambda: not notices.pending(patient), 10, "the notice done")
    for _ in range(3):  # more messages, within the interval (60 s in `mssante up`)
        subject = unique("suite")
        send(environment, DUPONT, message(DUPONT, patient, subject))
        environment.wait_message(patient, subject)  # relayed by ch-xyz, then delivered
        # taken note of at the commit: one notice to come, for all of them
        assert notices.pending(patient)
    assert len(notices_to(environment, home)) == 1
    assert len(environment.messages(patient)) == 4


def test_the_demo_patient_logs_in_without_a_code(environment: RunningEnvironment) -> None:
    account = environment.account(DEMO_PATIENT)
    assert account["personal_address"] == "patient.demo@example.org"
    runtime = environment.service(PATIENTS).runtime
    assert environment.runner.call(runtime.second_factor(DEMO_PATIENT)) is None
    assert environment.runner.call(runtime.login_codes.start(DEMO_PATIENT)) \
        is CodeStart.NOT_NEEDED
    relay = environment.description["notifications"]["relay"]
    assert runtime.notifications.relay == f"{relay['host']}:{relay['port']}"


def test_a_patient_whose_code_is_on_gets_one_at_their_address(
        environment: RunningEnvironment) -> None:
    patient, home = new_patient(environment, "Eve Code")
    runtime = environment.service(PATIENTS).runtime
    assert environment.runner.call(runtime.second_factor(patient)).value == "email_code"
    assert environment.runner.call(runtime.login_codes.start(patient)) is CodeStart.SENT
    [raw] = notices_to(environment, home)
    code = email.message_from_bytes(raw, policy=email.policy.default).get_content()
    digits = next(word for word in code.split() if word.isdigit())
    assert environment.runner.call(runtime.login_codes.verify(patient, digits))
    assert not environment.runner.call(runtime.login_codes.verify(patient, digits))
