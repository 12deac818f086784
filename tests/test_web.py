"""The web chat through its HTTP API, on the real app (SQLite and PostgreSQL): language, the signed visitor
cookie, double submits, document upload, and the page itself."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from bot.app import App
from bot.channels.web import COOKIE, MAX_UPLOAD, VisitorCookie, WebChat, create_asgi, negotiate
from bot.registry.models import AuditRequest, Document, Feedback, TranscriptEntry
from tests.helpers import count_rows, latest_mail, one, rows

SECRET = b"test-secret-for-the-web-chat-cookie"
JAMES = ("10000003", "james.carter@example.org")
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"

Clients = Callable[[], httpx.AsyncClient]


@pytest.fixture
async def clients(app: App) -> AsyncIterator[Clients]:
    """Makes browsers-without-a-browser: each client keeps its own cookies, all talk to one running app."""
    asgi = create_asgi(app, [WebChat(app, secret=SECRET)])
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(asgi.router.lifespan_context(asgi))
        transport = httpx.ASGITransport(app=asgi)

        def make() -> httpx.AsyncClient:
            client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
            stack.push_async_callback(client.aclose)
            return client

        yield make


class Visitor:
    """One web chat visitor: sends messages the way the page does."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.last: list[dict[str, Any]] = []

    async def post(self, *, delivery_id: str | None = None, **fields: str) -> httpx.Response:
        body = {"delivery_id": delivery_id or uuid.uuid4().hex, **fields}
        return await self.client.post("/api/messages", json=body)

    async def say(self, text: str = "", *, payload: str | None = None, lang: str | None = None) -> str:
        fields = {
            "text": text,
            **({"payload": payload} if payload else {}),
            **({"lang": lang} if lang else {}),
        }
        response = await self.post(**fields)
        assert response.status_code == 200, response.text
        self.last = response.json()["replies"]
        return "\n".join(reply["text"] for reply in self.last)

    async def press(self, label_part: str) -> str:
        for reply in self.last:
            for choice in reply["choices"]:
                if label_part.lower() in choice["label"].lower():
                    return await self.say(payload=choice["payload"])
        raise AssertionError(f"no button {label_part!r} among {self.buttons()}")

    def buttons(self) -> list[str]:
        return [choice["label"] for reply in self.last for choice in reply["choices"]]

    async def upload(
        self, name: str, content: bytes, content_type: str = "application/pdf"
    ) -> httpx.Response:
        return await self.client.post(
            "/api/messages",
            data={"delivery_id": uuid.uuid4().hex},
            files={"file": (name, content, content_type)},
        )

    async def history(self) -> list[dict[str, str]]:
        response = await self.client.get("/api/history")
        assert response.status_code == 200
        messages: list[dict[str, str]] = response.json()["messages"]
        return messages

    async def verify(self, app: App, registry_id: str, email: str) -> str:
        await self.say(registry_id)
        await self.say(email)
        mail = await latest_mail(app.sessionmaker, email)
        assert mail is not None
        code = re.search(r"\b(\d{6})\b", mail.body)
        assert code is not None
        return await self.say(code.group(1))


# --- language -----------------------------------------------------------------------------------------------


async def test_a_spanish_conversation_gets_spanish_replies_and_a_spanish_page(clients: Clients) -> None:
    maria = Visitor(clients())
    assert "Hola" in await maria.say("hola")
    text = await maria.say("¿cómo me retiro de una capacitación?")
    assert "capacitación" in text
    assert any("Sí" in label for label in maria.buttons())
    page = await maria.client.get("/")
    assert '<html lang="es">' in page.text and "Su mensaje" in page.text and "Enviar" in page.text


async def test_the_language_selector_sends_the_engine_payload(clients: Clients) -> None:
    visitor = Visitor(clients())
    page = await visitor.client.get("/")
    assert '<html lang="en">' in page.text and 'value="zh_Hans"' in page.text
    response = await visitor.post(payload="lang:zh_Hans")
    assert response.json()["lang"] == "zh_Hans"
    assert re.search(r"[\u4e00-\u9fff]", response.json()["replies"][0]["text"])
    page = await visitor.client.get("/")  # the conversation's language renders the page
    assert '<html lang="zh-Hans">' in page.text and "发送" in page.text
    assert '<html lang="es">' in (await visitor.client.get("/?lang=es")).text


