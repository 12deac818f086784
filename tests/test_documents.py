"""Uploaded documents under attack: checked off the event loop, archives bounded, refused files counted
toward the limit, and names cleaned, as a member (and the help desk's Slack card) sees them."""

from __future__ import annotations

import asyncio
import io
import random
import struct
import threading
import zipfile
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from bot import documents
from bot.app import App
from bot.channels.web import WebChat, create_asgi
from bot.messages import Attachment, Reply
from bot.registry.models import AuditRequest, Document
from bot.render import render
from tests.helpers import Chatter, one, rows, verify
from tests.test_flows import JAMES, PDF, docx
from tests.test_web import SECRET, Visitor

EXE = b"MZ\x90\x00 this is an executable"
MB = 1024 * 1024


# --- archives built for the probe -------------------------------------------------------------------------


def stuffed_docx(entries: int) -> bytes:
    """A DOCX's two parts followed by empty ones, ``entries`` in all: about 9 MB for 100,000 (written by
    hand, since zipfile takes seconds)."""
    names = ["[Content_Types].xml", "word/document.xml", *(f"{i:05x}" for i in range(entries - 2))]
    local: list[bytes] = []
    central: list[bytes] = []
    offset = 0
    for name in names:
        raw = name.encode()
        local.append(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0x21, 0, 0, 0, len(raw), 0) + raw)
        entry = struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21, 0, 0, 0, len(raw), 0, 0, 0, 0, 0, offset
        )
        central.append(entry + raw)
        offset += len(local[-1])
    directory = b"".join(central)
    count = min(entries, 0xFFFF)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(directory), offset, 0)
    return b"".join(local) + directory + end


