"""Run a fuzz target under atheris (libFuzzer) for a while, and keep what it learnt.

    python fuzz/run.py TARGET [--seconds N] [--no-merge] [-- LIBFUZZER-OPTIONS...]
    python fuzz/run.py TARGET --coverage     # lines of the parsers the corpus reaches
    python fuzz/run.py TARGET --minimize     # keep only found inputs that add coverage

Inputs that reach new code are written to a scratch folder, then merged into
``fuzz/corpus/TARGET/`` (libFuzzer's ``-merge=1``: only those that add coverage are
kept, named by their SHA-1). An input that breaks an oracle stops the run and is saved as
``fuzz/crashes/TARGET-crash-<sha1>``; replay it with ``python fuzz/run.py TARGET FILE``.
Needs the ``fuzz`` extra (``pip install -e '.[fuzz]'``); one process, one core: run it
under ``nice`` on a shared machine.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import CodeType, FrameType

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the repository is the import root
    sys.path.insert(0, str(ROOT))

from fuzz import TARGETS  # noqa: E402

CORPUS = ROOT / "fuzz" / "corpus"
CRASHES = ROOT / "fuzz" / "crashes"
# the packages whose code the fuzzer is guided by (and whose coverage is reported)
MODULES = {
    "imap_command": ("mssante.imap.parser", "mssante.imap.sequence", "mssante.imap.fetch",
                     "mssante.imap.search", "mssante.imap.mime"),
    "smtp_command": ("mssante.smtp.protocol", "mssante.smtp.params", "mssante.smtp.submission",
                     "mssante.auth.oauthsasl",
                     "aiosmtpd.smtp"),
    "smtp_params": ("mssante.smtp.params",),
    "mime": ("mssante.content.mime", "mssante.imap.mime", "mssante.domain.addresses"),
    "address": ("mssante.domain.addresses",),
}


def _load(target: str, instrument: bool) -> Callable[[bytes], None]:
    if not instrument:
        return importlib.import_module(f"fuzz.{target}").check  # type: ignore[no-any-return]
    import atheris

    with atheris.instrument_imports(include=[*MODULES[target], f"fuzz.{target}"]):
        module = importlib.import_module(f"fuzz.{target}")
    return module.check  # type: ignore[no-any-return]


def _self() -> str:
    """How libFuzzer runs this script again (-merge=1 does, through the shell)."""
    return f"{sys.executable} {Path(__file__).resolve()}"


def _fuzz(target: str, seconds: int, merge: bool, extra: list[str]) -> None:
    import atheris

    check = _load(target, instrument=True)
    corpus = CORPUS / target
    corpus.mkdir(parents=True, exist_ok=True)
    CRASHES.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"fuzz-{target}-"))
    maxlen = importlib.import_module(f"fuzz.{target}").MAX_LEN
    options = [f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=2048",
               f"-max_len={min(maxlen, 64 * 1024)}", "-print_final_stats=1",
               f"-artifact_prefix={CRASHES}/{target}-", *extra]
    if merge:
        # the first folder receives what is new; merged into the corpus afterwards
        args = [_self(), *options, str(scratch), str(corpus)]
    else:
        args = [_self(), *options, str(corpus)]
    os.environ["MSSANTE_FUZZ_TARGET"] = target
    pid = os.fork()
    if pid == 0:  # libFuzzer exits the process when it is done: run it in a child
        atheris.Setup(args, check)
        atheris.Fuzz()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if merge and any(scratch.iterdir()):
        before = len(list(corpus.iterdir()))
        _merge(target, corpus, scratch)
        print(f"corpus {target}: {before} -> {len(list(corpus.iterdir()))} inputs")
    shutil.rmtree(scratch, ignore_errors=True)
    if code:
        sys.exit(code)


def _merge(target: str, into: Path, source: Path, *options: str) -> None:
    """Add to ``into`` the inputs of ``source`` that reach code ``into`` does not
    (libFuzzer's -merge=1, smallest first), in a child: libFuzzer exits when done."""
    import atheris

    maxlen = importlib.import_module(f"fuzz.{target}").MAX_LEN
    check = _load(target, instrument=True)
    os.environ["MSSANTE_FUZZ_TARGET"] = target
    pid = os.fork()
    if pid == 0:
        atheris.Setup([_self(), "-merge=1", f"-max_len={min(maxlen, 64 * 1024)}",
                       *options, str(into), str(source)], check)
        atheris.Fuzz()
        os._exit(0)
    os.waitpid(pid, 0)


def _minimize(target: str) -> None:
    """Keep the seeds and crashes (named), and of the inputs the fuzzer kept (named by
    their SHA-1) only those that still add coverage."""
    corpus = CORPUS / target
    scratch = Path(tempfile.mkdtemp(prefix=f"fuzz-{target}-"))
    found = [p for p in corpus.iterdir() if re.fullmatch(r"[0-9a-f]{40}", p.name)]
    for path in found:
        path.rename(scratch / path.name)
    try:
        # new edges only, not new hit counts of known ones: a smaller corpus to replay
        _merge(target, corpus, scratch, "-use_counters=0")
    finally:
        for path in scratch.iterdir():  # whatever the merge did not take goes away
            path.unlink()
        scratch.rmdir()
    kept = sum(1 for p in corpus.iterdir() if re.fullmatch(r"[0-9a-f]{40}", p.name))
    print(f"corpus {target}: {len(found)} inputs found by fuzzing, {kept} kept")


def _replay(target: str, files: list[Path]) -> None:
    check = _load(target, instrument=False)
    for path in files:
        print(path)
        check(path.read_bytes())
    print(f"{len(files)} inputs, no failure")


def _code_lines(code: CodeType) -> set[int]:
    """Lines of the functions in ``code`` (module and class bodies run at import)."""
    lines: set[int] = set()
    if code.co_flags & inspect.CO_OPTIMIZED:
        lines = {line for _, _, line in code.co_lines() if line is not None}
    for const in code.co_consts:
        if isinstance(const, CodeType):
            lines |= _code_lines(const)
    return lines


def _coverage(target: str) -> None:
    """Lines of the target's modules' functions that the corpus runs (sys.settrace)."""
    check = _load(target, instrument=False)
    names = MODULES[target]
    files: dict[str, str] = {}
    for name in names:
        module = importlib.import_module(name)
        files[str(module.__file__)] = name
    hit: dict[str, set[int]] = {f: set() for f in files}

    def tracer(frame: FrameType, event: str, arg: object) -> Callable[..., object] | None:
        lines = hit.get(frame.f_code.co_filename)
        if lines is None:
            return None
        lines.add(frame.f_lineno)

        def local(frame: FrameType, event: str, arg: object) -> Callable[..., object]:
            if event == "line":
                lines.add(frame.f_lineno)
            return local

        return local

    inputs = sorted((CORPUS / target).iterdir())
    sys.settrace(tracer)  # type: ignore[arg-type]
    try:
        for path in inputs:
            try:
                check(path.read_bytes())
            except Exception as exc:  # reported, not hidden: coverage is still counted
                print(f"{path.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        sys.settrace(None)
    for file, name in files.items():
        compiled = compile(Path(file).read_text(), file, "exec")
        total = _code_lines(compiled)
        covered = hit[file] & total
        print(f"{name:32} {len(covered):5} / {len(total):5} lines "
              f"({100 * len(covered) / max(1, len(total)):.0f} %)")
    print(f"{len(inputs)} inputs in fuzz/corpus/{target}")


def main() -> None:
    target = os.environ.get("MSSANTE_FUZZ_TARGET")
    if target and len(sys.argv) > 1 and sys.argv[1].startswith("-"):
        # libFuzzer running itself again (-merge=1 does): the target comes from the
        # environment, every argument is libFuzzer's
        import atheris

        atheris.Setup(sys.argv, _load(target, instrument=True))
        atheris.Fuzz()
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=TARGETS)
    parser.add_argument("files", nargs="*", type=Path, help="inputs to replay, no fuzzing")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--no-merge", action="store_true",
                        help="write new inputs straight into the corpus")
    parser.add_argument("--coverage", action="store_true",
                        help="print the lines of the parsers the corpus reaches")
    parser.add_argument("--minimize", action="store_true",
                        help="drop the inputs found by fuzzing that add no coverage")
    args, extra = parser.parse_known_args()
    if args.coverage:
        _coverage(args.target)
    elif args.minimize:
        _minimize(args.target)
    elif args.files:
        _replay(args.target, args.files)
    else:
        _fuzz(args.target, args.seconds, not args.no_merge, [a for a in extra if a != "--"])


if __name__ == "__main__":
    main()
