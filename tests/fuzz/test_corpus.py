"""The fuzz corpus, replayed: every input of ``fuzz/corpus/<target>/`` through its target.

Deterministic and short (a few seconds): what the fuzzer once found, seeds and crashes
alike, must keep meeting the oracles of ``fuzz/<target>.py`` (only the parser's own
errors, round trips, the grammar) within the time and memory bounds of
``fuzz/oracles.py``. Fuzzing itself (``python fuzz/run.py TARGET``) is not run here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fuzz import TARGETS, smtp_command
from fuzz.oracles import bounded

CORPUS = Path(__file__).resolve().parents[2] / "fuzz" / "corpus"


@pytest.fixture(scope="module", autouse=True)
def _close_smtp_loop() -> Iterator[None]:
    yield
    smtp_command.close()


def _inputs() -> list[tuple[str, Path]]:
    return [(target, path) for target in TARGETS
            for path in sorted((CORPUS / target).iterdir())]


def test_every_target_has_a_corpus() -> None:
    for target in TARGETS:
        assert len(list((CORPUS / target).iterdir())) >= 10, target


@pytest.mark.parametrize(("target", "path"), _inputs(),
                         ids=lambda v: v.name if isinstance(v, Path) else v)
def test_corpus_input_meets_the_oracles(target: str, path: Path) -> None:
    check: Callable[[bytes], None] = importlib.import_module(f"fuzz.{target}").check
    cost = bounded(check, path.read_bytes())
    assert cost.seconds >= 0