def docx_with(parts: dict[str, int | bytes]) -> bytes:
    """A deflated DOCX with extra parts: bytes as given, or that many zero bytes (a zip bomb's filling)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        for name, part in parts.items():
            with archive.open(name, "w") as member:
                if isinstance(part, bytes):
                    member.write(part)
                    continue
                for _ in range(part // MB):
                    member.write(bytes(MB))
    return buffer.getvalue()


def ordinary_text(size: int) -> bytes:
    """Word-like XML of varied words: compresses about as much as a real document's text."""
    rng = random.Random(7)
    words = [
        ("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))))
        for _ in range(3000)
    ]
    paragraphs: list[str] = []
    while sum(map(len, paragraphs)) < size:
        paragraphs.append(f"<w:p><w:r><w:t>{' '.join(rng.choices(words, k=40))}</w:t></w:r></w:p>")
    return "".join(paragraphs).encode()


# --- a member in the audit request's "other documents" step ---------------------------------------------


async def at_documents_step(app: App, user: str) -> Chatter:
    """James, verified, in an audit request about training hours, asked for supporting documents."""
    member = Chatter(app.engine, user)
    await verify(member, app.sessionmaker, *JAMES)
    await member.press_flow("audit-request")
    await member.press("Continue")
    await member.press("Training")
    text = await member.say("The 2025 workshop on literacy is missing from my training hours report.")
    assert "supporting documents" in text
    return member


def upload(member: Chatter, name: str, content: bytes) -> asyncio.Task[list[Reply]]:
    inbound = member.inbound()
    fields = {field: getattr(inbound, field) for field in inbound.__slots__}
    return asyncio.ensure_future(
        member.engine.handle(type(inbound)(**{**fields, "attachments": (Attachment(name, content),)}))
    )


async def send(member: Chatter, name: str, content: bytes) -> str:
    member.last = await upload(member, name, content)
    return "\n".join(reply.text for reply in member.last)


# --- 1. one upload must not freeze the server ---------------------------------------------------------------


async def test_the_check_runs_off_the_event_loop_and_100000_entries_are_refused(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    member = await at_documents_step(app, "james-entries")
    real, checking, released = documents.inspect, threading.Event(), threading.Event()
    seen: list[tuple[int, bool]] = []

    def watched(content: bytes) -> documents.Accepted | documents.Refused:
        checking.set()
        # only the event loop can release it: on the loop's own thread this waits in vain
        seen.append((threading.get_ident(), released.wait(timeout=5)))
        return real(content)

    monkeypatch.setattr(documents, "inspect", watched)
    turn = upload(member, "many.docx", stuffed_docx(100_000))
    while not checking.is_set() and not turn.done():
        await asyncio.sleep(0.001)  # the loop keeps turning while the check is under way
    released.set()
    text = "\n".join(reply.text for reply in await turn)

    assert seen and seen[0][0] != threading.get_ident() and seen[0][1], "the check held up the event loop"
    assert "too large or too complex inside" in text and "many.docx" in text
    assert await rows(app, Document) == []


# --- 3. a zip bomb is refused and never reaches staff -------------------------------------------------------


@pytest.mark.parametrize(
    "parts",
    [
        {"word/document.xml": 60 * MB},  # one part expanding past the total bound (and the ratio)
        {"word/document.xml": b"<w:document/>", **{f"word/media/{i}.bin": MB for i in range(60)}},  # total
        {"word/document.xml": 5 * MB},  # small in all, but one part at about 1000:1
    ],
    ids=["bomb", "many-parts", "ratio"],
)
async def test_a_docx_that_expands_past_the_bounds_is_refused_and_not_filed(
    app: App, parts: dict[str, int | bytes]
) -> None:
    member = await at_documents_step(app, "james-bomb")
    bomb = docx_with(parts)
    assert len(bomb) < MB  # a small upload
    assert "too large or too complex inside" in await send(member, "cv.docx", bomb)
    await member.say("done")
    assert "AUD-2026-00001" in await member.press("Yes")
    audit = await one(app, AuditRequest, AuditRequest.reference == "AUD-2026-00001")
    card = await app.helpdesk.request_card("audit", audit.id)
    assert card is not None and card.documents == ()  # nothing for staff to open
    assert await rows(app, Document) == []


async def test_a_real_sized_docx_is_still_accepted(app: App) -> None:
    member = await at_documents_step(app, "james-docx")
    text = ordinary_text(3 * MB)
    ratio = len(text) / len(docx_with({"word/document.xml": text}))
    assert 2 < ratio < documents.MAX_RATIO  # ordinary prose, over the ratio floor
    assert "Received: report.docx" in await send(
        member, "report.docx", docx_with({"word/document.xml": text})
    )
    (stored,) = await rows(app, Document)
    assert stored.content_type == documents.DOCX_TYPE


async def test_a_docx_of_an_unknown_zip_version_is_refused_not_crashed_on(app: App) -> None:
    member = await at_documents_step(app, "james-version")
    content = bytearray(docx())
    entry = content.index(b"PK\x01\x02")  # the central directory entry of the first part
    content[entry + 6 : entry + 8] = struct.pack("<H", 99)  # "version needed to extract": zipfile raises
    assert "not a PDF" in await send(member, "odd.docx", bytes(content))
    assert await rows(app, Document) == []


# --- 2. refused files count toward the limit ----------------------------------------------------------------


async def test_refused_files_count_toward_the_limit_until_the_request_is_cancelled(app: App) -> None:
    member = await at_documents_step(app, "james-limit")
    for number in range(1, documents.MAX_PER_REQUEST):
        text = await send(member, f"bad-{number}.exe", EXE)
        assert "not a PDF" in text and "can't take any more" not in text
    text = await send(member, "bad-10.exe", EXE)
    assert "not a PDF" in text and "received 10 files, the most it can take" in text
    assert "Done" in member.buttons()
    text = await send(member, "good.pdf", PDF)  # a good file, now one too many
    assert "received 10 files" in text and "Received" not in text
    assert await rows(app, Document) == []

    await member.say("cancel")  # a new request starts counting again
    await member.press_flow("audit-request")
    await member.press("Continue")
    await member.press("Training")
    await member.say("The 2025 workshop on literacy is missing from my training hours report.")
    assert "Received: good.pdf" in await send(member, "good.pdf", PDF)
    assert len(await rows(app, Document)) == 1


async def test_the_tenth_file_kept_says_the_request_is_full(app: App) -> None:
    member = await at_documents_step(app, "james-full")
    for number in range(1, 4):
        await send(member, f"bad-{number}.exe", EXE)
    for number in range(4, documents.MAX_PER_REQUEST):
        assert "Send another document" in await send(member, f"page-{number}.pdf", PDF)
    text = await send(member, "page-10.pdf", PDF)
    assert "Received: page-10.pdf." in text and "Send another" not in text and "received 10 files" in text
    assert len(await rows(app, Document)) == documents.MAX_PER_REQUEST - 3


async def test_a_required_document_at_the_limit_says_how_to_start_again(app: App) -> None:
    member = Chatter(app.engine, "james-required")
    await verify(member, app.sessionmaker, *JAMES)
    await member.press_flow("audit-request")
    await member.press("Continue")
    await member.press("Education")
    await member.say("My 12 child development units from Sacramento City College are not on my profile.")
    await member.press("Yes")
    assert "course description" in await member.press("course description and a syllabus")
    for number in range(1, documents.MAX_PER_REQUEST):
        await send(member, f"bad-{number}.exe", EXE)
    text = await send(member, "bad-10.exe", EXE)
    assert "received 10 files" in text and 'say "cancel"' in text and member.buttons() == []
    assert 'say "cancel"' in await send(member, "course.pdf", PDF)
    assert await rows(app, Document) == []


@pytest.mark.parametrize("required", [True, False])
@pytest.mark.parametrize(
    ("lang", "words"), [("es", ("10 archivos", "cancelar", "Listo")), ("zh_Hans", ("10", "取消", "完成"))]
)
def test_the_limit_is_told_in_the_members_language(lang: str, words: tuple[str, ...], required: bool) -> None:
    template = "flows/documents/too_many_required" if required else "flows/documents/too_many"
    text = render(template, lang, limit=10)
    assert words[0] in text and (words[1] if required else words[2]) in text
    assert "can't" not in text


# --- 4. upload names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("..\\..\\x.pdf", "x.pdf"),
        ("../../etc/x.pdf", "x.pdf"),
        ("C:\\Users\\ana\\x.pdf", "x.pdf"),
        ("..hidden.pdf", "hidden.pdf"),
        ("evil\x00name\x1b.pdf", "evilname.pdf"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),  # a right-to-left override would disguise the name
        ("a" * 300 + ".pdf", "a" * 251 + ".pdf"),
        ("..", "document"),
        ("\\", "document"),
        ("", "document"),
    ],
)
def test_clean_filename(sent: str, kept: str) -> None:
    assert documents.clean_filename(sent) == kept
    assert documents.clean_filename(kept) == kept  # cleaning twice changes nothing


