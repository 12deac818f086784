"""Supporting documents: what is accepted, checked by content (not by name), and hashed.

``inspect`` is CPU-bound on a large file (hashing, reading a ZIP's directory): call it off the event loop.
A DOCX is a ZIP archive; it is checked from its headers alone (nothing is decompressed) and refused when it
is bigger inside than any real Word document, so a ZIP bomb never reaches staff.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass

MAX_BYTES = 10 * 1024 * 1024
MAX_PER_REQUEST = 10  # files per request, counting the ones refused
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
DOCX_PARTS = frozenset({"[Content_Types].xml", "word/document.xml"})
MAGIC = (
    (b"%PDF-", "application/pdf"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)
ZIP_MAGIC = b"PK\x03\x04"
CENTRAL_ENTRY = b"PK\x01\x02"  # starts every entry of a ZIP's central directory

# A real DOCX has a few dozen parts; one with hundreds of images stays well under this.
MAX_ENTRIES = 1_000
# Images inside a DOCX are stored as they are and its XML expands about tenfold: a 10 MB document
# holds far less than this unless it is thousands of pages of text.
MAX_EXPANDED_BYTES = 50 * 1024 * 1024
# Word's XML compresses 5-30:1; a run of zeros compresses about 1000:1.
MAX_RATIO = 100
RATIO_FLOOR = 1024 * 1024  # smaller parts cannot expand to much; the total bound covers many of them

MAX_NAME_CHARS = 255
MAX_EXTENSION_CHARS = 16
FALLBACK_NAME = "document"
_DIRECTORY = re.compile(r"[\\/]")
_INVISIBLE = frozenset({"Cc", "Cf", "Cs"})  # control and format characters (NUL, bidi overrides), surrogates


@dataclass(frozen=True, slots=True)
class Accepted:
    content_type: str
    sha256: str


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a file cannot be used: ``too_large``, ``empty``, ``unsupported`` or ``too_complex`` (an archive
    bigger inside than any real document)."""

    reason: str


def inspect(content: bytes) -> Accepted | Refused:
    """Accept a PDF, JPEG, PNG or DOCX of at most 10 MB; anything else is refused with a reason."""
    if not content:
        return Refused("empty")
    if len(content) > MAX_BYTES:
        return Refused("too_large")
    found = _docx(content) if content.startswith(ZIP_MAGIC) else _magic(content)
    if isinstance(found, Refused):
        return found
    return Accepted(found, hashlib.sha256(content).hexdigest())


def _magic(content: bytes) -> str | Refused:
    for prefix, content_type in MAGIC:
        if content.startswith(prefix):
            return content_type
    return Refused("unsupported")


def _docx(content: bytes) -> str | Refused:
    """DOCX_TYPE for a Word document within the bounds, read from the archive's headers alone."""
    # zipfile reads the whole central directory on opening: count its entries first, at C speed
    if content.count(CENTRAL_ENTRY) > MAX_ENTRIES:
        return Refused("too_complex")
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, NotImplementedError):
        return Refused("unsupported")
    if not {member.filename for member in members} >= DOCX_PARTS:
        return Refused("unsupported")
    return DOCX_TYPE if within_bounds(members) else Refused("too_complex")


def within_bounds(members: list[zipfile.ZipInfo]) -> bool:
    """Whether an archive's declared sizes stay within the entry, total and ratio bounds."""
    if len(members) > MAX_ENTRIES:
        return False
    if sum(member.file_size for member in members) > MAX_EXPANDED_BYTES:
        return False
    return all(
        member.file_size <= RATIO_FLOOR or member.file_size <= MAX_RATIO * member.compress_size
        for member in members
    )


def clean_filename(name: str) -> str:
    """A safe name to store and show: no directories (either slash), control characters or leading dots,
    at most 255 characters with the extension kept, and "document" when nothing is left."""
    base = _DIRECTORY.split(name)[-1]
    base = "".join(char for char in base if unicodedata.category(char) not in _INVISIBLE)
    base = base.strip().lstrip(". ").rstrip(". ")
    if len(base) > MAX_NAME_CHARS:
        base = _shortened(base)
    return base or FALLBACK_NAME


def _shortened(name: str) -> str:
    """``name`` cut to MAX_NAME_CHARS, keeping a short extension."""
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > MAX_EXTENSION_CHARS:
        return name[:MAX_NAME_CHARS].rstrip(". ")
    return f"{stem[: MAX_NAME_CHARS - len(extension) - 1]}.{extension}"
