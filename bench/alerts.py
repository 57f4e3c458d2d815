"""Alert fan-out benchmark: one health alert to many mailboxes over three operators.

    python bench/alerts.py [--mailboxes 100000] [--peer postfix|none] [--timeout 3600]

mssante: a local environment whose three operators are the demo's hospital
``ch-xyz.mssante.fr`` (it hosts the authority's APP mailbox), ``medecin.mssante.fr``
and a third professional operator ``infirmier.mssante.fr`` (in place of the patients'
operator: alerts go to professionals), SQLite, each run as its own process
(``mssante trust serve``, ``mssante operator serve``). ``--mailboxes`` ORG mailboxes,
one third on each operator, are written straight into the operators' stores (a
mailbox row and its INBOX: what delivery needs). The alert is selected and sent as
``mssante alert send`` does (alerts/send.py): the selection over directory rows of the
same mailboxes (``--profession 10``), then submission at ch-xyz with the authority's
certificate, 1000 recipients per transaction; ch-xyz stores its own third and relays
the rest over mutual TLS. Measured: from the first byte submitted to the last copy
committed in a recipient's INBOX (its ``received_at``), and the check that every
mailbox got it exactly once, with the $Alerte keyword.

The peer, in the same run: three Postfix instances (Debian's package, the setup of
bench/peers/postfix.py): the sender stores ch-xyz's third itself (virtual(8), one
Maildir per mailbox) and relays the other two thirds with STARTTLS and a client
certificate to two receivers that store them the same way. The same message is handed
in with the same pipelined 1000-recipient transactions (plain SMTP, no AUTH); measured from the
first byte to the last Maildir file's rename into ``new/``.
"""

from __future__ import annotations

import argparse
import asyncio
import smtplib
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import case, func, insert, select

from bench.machine import machine
from bench.relay import Processes, free_port_base, wait_port
from mssante.alerts.send import (
    Submitted,
    authority_of,
    batches,
    compose,
    select_recipients,
    submit,
    transaction,
)
from mssante.config import load_operator_config
from mssante.directory.extract import ExtractRow
from mssante.domain.alerts import ALERT_KEYWORD, message_id, new_alert_id, target
from mssante.domain.mailboxes import MailboxType
from mssante.environment import local
from mssante.environment.local import DemoOperator, LocalEnvironment
from mssante.store import open_store
from mssante.store.schema import folders, mailboxes, messages

DOMAINS = ("ch-xyz.mssante.fr", "medecin.mssante.fr", "infirmier.mssante.fr")
TEXT = ("Alerte DGS-Urgent : rappel du lot 12345 d'un vaccin. Ne plus l'administrer, "
        "mettre les doses en quarantaine et signaler tout effet indésirable.\n") * 10


@dataclass
class Result:
    stack: str
    mailboxes: int
    stored: int
    duplicates: int
    marked: int | None  # copies with $Alerte (mssante)
    submit_s: float  # handing the alert in, all transactions
    total_s: float  # first byte submitted → last copy stored
    note: str

    @property
    def rate(self) -> float:
        return self.stored / self.total_s if self.total_s else 0.0


def addresses(count: int) -> list[str]:
    return [f"alerte-{i:06d}@{DOMAINS[i % 3]}" for i in range(count)]


def directory_rows(found: Sequence[str]) -> Iterator[ExtractRow]:
    """The directory rows of the bench's mailboxes: physicians' mailboxes (PER) in
    several departments, as the extract lists them."""
    for i, address in enumerate(found):
        rpps = f"1{i:010d}"
        yield ExtractRow(MailboxType.PER, address, "8", rpps, "8" + rpps, "1",
                         f"1{750000000 + i % 3:09d}", "", "DR", "MARTIN", "Jean", "C", "Civil",
                         "10", "Médecin", "SM26", "Qualifié en Médecine générale", False,
                         "CENTRE HOSPITALIER", "", "", "", "1", "", "R", "DE LA SANTE", "",
                         "75013 PARIS", "75013", ("75", "69", "33")[i % 3], "FRANCE")


