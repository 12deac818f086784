"""Supporting documents: what is accepted, checked by content (not by name), and hashed."""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass

MAX_BYTES = 10 * 1024 * 1024
MAX_PER_REQUEST = 10
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@dataclass(frozen=True, slots=True)
class Accepted:
    content_type: str
    sha256: str


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a file cannot be used: ``too_large``, ``empty`` or ``unsupported``."""

    reason: str


def sniff(content: bytes) -> str | None:
    """The real type of a file from its first bytes (and, for DOCX, its inside), or None."""
    if content.startswith(b"%PDF-"):
        return "application/pdf"
    if content.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if content.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, ValueError):
            return None
        if "word/document.xml" in names and "[Content_Types].xml" in names:
            return DOCX_TYPE
    return None


def inspect(content: bytes) -> Accepted | Refused:
    """Accept a PDF, JPEG, PNG or DOCX of at most 10 MB; anything else is refused with a reason."""
    if not content:
        return Refused("empty")
    if len(content) > MAX_BYTES:
        return Refused("too_large")
    content_type = sniff(content)
    if content_type is None:
        return Refused("unsupported")
    return Accepted(content_type, hashlib.sha256(content).hexdigest())