async def test_the_browser_language_picks_the_page_language(clients: Clients) -> None:
    client = clients()
    page = await client.get("/", headers={"Accept-Language": "fr-FR, zh-CN;q=0.8, en;q=0.5"})
    assert '<html lang="zh-Hans">' in page.text
    assert negotiate("en;q=0.2, es-MX") == "es"
    assert negotiate("*, de") is None


# --- the visitor cookie -------------------------------------------------------------------------------------


async def test_the_cookie_keeps_the_conversation_across_requests(clients: Clients) -> None:
    client = clients()
    first = await client.get("/")
    cookie = first.cookies[COOKIE]
    header = first.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=lax" in header and "path=/" in header
    visitor = Visitor(client)
    await visitor.say("How do I withdraw from a training?")
    history = await visitor.history()
    assert history[0] == {**history[0], "from": "member", "text": "How do I withdraw from a training?"}
    assert history[1]["from"] == "assistant" and "withdraw" in history[1]["text"].lower()

    # a reload (a new client with the same cookie) shows the same conversation and carries it on
    reloaded = clients()
    reloaded.cookies.set(COOKIE, cookie)
    assert await Visitor(reloaded).history() == history
    assert (await reloaded.get("/")).cookies.get(COOKIE) is None  # a valid cookie is kept as it is


async def test_a_tampered_cookie_starts_a_new_conversation_and_never_shows_another(
    clients: Clients,
) -> None:
    victim = Visitor(clients())
    await victim.client.get("/")
    await victim.say("My secret question about audit AUD-2026-12345")
    victim_id = victim.client.cookies[COOKIE].split(".")[0]

    other = VisitorCookie(b"someone-else's-secret-value-123").sign(victim_id)
    for forged in (victim_id, f"{victim_id}.{'0' * 64}", other, f"{victim_id}x.{other.split('.')[1]}"):
        attacker = clients()
        attacker.cookies.set(COOKIE, forged)
        assert await Visitor(attacker).history() == []
        response = await Visitor(attacker).post(text="hello")
        assert response.status_code == 200
        new_cookie = response.cookies[COOKIE]
        assert new_cookie.split(".")[0] != victim_id  # a new visitor, not the victim
        attacker.cookies.set(COOKIE, new_cookie)
        history = await Visitor(attacker).history()
        assert [entry["text"] for entry in history if entry["from"] == "member"] == ["hello"]
        assert "AUD-2026-12345" not in str(history)
    assert "AUD-2026-12345" in str(await victim.history())


async def test_a_cookie_with_a_signature_that_is_not_ascii_gets_an_answer_not_an_error(
    clients: Clients,
) -> None:
    visitor = Visitor(clients())
    forged = f"{VisitorCookie.new_visitor()}.{'é' * 64}".encode("latin-1")  # as a browser could send it
    response = await visitor.client.post(
        "/api/messages",
        json={"delivery_id": "forged-0000001", "text": "hello"},
        headers={"cookie": b"registry_bot_visitor=" + forged},
    )
    assert response.status_code == 200 and response.json()["replies"]
    assert response.cookies[COOKIE].split(".")[0] != forged.decode("latin-1").split(".")[0]


# --- delivery ids -------------------------------------------------------------------------------------------


async def test_a_delivery_sent_again_is_handled_once_and_gets_its_first_replies(
    app: App, clients: Clients
) -> None:
    visitor = Visitor(clients())
    await visitor.client.get("/")
    first = await visitor.post(delivery_id="click-0000001", text="hello")
    assert first.json()["replies"] and first.json()["duplicate"] is False
    count = await count_rows(app, TranscriptEntry)
    # the page sends it again when the first answer was lost on the way: the same replies, nothing new
    again = await visitor.post(delivery_id="click-0000001", text="hello")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["replies"] == first.json()["replies"]
    # two at once (a double click): handled once, both told the same
    both = await asyncio.gather(
        visitor.post(delivery_id="click-0000002", text="thanks"),
        visitor.post(delivery_id="click-0000002", text="thanks"),
    )
    assert sorted(response.json()["duplicate"] for response in both) == [False, True]
    assert both[0].json()["replies"] == both[1].json()["replies"] != []
    assert await count_rows(app, TranscriptEntry) == count + 2  # one "thanks" and one answer
    # the same client id from another visitor is a different delivery
    stranger = Visitor(clients())
    assert (await stranger.post(delivery_id="click-0000001", text="hello")).json()["duplicate"] is False