# -- mssante --------------------------------------------------------------------------------

async def fill(config_path: str, wanted: Sequence[str]) -> None:
    """Mailboxes and their INBOX, written straight into an operator's store."""
    store = await open_store(load_operator_config(Path(config_path)).database_url)
    now = time.time()
    try:
        for chunk in batches(list(wanted), 5000):
            async with store.tx.write() as conn:
                await conn.execute(insert(mailboxes), [
                    {"address": a, "display_address": a, "domain": a.rpartition("@")[2],
                     "type": "PER", "description": "bench", "organisation": "bench",
                     "service": "", "cert_dn": None, "active": True, "uidvalidity": 1,
                     "created_at": now} for a in chunk])
                ids = (await conn.execute(select(mailboxes.c.id).where(
                    mailboxes.c.address.in_(list(chunk))))).scalars().all()
                await conn.execute(insert(folders), [
                    {"mailbox_id": i, "name": "INBOX", "special_use": None, "uidvalidity": 1,
                     "uidnext": 1, "highestmodseq": 1, "subscribed": True, "created_at": now}
                    for i in ids])
    finally:
        await store.close()


async def stored_copies(configs: Sequence[str], wanted: str) -> tuple[int, int, int, float]:
    """(copies, distinct mailboxes, copies with $Alerte, last received_at) in the
    INBOXes of the operators' stores."""
    copies = distinct = marked = 0
    last = 0.0
    marked_copy = case((messages.c.flags.contains(ALERT_KEYWORD, autoescape=True), 1), else_=0)
    for path in configs:
        store = await open_store(load_operator_config(Path(path)).database_url)
        try:
            async with store.tx.read() as conn:
                row = (await conn.execute(
                    select(func.count(), func.count(func.distinct(messages.c.mailbox_id)),
                           func.coalesce(func.sum(marked_copy), 0),
                           func.max(messages.c.received_at))
                    .select_from(messages.join(folders, folders.c.id == messages.c.folder_id))
                    .where(messages.c.message_id == wanted, folders.c.name == "INBOX"))).one()
        finally:
            await store.close()
        copies += int(row[0])
        distinct += int(row[1])
        marked += int(row[2])
        last = max(last, float(row[3] or 0.0))
    return copies, distinct, marked, last


def run_mssante(args: argparse.Namespace, workdir: Path) -> Result:
    hospital, doctors, _ = local.DEMO
    local.DEMO = (hospital, doctors, DemoOperator(
        domain=DOMAINS[2], organisation="INFIRMIERS LIBERAUX", finess="330000004",
        state="Gironde (33)"))
    data_dir = workdir / "mssante"
    env = LocalEnvironment(data_dir, free_port_base(), retry_delays=(1.0, 5.0))
    asyncio.run(env.prepare())
    d = env.description
    ops = {o["domain"]: o for o in d["operators"]}
    everyone = addresses(args.mailboxes)
    print(f"  writing {len(everyone)} mailboxes into the three stores…", file=sys.stderr)
    for domain in DOMAINS:
        asyncio.run(fill(ops[domain]["config"], [a for a in everyone if a.endswith(domain)]))
    authority = authority_of(d, data_dir / "environment.json")
    t = time.perf_counter()
    recipients = select_recipients(directory_rows(everyone), target(professions=["10"]))
    selection_s = time.perf_counter() - t
    alert_id = new_alert_id()
    body = compose(alert_id, authority.mailbox, "DGS-Urgent : rappel de lot", TEXT)
    wanted = message_id(alert_id, authority.mailbox.rpartition("@")[2])
    procs = Processes(None)
    try:
        procs.start("trust", ["trust", "serve", "--config", str(data_dir / "trust.toml")],
                    data_dir / "trust.log")
        wait_port(env.base_port)
        for domain in DOMAINS:
            procs.start(domain, ["operator", "serve", "--config", ops[domain]["config"]],
                        data_dir / f"{domain}.log")
        for domain in DOMAINS:
            wait_port(ops[domain]["smtp"]["port"])
            wait_port(ops[domain]["submission"]["port"])
        started = time.time()
        sent = submit(authority, recipients, body)
        submit_s = time.time() - started
        configs = [ops[domain]["config"] for domain in DOMAINS]
        deadline = time.monotonic() + args.timeout
        while True:
            copies, distinct, marked, last = asyncio.run(stored_copies(configs, wanted))
            if copies >= sent.recipients or time.monotonic() > deadline:
                break
            time.sleep(1.0)
    finally:
        procs.stop()
    return Result("mssante (SQLite)", len(recipients), distinct, copies - distinct, marked,
                  submit_s, last - started,
                  f"selection of {len(recipients)} rows: {selection_s:.2f} s; refused at "
                  f"submission: {len(sent.refused)}")