async def test_the_stored_name_and_the_slack_card_carry_the_cleaned_name(app: App) -> None:
    member = await at_documents_step(app, "james-names")
    assert "Received: x.pdf" in await send(member, "..\\..\\x.pdf", PDF)
    await send(member, "\x00.." + "b" * 300 + ".docx", docx())
    await member.say("done")
    assert "AUD-2026-00001" in await member.press("Yes")
    audit = await one(app, AuditRequest, AuditRequest.reference == "AUD-2026-00001")
    card = await app.helpdesk.request_card("audit", audit.id)
    assert card is not None and card.documents == ("x.pdf", "b" * 250 + ".docx")


@pytest.fixture
async def web(app: App) -> AsyncIterator[Callable[[], httpx.AsyncClient]]:
    asgi = create_asgi(app, [WebChat(app, secret=SECRET)])
    async with asgi.router.lifespan_context(asgi):
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield lambda: client


async def test_web_uploads_keep_no_directories_and_their_extension(
    app: App, web: Callable[[], httpx.AsyncClient]
) -> None:
    james = Visitor(web())
    await james.say("verify my account")
    assert "linked" in await james.verify(app, *JAMES)
    await james.say(payload="flow:audit-request")
    await james.press("Continue")
    await james.press("Training")
    await james.say("The 2025 workshop on literacy is missing from my training hours report.")
    for name in ("..\\..\\x.pdf", "c" * 300 + ".pdf"):
        response = await james.upload(name, PDF)
        assert response.status_code == 200, response.text
    stored = sorted(document.filename for document in await rows(app, Document))
    assert stored == ["c" * 251 + ".pdf", "x.pdf"]
