"""Fixtures and archive surgery shared by the XDM tests: the example CDA documents, and
ways to take a valid archive apart and put it back together with one thing wrong."""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
import zipfile
from pathlib import Path

from lxml import etree

from mssante.content.xdm import RIM, SourceDocument, build

DATA = Path(__file__).parent / "data"
CONSULTATION = (DATA / "cr-consultation.xml").read_bytes()
CONSULTATION_PDF = (DATA / "cr-consultation.pdf").read_bytes()
BIOLOGY_N1 = (DATA / "cr-biologie-n1.xml").read_bytes()
METADATA = "IHE_XDM/SUBSET01/METADATA.XML"
CDA = "IHE_XDM/SUBSET01/DOC0001.XML"
PDF = "IHE_XDM/SUBSET01/DOC0002.PDF"


def valid_archive() -> bytes:
    return build([SourceDocument(CONSULTATION, CONSULTATION_PDF)])


def members(archive: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def zip_of(entries: list[tuple[str | zipfile.ZipInfo, bytes]],
           compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A ZIP of ``entries`` as given: duplicates, odd names and attributes kept."""
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of a duplicate name: the point
        with zipfile.ZipFile(out, "w", compression=compression) as zf:
            for name, data in entries:
                zf.writestr(name, data)
    return out.getvalue()


def rezip(files: dict[str, bytes]) -> bytes:
    return zip_of(list(files.items()))


def fix_metadata(files: dict[str, bytes], *, size: bool = True, digest: bool = True) -> None:
    """Make METADATA.XML's hash and size slots say what the documents now hold."""
    root = etree.fromstring(files[METADATA])
    ns = {"rim": RIM}
    for entry in root.iterfind(".//rim:ExtrinsicObject", ns):
        uri = entry.findtext("rim:Slot[@name='URI']/rim:ValueList/rim:Value", namespaces=ns)
        name = f"IHE_XDM/SUBSET01/{uri}"
        if name not in files:
            continue
        data = files[name]
        if digest:
            entry.find("rim:Slot[@name='hash']/rim:ValueList/rim:Value", ns).text = \
                hashlib.sha1(data).hexdigest()  # type: ignore[union-attr]
        if size:
            entry.find("rim:Slot[@name='size']/rim:ValueList/rim:Value", ns).text = \
                str(len(data))  # type: ignore[union-attr]
    files[METADATA] = etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def with_document(archive: bytes, name: str, data: bytes, *, fix: bool = True) -> bytes:
    """``archive`` with the member ``name`` replaced by ``data`` (the metadata's hash and
    size updated when ``fix``)."""
    files = members(archive)
    files[name] = data
    if fix:
        fix_metadata(files)
    return rezip(files)


def overlapping(archive: bytes, name: str, twin: str) -> bytes:
    """``archive`` with a second central directory record for ``name``, named ``twin``
    (same length): two entries over the same compressed data (a "better zip bomb")."""
    assert len(name) == len(twin)
    end = archive.rindex(b"PK\x05\x06")  # end of central directory (APPNOTE 4.3.16)
    count, cd_size, cd_offset = struct.unpack("<HLL", archive[end + 10:end + 20])
    central = archive[cd_offset:cd_offset + cd_size]
    position = 0
    record = b""
    while position < len(central):
        name_length, extra_length, comment_length = struct.unpack(
            "<HHH", central[position + 28:position + 34])
        length = 46 + name_length + extra_length + comment_length
        current = central[position:position + length]
        if current[46:46 + name_length].decode() == name:
            record = current[:46] + twin.encode() + current[46 + name_length:]
        position += length
    assert record
    new_central = central + record
    eocd = bytearray(archive[end:end + 22])
    struct.pack_into("<HHLL", eocd, 8, count + 1, count + 1, len(new_central), cd_offset)
    return archive[:cd_offset] + new_central + bytes(eocd) + archive[end + 22:]


def lying_size(archive: bytes, name: str, claimed: int) -> bytes:
    """``archive`` whose headers claim ``claimed`` octets for ``name`` once decompressed
    (local header and central directory alike)."""
    data = bytearray(archive)
    encoded = name.encode()
    position = 0
    while True:
        position = data.find(encoded, position + 1)
        if position < 0:
            break
        if data[position - 30:position - 26] == b"PK\x03\x04":
            struct.pack_into("<L", data, position - 30 + 22, claimed)
        elif data[position - 46:position - 42] == b"PK\x01\x02":
            struct.pack_into("<L", data, position - 46 + 24, claimed)
    return bytes(data)


def encrypted(archive: bytes, name: str) -> bytes:
    """``archive`` whose entry ``name`` says it is encrypted (general purpose flag bit 0,
    APPNOTE 4.4.4), in its local header and central directory record."""
    data = bytearray(archive)
    encoded = name.encode()
    position = 0
    while True:
        position = data.find(encoded, position + 1)
        if position < 0:
            break
        if data[position - 30:position - 26] == b"PK\x03\x04":
            data[position - 30 + 6] |= 0x1
        elif data[position - 46:position - 42] == b"PK\x01\x02":
            data[position - 46 + 8] |= 0x1
    return bytes(data)