async def test_bad_requests_are_refused(clients: Clients) -> None:
    visitor = Visitor(clients())
    assert (await visitor.post(delivery_id="x", text="hi")).status_code == 400
    assert (await visitor.post(text="   ")).json()["error"] == "empty"
    response = await visitor.client.post(
        "/api/messages", content=b"text=hi", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    response = await visitor.client.post(
        "/api/messages", content=b"[1, 2]", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    response = await visitor.client.post(
        "/api/messages",
        json={"delivery_id": uuid.uuid4().hex, "text": "hi"},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    response = await visitor.client.post(
        "/api/messages",
        json={"delivery_id": uuid.uuid4().hex, "text": "hi"},
        headers={"Origin": "http://testserver"},
    )
    assert response.status_code == 200


# --- links and documents ------------------------------------------------------------------------------------


async def test_replies_carry_choices_and_links(clients: Clients) -> None:
    visitor = Visitor(clients())
    await visitor.say("How do I withdraw from a training?")
    links = [link for reply in visitor.last for link in reply["links"]]
    assert links and all(link["url"].startswith("https://") for link in links)
    choices = [choice for reply in visitor.last for choice in reply["choices"]]
    assert choices and all(choice["payload"] for choice in choices)


async def test_the_thumbs_under_an_answer_are_buttons_a_visitor_presses(app: App, clients: Clients) -> None:
    visitor = Visitor(clients())
    await visitor.say("¿qué es el calendario de capacitaciones?")
    assert visitor.buttons()[-2:] == ["👍 Me sirvió", "👎 No me sirvió"]
    assert "Gracias por decírmelo" in await visitor.press("👍")
    (row,) = await rows(app, Feedback)
    assert (row.topic, row.language, row.helpful) == ("training-calendar", "es", True)


async def test_a_pdf_is_uploaded_during_an_audit_request(app: App, clients: Clients) -> None:
    james = Visitor(clients())
    await james.say("verify my account")
    assert "linked" in await james.verify(app, *JAMES)
    await james.say(payload="flow:audit-request")
    await james.press("Continue")
    await james.press("Education")
    await james.say("My 12 child development units from Sacramento City College are not on my profile.")
    await james.press("Yes")
    assert "course description" in await james.press("course description and a syllabus")

    response = await james.upload("course.pdf", PDF)
    assert response.status_code == 200, response.text
    text = "\n".join(reply["text"] for reply in response.json()["replies"])
    assert "syllabus" in text and "still missing" in text
    response = await james.upload("syllabus.pdf", PDF)
    james.last = response.json()["replies"]
    assert "Done" in " ".join(james.buttons())
    await james.press("Done")
    assert "AUD-2026-00001" in await james.press("Yes")
    audit = await one(app, AuditRequest, AuditRequest.reference == "AUD-2026-00001")
    documents = await rows(app, Document, Document.audit_request_id == audit.id)
    assert sorted((d.filename, d.content_type) for d in documents) == [
        ("course.pdf", "application/pdf"),
        ("syllabus.pdf", "application/pdf"),
    ]


async def test_a_file_over_10_mb_is_refused_before_it_is_read(clients: Clients) -> None:
    visitor = Visitor(clients())
    sent = 0
    boundary = "registrybotboundary"

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="delivery_id"\r\n\r\n'
            f"{uuid.uuid4().hex}\r\n"
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n'
            "Content-Type: application/pdf\r\n\r\n"
        ).encode() + PDF
        for _ in range(40):  # 40 MB, streamed without a Content-Length
            sent += 1
            yield b"0" * (1024 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await visitor.client.post(
        "/api/messages",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413 and response.json()["error"] == "too_large"
    assert sent <= MAX_UPLOAD // (1024 * 1024) + 2  # it stopped reading just past the limit

    declared = await visitor.client.post(
        "/api/messages",
        content=b"x" * 16,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": "50000000"},
    )
    assert declared.status_code == 413

    just_over = await visitor.upload("big.pdf", PDF + b"0" * MAX_UPLOAD)
    assert just_over.status_code == 413


async def test_a_message_too_long_is_refused_whether_its_length_is_declared_or_not(
    app: App, clients: Clients
) -> None:
    visitor = Visitor(clients())
    long_text = "I forgot my password " * 4000  # about 84 KB of JSON
    declared = await visitor.client.post(
        "/api/messages", json={"delivery_id": uuid.uuid4().hex, "text": long_text}
    )
    assert declared.status_code == 413 and declared.json()["error"] == "too_large"

    async def chunks(text: str) -> AsyncIterator[bytes]:  # sent without a Content-Length
        encoded = json.dumps({"delivery_id": uuid.uuid4().hex, "text": text}).encode()
        for start in range(0, len(encoded), 4096):
            yield encoded[start : start + 4096]

    streamed = await visitor.client.post(
        "/api/messages", content=chunks(long_text), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413 and streamed.json()["error"] == "too_large"
    assert await count_rows(app, TranscriptEntry) == 0  # neither was stored
    answered = await visitor.client.post(
        "/api/messages", content=chunks("I forgot my password"), headers={"Content-Type": "application/json"}
    )
    assert answered.status_code == 200 and "Forgot Password" in answered.json()["replies"][0]["text"]


# --- the page -----------------------------------------------------------------------------------------------


async def test_the_page_is_accessible_and_self_contained(clients: Clients) -> None:
    client = clients()
    page = await client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert 'role="log"' in html and 'aria-live="polite"' in html
    assert 'name="viewport"' in html
    # every control has a label
    for control in re.findall(r'<(?:select|textarea|input)[^>]*\bid="([^"]+)"', html):
        assert f'<label for="{control}"' in html, control
    assert '<button type="submit" id="send">Send</button>' in html
    # nothing is loaded from elsewhere
    assert not re.search(r'<(?:script|link)[^>]+(?:src|href)="(?:https?:)?//', html)
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'self' covers it
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset, kind in (("/static/chat.js", "javascript"), ("/static/chat.css", "text/css")):
        response = await client.get(asset)
        assert response.status_code == 200 and kind in response.headers["content-type"]
        assert "@import" not in response.text and "url(http" not in response.text
    assert re.findall(r'fetch\("([^"]+)"', (await client.get("/static/chat.js")).text) == [
        "/api/messages",
        "/api/history",
    ]


@pytest.mark.parametrize("lang", ["en", "es", "zh_Hans"])
async def test_the_page_is_translated(clients: Clients, lang: str) -> None:
    html = (await clients().get(f"/?lang={lang}")).text
    words = {"en": "Your message", "es": "Su mensaje", "zh_Hans": "您的消息"}
    assert words[lang] in html
    assert "{name}" in html  # the script's placeholders survive translation


def test_the_cookie_signature() -> None:
    cookies = VisitorCookie(SECRET)
    visitor = cookies.new_visitor()
    assert cookies.verify(cookies.sign(visitor)) == visitor
    signed = cookies.sign(visitor)
    assert cookies.verify(signed[:-1] + ("0" if signed[-1] != "0" else "1")) is None
    assert cookies.verify(None) is None and cookies.verify("a.b.c") is None and cookies.verify("") is None
    # a MAC that is not hex (here not even ASCII, which hmac.compare_digest refuses) is no signature either
    assert cookies.verify(f"{visitor}.{'é' * 64}") is None and cookies.verify(f"{visitor}.é") is None
    with pytest.raises(ValueError):
        VisitorCookie(b"short")


async def test_the_history_keeps_presses_links_documents_and_the_last_buttons(clients: Clients) -> None:
    visitor = Visitor(clients())
    await visitor.say("how do I withdraw from a training?")
    await visitor.press("When you can't withdraw")
    await visitor.say("how do I withdraw from a training?")
    offered = visitor.buttons()
    # a new tab of the same visitor: the history alone
    history = (await visitor.client.get("/api/history")).json()
    said = [entry["text"] for entry in history["messages"] if entry["from"] == "member"]
    assert said[1].startswith("When you can't withdraw")  # the button's caption, not its payload
    replies = [entry["text"] for entry in history["messages"] if entry["from"] == "assistant"]
    assert "https://" in replies[0]  # the reply's "read more" link is kept with it
    assert [choice["label"] for choice in history["choices"]] == offered  # the buttons still to press
    assert all(isinstance(entry["id"], int) for entry in history["messages"])
    newer = (await visitor.client.get(f"/api/history?after={history['messages'][-2]['id']}")).json()
    assert [entry["id"] for entry in newer["messages"]] == [history["messages"][-1]["id"]]
    assert (await visitor.client.get("/api/history?after=x")).status_code == 400
