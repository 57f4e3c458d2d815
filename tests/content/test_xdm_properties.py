"""Properties of the XDM archive (hypothesis): any set of documents of one patient
round-trips; any mutation of a valid archive, and any bytes at all, are refused or
accepted but never crash the check, and extracting never writes outside its folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.content.xdmtools import CONSULTATION, valid_archive

from mssante.content.xdm import (
    CLASS_OF_TYPE,
    CheckedArchive,
    Limits,
    SourceDocument,
    build,
    check,
)
from mssante.content.xdmfiles import extract
from mssante.errors import DocumentRefused

SMALL = Limits(member=2 * 1024 * 1024, total=4 * 1024 * 1024)
VALID = valid_archive()

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
               min_size=1, max_size=40).filter(lambda s: s.strip() == s and s.strip())


@st.composite
def documents(draw: st.DrawFn) -> SourceDocument:
    title = draw(text)
    code = draw(st.sampled_from(sorted(CLASS_OF_TYPE)))
    extension = draw(st.from_regex(r"\A[A-Z0-9-]{1,20}\Z"))
    cda = (CONSULTATION
           .replace(b"Compte rendu de consultation de cardiologie",
                    escape(title).encode(), 1)
           .replace(b'code="11488-4"', f'code="{code}"'.encode(), 1)
           .replace(b'extension="CR-2026-000417"', f'extension="{extension}"'.encode(), 1))
    pdf = draw(st.none() | st.binary(max_size=2000))
    return SourceDocument(cda, pdf)


@settings(max_examples=40, deadline=None)
@given(st.lists(documents(), min_size=1, max_size=4))
def test_any_documents_round_trip(sources: list[SourceDocument]) -> None:
    checked = check(build(sources))
    expected = [d for s in sources for d in ((s.cda,) if s.pdf is None else (s.cda, s.pdf))]
    assert [d.data for d in checked.documents] == expected
    assert [d.size for d in checked.documents] == [len(d) for d in expected]
    assert checked.patient_ins == "279035121518989"
    assert [h.code.code for h in checked.cdas] == [
        s.cda.split(b'<code code="')[1].split(b'"')[0].decode() for s in sources]
    assert len({d.name.casefold() for d in checked.documents}) == len(expected)


@st.composite
def mutations(draw: st.DrawFn) -> bytes:
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "overwrite"]))
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[at:at + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        else:
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[at:at + len(chunk)] = chunk
        if not data:
            break
    return bytes(data)


def _within(folder: Path, written: list[Path]) -> None:
    for path in written:
        assert path.parent == folder
    for root, dirs, files in os.walk(folder):
        assert Path(root) == folder and not dirs
        assert set(files) == {p.name for p in written}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_mutated_archives_never_crash_and_never_write_outside(archive: bytes) -> None:
    with tempfile.TemporaryDirectory() as base:
        folder = Path(base) / "into"
        try:
            written = extract(archive, folder, SMALL)
        except DocumentRefused as exc:
            assert exc.reasons and all(isinstance(r, str) and r for r in exc.reasons)
            assert not folder.exists()
        else:
            _within(folder, written)
        assert sorted(os.listdir(base)) in ([], ["into"])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4000) | st.binary(max_size=4000).map(lambda b: b"PK\x03\x04" + b))
def test_any_bytes_are_refused_or_read(data: bytes) -> None:
    try:
        result = check(data, SMALL)
    except DocumentRefused as exc:
        assert exc.reasons
    else:
        assert isinstance(result, CheckedArchive)