# -- postfix --------------------------------------------------------------------------------

def run_postfix(args: argparse.Namespace, workdir: Path) -> Result:
    import grp
    import pwd

    from bench.peers.postfix import (
        MAILBOX_GROUP,
        MAILBOX_USER,
        Maildir,
        PostfixInstance,
        ensure_postfix_installed,
    )
    from bench.peers.system import grant_search
    from mssante.pki.ca import PKI

    version = ensure_postfix_installed()
    pki = PKI.create_or_load(workdir / "postfix-pki")
    certs = workdir / "postfix-certs"
    certs.mkdir(exist_ok=True)
    base = free_port_base()
    everyone = addresses(args.mailboxes)
    root = (workdir / "postfix").absolute()
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    grant_search(root)
    uid = str(pwd.getpwnam(MAILBOX_USER).pw_uid)
    gid = str(grp.getgrnam(MAILBOX_GROUP).gr_gid)
    print(f"  creating {len(everyone)} Maildirs…", file=sys.stderr)
    maildirs: list[Path] = []
    instances: list[PostfixInstance] = []
    for index, domain in enumerate(DOMAINS):
        mine = [a for a in everyone if a.endswith(domain)]
        mail_base = root / "mail" / domain
        mail_base.parent.mkdir(exist_ok=True)
        for address in mine:
            Maildir(mail_base / address.partition("@")[0]).create()
            maildirs.append(mail_base / address.partition("@")[0])
        cert = pki.issue_server(f"mta.{domain}", organisation=domain,
                                ip_addresses=["127.0.0.1"], out_dir=certs, name=domain)
        storing = {
            "virtual_mailbox_domains": domain,
            "virtual_mailbox_base": str(mail_base),
            "virtual_mailbox_maps": "texthash:${config_directory}/vmailbox",
            "virtual_uid_maps": f"static:{uid}", "virtual_gid_maps": f"static:{gid}",
        }
        vmailbox = "".join(f"{a} {a.partition('@')[0]}/\n" for a in mine)
        if index == 0:  # the sender: ch-xyz's third stored here, the rest relayed
            transport = "".join(f"{other} smtp:[127.0.0.1]:{base + i}\n"
                                for i, other in enumerate(DOMAINS) if i)
            main_cf = {"myhostname": f"mta.{domain}", "mynetworks": "127.0.0.0/8",
                       "transport_maps": "texthash:${config_directory}/transport",
                       "smtp_tls_security_level": "encrypt",
                       "smtp_tls_cert_file": str(cert.cert_file),
                       "smtp_tls_key_file": str(cert.key_file),
                       "smtp_tls_CAfile": str(pki.root_cert_file),
                       "smtp_tls_protocols": ">=TLSv1.2",
                       "smtp_tls_mandatory_protocols": ">=TLSv1.2", **storing}
            files = {"vmailbox": vmailbox, "transport": transport}
        else:
            main_cf = {"myhostname": f"mta.{domain}", "smtpd_tls_security_level": "encrypt",
                       "smtpd_tls_cert_file": str(cert.cert_file),
                       "smtpd_tls_key_file": str(cert.key_file),
                       "smtpd_tls_CAfile": str(pki.root_cert_file),
                       "smtpd_tls_ask_ccert": "yes", "smtpd_tls_req_ccert": "yes",
                       "smtpd_tls_protocols": ">=TLSv1.2",
                       "smtpd_tls_mandatory_protocols": ">=TLSv1.2", **storing}
            files = {"vmailbox": vmailbox}
        instances.append(PostfixInstance(domain, root / domain, base + index, main_cf, files))
    body = compose(new_alert_id(), "alertes-sanitaires@ch-xyz.mssante.fr",
                   "DGS-Urgent : rappel de lot", TEXT)
    try:
        for instance in reversed(instances):
            instance.write_config()
            instance.start()
        started = time.time()
        with smtplib.SMTP("127.0.0.1", base, timeout=300) as smtp:
            smtp.ehlo()
            handed = Submitted()
            for group in batches(everyone):  # pipelined, as alerts/send.py hands it in
                transaction(smtp, "alertes-sanitaires@ch-xyz.mssante.fr", group, body,
                            handed)
        submit_s = time.time() - started
        deadline = time.monotonic() + args.timeout
        while True:
            stored = sum(Maildir(m).count() for m in maildirs)
            if stored >= len(everyone) or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        last = max((f.mtime for m in maildirs for f in Maildir(m).delivered()), default=started)
        per = [Maildir(m).count() for m in maildirs]
    finally:
        for instance in instances:
            instance.stop()
    return Result(f"Postfix {version} ×3", len(everyone), sum(1 for c in per if c),
                  sum(c - 1 for c in per if c > 1), None, submit_s, last - started,
                  "plain submission, no AUTH; relay: STARTTLS + client certificate; "
                  "virtual(8) Maildir per mailbox")


