"""mssante's IMAP server alone on a store, in a process of its own (for bench/imap.py).

The benchmark measures the IMAP server, so this process runs only what serves IMAP:
the store (SQLite or PostgreSQL URL), the shared folder cache and the listeners of
``mssante.imap.server`` with the production settings, on uvloop like
``mssante operator serve``. No trust space runs: EXTERNAL, which needs its CRLs,
answers that no trust space is known; LOGIN and PLAIN work as in production.

    python -m bench.imap_server --database URL --cert C --key K --ca CA --port N \
        [--tls implicit|starttls] [--schema NAME] [--processes N]

With ``--processes`` above 1, the supervisor of ``mssante operator serve``
(environment/workers.py) runs that many such servers on the port (SO_REUSEPORT),
telling each other of their commits as an operator's workers do; ``ready`` is printed
once all listen.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
import sys
from pathlib import Path

import uvloop

from mssante.config import (
    Listener,
    OperatorConfig,
    OperatorSettings,
    TLSSettings,
    TrustSettings,
)
from mssante.environment.workers import Supervisor, tell_ready, worker_role
from mssante.imap.server import start_imap
from mssante.operator.runtime import OperatorRuntime
from mssante.pki.verify import CertificateChecker
from mssante.store import open_store
from mssante.whitelist.model import Whitelist


class NoTrustSpace:
    """The operator's view of a trust space when none runs (TrustView): only passwords
    log in (also used by tests that start bare IMAP servers)."""

    @property
    def whitelist(self) -> Whitelist:
        raise RuntimeError("the benchmark runs no trust space")

    @property
    def checker(self) -> CertificateChecker:
        raise RuntimeError("the benchmark runs no trust space")


async def serve(args: argparse.Namespace) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    implicit = args.tls == "implicit"
    listener = Listener("127.0.0.1", args.port)
    config = OperatorConfig(
        path=Path(args.database), tls=TLSSettings(Path(args.cert), Path(args.key), Path(args.ca)),
        operator=OperatorSettings(domains=["bench.mssante.fr"], hostname="imap.bench"),
        trust=TrustSettings(url="https://127.0.0.1:9"),
        imap=Listener() if implicit else listener, imaps=listener if implicit else Listener())
    store = await open_store(args.database, schema=args.schema)
    store.audit_enabled = not args.no_audit  # [audit] enabled, as an operator reads it
    ctx = OperatorRuntime(config.operator, store, NoTrustSpace())
    worker = worker_role() is not None
    listeners = await start_imap(ctx, config, reuse_port=worker)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if worker:
        tell_ready()
    else:
        print("ready", flush=True)
    await stop.wait()
    listeners.close()
    await listeners.wait_closed()
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--database", required=True, help="SQLAlchemy URL of the store")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls", choices=["implicit", "starttls"], default="implicit")
    parser.add_argument("--schema", help="PostgreSQL: the schema holding the store")
    parser.add_argument("--no-audit", action="store_true",
                        help="the audit trail off (its cost: logins, reads, changes)")
    parser.add_argument("--processes", type=int, default=1,
                        help="servers on the port, as an operator's workers")
    args = parser.parse_args()
    if args.processes > 1 and worker_role() is None:
        def announce() -> None:
            print("ready", flush=True)

        sys.exit(Supervisor([sys.executable, "-m", "bench.imap_server", *sys.argv[1:]],
                            args.processes, announce=announce).run())
    uvloop.run(serve(args))


if __name__ == "__main__":
    main()