# -- main -----------------------------------------------------------------------------------

def table(results: list[Result]) -> Iterator[str]:
    yield ("| stack | mailboxes | stored | duplicates | $Alerte | submission s "
           "| all stored s | copies/s |")
    yield "|---|---:|---:|---:|---:|---:|---:|---:|"
    for r in results:
        marked = "—" if r.marked is None else str(r.marked)
        yield (f"| {r.stack} | {r.mailboxes} | {r.stored} | {r.duplicates} | {marked} | "
               f"{r.submit_s:.1f} | {r.total_s:.1f} | {r.rate:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mailboxes", type=int, default=100_000)
    parser.add_argument("--peer", choices=["postfix", "none"], default="postfix")
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args()
    if args.mailboxes < 3:
        parser.error("--mailboxes: at least 3 (one per operator)")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="mssante-bench-alerts-") as tmp:
        workdir = Path(tmp)
        print("running mssante…", file=sys.stderr)
        results.append(run_mssante(args, workdir))
        if args.peer == "postfix":
            print("running Postfix ×3…", file=sys.stderr)
            results.append(run_postfix(args, workdir))
        report(args, results)  # before the (long) removal of the Maildirs
        print("removing the work folder…", file=sys.stderr)
    if any(r.stored < r.mailboxes or r.duplicates
           or (r.marked is not None and r.marked != r.stored) for r in results):
        sys.exit(1)


def report(args: argparse.Namespace, results: list[Result]) -> None:
    print(f"machine: {machine(sqlite=True)}")
    print(f"workload: one alert ({len(TEXT)} bytes of text) to {args.mailboxes} mailboxes, "
          "a third on each of three operators, 1000 recipients per SMTP transaction")
    print()
    for line in table(results):
        print(line)
    print()
    for r in results:
        print(f"- {r.stack}: {r.note}")
    ours, peers = results[0], results[1:]
    if peers and peers[0].total_s:
        print(f"ratio mssante / Postfix: {peers[0].total_s / ours.total_s:.2f}× "
              "(time until all are stored; above 1: mssante is faster)")
    bad = [r for r in results if r.stored < r.mailboxes or r.duplicates
           or (r.marked is not None and r.marked != r.stored)]
    if bad:
        print("EXACTLY-ONCE CHECK FAILED for: " + ", ".join(r.stack for r in bad))
    else:
        print("every mailbox got the alert exactly once")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
