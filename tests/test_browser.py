"""The web chat in a real headless Chromium: a Spanish conversation in which Maria links her account and
withdraws from training T-401, driven through the page the way a member uses it (typing, Enter, buttons).

Chromium and chromedriver come from Debian (``.ci/run`` installs them); selenium drives them with no
download at run time. Without Chromium the test is skipped, except in CI, where it must run.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from bot.app import App
from bot.channels.web import WebChat
from bot.engine import utcnow
from bot.registry import repo
from bot.registry.models import Conversation, TranscriptEntry
from tests.conftest import ready
from tests.helpers import count_rows, database_away, latest_mail, rows
from tests.test_flows import enrollment_status
from tests.test_server import running_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
MARIA = ("10000001", "maria.lopez@example.org")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=420,900",  # a phone's width
)
TIMEOUT = 30.0

if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()) and not os.environ.get("CI"):
    pytest.skip("chromium and chromium-driver are not installed", allow_module_level=True)
if not os.environ.get("CI"):
    pytest.importorskip("selenium")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402


class Browser:
    """A Chromium page; every WebDriver call runs in a thread, so the server in this event loop answers."""

    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver

    async def run(self, function: Any, *args: Any) -> Any:
        return await asyncio.to_thread(function, *args)

    async def script(self, source: str, *args: Any) -> Any:
        return await self.run(self.driver.execute_script, source, *args)

    async def wait_for(self, source: str, *args: Any, what: str = "") -> Any:
        """Poll a JavaScript expression until it is truthy."""
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while True:
            value = await self.script(f"return ({source});", *args)
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                log = await self.script("return document.getElementById('log').innerText;")
                raise AssertionError(f"timed out waiting for {what or source}; the log shows:\n{log}")
            await asyncio.sleep(0.1)

    async def assistant_count(self) -> int:
        return int(await self.script("return document.querySelectorAll('.message.assistant').length;"))

    async def answers_after(self, before: int) -> str:
        """The text of the assistant's messages after the first ``before``, once the page is idle again."""
        await self.wait_for(
            "document.querySelectorAll('.message.assistant').length > arguments[0]"
            " && !document.getElementById('send').disabled",
            before,
            what="the assistant's answer",
        )
        texts = await self.script(
            "return Array.from(document.querySelectorAll('.message.assistant')).slice(arguments[0])"
            ".map(function (m) { return m.innerText; });",
            before,
        )
        return "\n".join(texts)

    async def say(self, text: str) -> str:
        """Type into the message box and press Enter, as a member does."""
        before = await self.assistant_count()
        box = await self.run(self.driver.find_element, By.ID, "message")
        await self.run(box.send_keys, text)
        await self.run(box.send_keys, Keys.ENTER)
        return await self.answers_after(before)

    async def press(self, label_part: str, *, keyboard: bool = False) -> str:
        """Press the newest enabled choice button whose caption contains ``label_part``."""
        before = await self.assistant_count()
        buttons = await self.run(self.driver.find_elements, By.CSS_SELECTOR, ".choices button:enabled")
        for button in reversed(buttons):
            if label_part.lower() in (await self.run(lambda b=button: b.text)).lower():
                await self.script("arguments[0].scrollIntoView({block: 'center'});", button)
                if keyboard:  # Tab focus + Enter: the buttons are real, keyboard-usable buttons
                    await self.script("arguments[0].focus();", button)
                    await self.run(button.send_keys, Keys.ENTER)
                else:
                    await self.run(button.click)
                return await self.answers_after(before)
        captions = [await self.run(lambda b=button: b.text) for button in buttons]
        raise AssertionError(f"no button {label_part!r} among {captions}")


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = await asyncio.to_thread(
        webdriver.Chrome, service=Service(executable_path=CHROMEDRIVER), options=options
    )
    try:
        yield Browser(driver)
    finally:
        await asyncio.to_thread(driver.quit)


async def test_maria_withdraws_from_a_training_in_spanish_in_the_browser(app: App, browser: Browser) -> None:
    screenshots = os.environ.get("REGISTRY_BOT_SCREENSHOTS")
    async with running_server(app, [WebChat(app)]) as (url, _):
        await browser.run(browser.driver.get, url + "/")
        await browser.wait_for("document.documentElement.lang === 'en'", what="the English page")
        assert "Your message" in await browser.script("return document.body.innerText;")

        # the language selector: the engine answers in Spanish and the page is rendered again in Spanish
        select = Select(await browser.run(browser.driver.find_element, By.ID, "lang"))
        await browser.run(select.select_by_value, "es")
        await browser.wait_for(
            "document.documentElement.lang === 'es' && document.querySelectorAll('.message').length >= 2",
            what="the Spanish page with the conversation so far",
        )
        body = await browser.script("return document.body.innerText;")
        assert "Su mensaje" in body and "Idioma" in body and "Adjuntar documentos" in body

        text = await browser.say("¿cómo me retiro de una capacitación?")
        assert "capacitación" in text
        text = await browser.press("Sí", keyboard=True)  # start now: the account is linked first
        assert "Registry ID" in text
        text = await browser.say(MARIA[0])
        assert "correo" in text.lower()
        text = await browser.say(MARIA[1])
        assert "código" in text
        mail = await latest_mail(app.sessionmaker, MARIA[1])
        assert mail is not None
        code = re.search(r"\b(\d{6})\b", mail.body)
        assert code is not None
        text = await browser.say(code.group(1))
        assert "Maria" in text

        # a reload keeps the conversation (the signed cookie) and the buttons to press
        await browser.run(browser.driver.refresh)
        await browser.wait_for(
            "document.querySelectorAll('.choices button:enabled').length > 0", what="the restored buttons"
        )
        assert code.group(1) in await browser.script("return document.getElementById('log').innerText;")

        text = await browser.press("Supporting Dual Language Learners")
        assert "Desea" in text
        if screenshots:
            Path(screenshots).mkdir(parents=True, exist_ok=True)
            await browser.run(browser.driver.save_screenshot, str(Path(screenshots) / "web-chat-es.png"))
        await browser.press("Sí")
        assert await enrollment_status(app, MARIA[0], "T-401") == "withdrawn"
        assert await enrollment_status(app, MARIA[0], "T-403") == "enrolled"

        # links in replies are real links that open in a new tab
        await browser.say("¿cómo me retiro de una capacitación?")
        hrefs = await browser.script(
            "return Array.from(document.querySelectorAll('.links a')).map(function (a) {"
            " return [a.getAttribute('href'), a.target, a.rel]; });"
        )
        assert hrefs and all(h[0].startswith("https://") and h[1] == "_blank" for h in hrefs)
        assert all("noopener" in h[2] for h in hrefs)


async def test_a_message_the_server_could_not_keep_stays_on_the_page_and_is_answered_once(
    app: App, browser: Browser, tmp_path: Path
) -> None:
    async with running_server(app, [WebChat(app)]) as (url, _):
        await browser.run(browser.driver.get, url + "/?lang=es")
        await browser.wait_for("document.documentElement.lang === 'es'", what="the Spanish page")
        async with database_away(app, tmp_path):
            box = await browser.run(browser.driver.find_element, By.ID, "message")
            await browser.run(box.send_keys, "olvidé mi contraseña")
            await browser.run(box.send_keys, Keys.ENTER)
            await browser.wait_for(
                "document.querySelector('.message.member.pending')"
                " && document.getElementById('log').innerText.indexOf('(855) 645-0826') >= 0",
                what="the message marked as not delivered, and the apology",
            )
            status = await browser.script("return document.getElementById('status').innerText;")
            assert "Todavía no" in status or "intentando" in status
        # the database is back: the page offers the message again, with the same delivery id
        await browser.wait_for(
            "!document.querySelector('.message.member.pending')"
            " && document.getElementById('log').innerText.indexOf('Olvidó su contraseña') >= 0",
            what="the answer once the message was kept",
        )
        members = await browser.script(
            "return Array.from(document.querySelectorAll('.message.member')).map(m => m.innerText);"
        )
        assert len(members) == 1  # nobody had to type it again
    assert await count_rows(app, TranscriptEntry, direction="in") == 1


async def test_the_language_selector_follows_the_conversation(app: App, browser: Browser) -> None:
    async with running_server(app, [WebChat(app)]) as (url, _):
        await browser.run(browser.driver.get, url + "/?lang=en")
        await browser.wait_for("document.documentElement.lang === 'en'", what="the English page")
        assert "Olvidó su contraseña" in await browser.say("olvidé mi contraseña, ¿qué hago?")
        # the page follows: its own labels in Spanish, the conversation still there
        await browser.wait_for("document.documentElement.lang === 'es'", what="the page in Spanish")
        assert await browser.script("return document.getElementById('lang').value;") == "es"
        assert "Enviar" in await browser.script("return document.getElementById('send').innerText;")
        await browser.wait_for(
            "document.getElementById('log').innerText.indexOf('Olvidó su contraseña') >= 0",
            what="the conversation so far",
        )
        # choosing English now does something: the page and the conversation turn English
        select = Select(await browser.run(browser.driver.find_element, By.ID, "lang"))
        await browser.run(select.select_by_value, "en")
        await browser.wait_for("document.documentElement.lang === 'en'", what="the page in English again")
        assert "Forgot Password" in await browser.say("I forgot my password")


async def test_a_file_over_10_mb_is_refused_once_and_the_next_message_goes(
    app: App, browser: Browser, tmp_path: Path
) -> None:
    big = tmp_path / "scan.pdf"
    big.write_bytes(b"%PDF-1.4\n" + b"0" * (10 * 1024 * 1024))
    async with running_server(app, [WebChat(app)]) as (url, _):
        await browser.run(browser.driver.get, url + "/?lang=en")
        await browser.wait_for("document.documentElement.lang === 'en'", what="the English page")
        chooser = await browser.run(browser.driver.find_element, By.ID, "file")
        await browser.run(chooser.send_keys, str(big))
        box = await browser.run(browser.driver.find_element, By.ID, "message")
        await browser.run(box.send_keys, Keys.ENTER)
        await browser.wait_for(
            "document.getElementById('error').innerText.indexOf('10 MB') >= 0", what="the size error"
        )
        assert await browser.script("return document.getElementById('file').files.length;") == 0
        assert "Forgot Password" in await browser.say("I forgot my password")  # not blocked by the file
        assert "10 MB" not in await browser.script("return document.getElementById('error').innerText;")


@asynccontextmanager
async def registry_site(chat_url: str, sock: socket.socket) -> AsyncIterator[str]:
    """A registry's own site on another origin (localhost, not 127.0.0.1): two pages with the embed line."""

    def page(request: Request) -> HTMLResponse:
        title = "Trainings" if request.url.path == "/trainings" else "Home"
        return HTMLResponse(
            f'<!doctype html><html lang="es"><head><title>{title}</title></head><body><h1>{title}</h1>'
            f'<a href="/trainings">Trainings</a>'
            f'<script src="{chat_url}/widget.js" async></script></body></html>'
        )

    site = Starlette(routes=[Route("/", page), Route("/trainings", page)])
    server = uvicorn.Server(uvicorn.Config(site, lifespan="off", log_config=None, access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        yield f"http://localhost:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_the_chat_embedded_on_a_registry_site_keeps_its_conversation_across_pages(
    make_app: Callable[..., App], browser: Browser
) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    site_origin = f"http://localhost:{sock.getsockname()[1]}"
    driver = browser.driver
    async with (
        ready(make_app(web_embed_origins=[site_origin])) as app,
        running_server(app, [WebChat(app)]) as (chat_url, _),
        registry_site(chat_url, sock) as site,
    ):
        await browser.run(driver.get, site + "/")
        launcher = await browser.run(driver.find_element, By.ID, "registry-bot-launcher")
        assert "mesa de ayuda" in await browser.run(lambda: launcher.text)  # the site's language
        await browser.run(launcher.click)
        frame = await browser.run(driver.find_element, By.ID, "registry-bot-frame")
        assert await browser.run(frame.is_displayed)
        await browser.run(driver.switch_to.frame, frame)
        await browser.wait_for("document.documentElement.lang === 'es'", what="the chat in Spanish")
        assert "Olvidó su contraseña" in await browser.say("olvidé mi contraseña")
        # Escape closes it and gives the focus back to the launcher
        box = await browser.run(driver.find_element, By.ID, "message")
        await browser.run(box.send_keys, Keys.ESCAPE)
        await browser.run(driver.switch_to.default_content)
        await browser.wait_for(
            "document.getElementById('registry-bot-frame').hidden"
            " && document.activeElement.id === 'registry-bot-launcher'",
            what="the chat closed, the focus on the launcher",
        )

        # a help desk reply while the chat is closed shows a badge on the launcher
        (conversation,) = await rows(app, Conversation)
        async with app.database.begin() as connection:
            await repo.add_transcript_entry(
                connection,
                conversation_id=conversation.id,
                direction="staff",
                text="Hola, soy Ana.",
                now=utcnow(),
            )
        await browser.wait_for(
            "!document.querySelector('.registry-bot-badge').hidden", what="the unread badge"
        )

        # another page of the site: the same conversation, without the page rebuilding what it showed
        await browser.run(driver.get, site + "/trainings")
        launcher = await browser.run(driver.find_element, By.ID, "registry-bot-launcher")
        await browser.run(launcher.click)
        frame = await browser.run(driver.find_element, By.ID, "registry-bot-frame")
        await browser.run(driver.switch_to.frame, frame)
        await browser.wait_for(
            "document.getElementById('log').innerText.indexOf('Olvidó su contraseña') >= 0"
            " && document.getElementById('log').innerText.indexOf('Hola, soy Ana.') >= 0",
            what="the conversation so far",
        )
        await browser.run(driver.switch_to.default_content)
        assert await count_rows(app, Conversation) == 1  # one visitor all along


async def test_only_the_configured_sites_may_frame_the_chat(make_app: Callable[..., App]) -> None:
    import httpx

    from bot.channels.web import create_asgi

    app = make_app(web_embed_origins=["https://www.caregistry.org", "javascript:alert(1)"])
    await app.migrate()
    try:
        transport = httpx.ASGITransport(app=create_asgi(app, [WebChat(app)]))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            embedded = (await client.get("/?embed=1")).headers["content-security-policy"]
            page = (await client.get("/")).headers["content-security-policy"]
            widget = await client.get("/widget.js")
    finally:
        await app.close()
    assert "frame-ancestors https://www.caregistry.org;" in embedded and "javascript" not in embedded
    assert "frame-ancestors 'none'" in page  # the full page is never framed
    assert widget.headers["content-type"].startswith("text/javascript")
    assert "在线咨询客服" in widget.text and "Chatear con la mesa de ayuda" in widget.text  # the catalogs


WCAG_21_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}


async def violations(browser: Browser) -> list[tuple[str, list[Any]]]:
    """What axe-core finds against WCAG 2.1 A and AA on the page as it is now."""
    from axe_core_python.selenium import Axe

    result = await browser.run(Axe().run, browser.driver, None, WCAG_21_AA)
    return [(found["id"], [node["target"] for node in found["nodes"]]) for found in result["violations"]]


async def phone(browser: Browser) -> None:
    """A 390×844 phone screen, as a phone's browser reports it."""
    metrics = {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True}
    await browser.run(browser.driver.execute_cdp_cmd, "Emulation.setDeviceMetricsOverride", metrics)


@pytest.mark.parametrize("lang", ["en", "es", "zh_Hans"])
async def test_the_chat_has_no_accessibility_violations_in_any_state(
    app: App, browser: Browser, lang: str, tmp_path: Path
) -> None:
    scan = tmp_path / "transcript.pdf"
    scan.write_bytes(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
    question = {"en": "how do I withdraw from a training?", "es": "¿cómo me retiro de una capacitación?"}
    async with running_server(app, [WebChat(app)]) as (url, _):
        for page in ("/", "/?embed=1"):
            await browser.run(browser.driver.get, f"{url}{page}{'&' if '?' in page else '?'}lang={lang}")
            await browser.wait_for("document.readyState === 'complete'", what="the page")
            assert await violations(browser) == [], f"{page} as it opens"
        await browser.run(browser.driver.get, f"{url}/?lang={lang}")
        await browser.say(question.get(lang, "怎么退出培训？"))  # a reply with buttons and links
        assert await browser.script("return document.querySelectorAll('.choices button').length;") > 0
        assert await violations(browser) == [], "with buttons and links"
        chooser = await browser.run(browser.driver.find_element, By.ID, "file")
        await browser.run(chooser.send_keys, str(scan))  # a document chosen, named before it goes
        await browser.wait_for("document.getElementById('file-chosen').innerText.length > 0", what="the file")
        assert await violations(browser) == [], "with a document chosen"
        await browser.script("document.getElementById('file').value = '';")  # not sent: the error next
        await browser.script("document.getElementById('file-chosen').textContent = '';")
        send = await browser.run(browser.driver.find_element, By.ID, "send")
        await browser.run(send.click)  # nothing typed: an error
        await browser.wait_for("document.getElementById('error').innerText.length > 0", what="the error")
        assert await violations(browser) == [], "with an error"
        await phone(browser)
        assert await violations(browser) == [], "on a phone"


async def test_on_a_phone_the_conversation_takes_most_of_the_screen(app: App, browser: Browser) -> None:
    await phone(browser)
    async with running_server(app, [WebChat(app)]) as (url, _):
        for lang in ("en", "es", "zh_Hans"):
            await browser.run(browser.driver.get, f"{url}/?lang={lang}")
            await browser.wait_for("document.readyState === 'complete'", what="the page")
            height = await browser.script(
                "return document.getElementById('log').getBoundingClientRect().height;"
            )
            assert height >= 0.6 * 844, (lang, height)
            # the introduction is still there for a new member, inside the conversation area
            assert await browser.script(
                "return getComputedStyle(document.getElementById('log'), '::before').content.length > 10;"
            )


async def test_a_withdrawal_with_the_keyboard_alone(app: App, browser: Browser) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    async def keys(*pressed: str) -> None:
        await browser.run(lambda: ActionChains(browser.driver).send_keys(*pressed).perform())

    async def typed(text: str) -> str:
        before = await browser.assistant_count()
        await keys(text, Keys.ENTER)
        return await browser.answers_after(before)

    async def chosen(caption: str) -> str:
        """Shift+Tab back from the message box to the button, then Enter, as a keyboard user does."""
        before = await browser.assistant_count()
        for _ in range(40):
            await keys(Keys.SHIFT + Keys.TAB)
            focused = await browser.script(
                "var e = document.activeElement; return e.tagName === 'BUTTON' ? e.innerText : '';"
            )
            if caption in focused:
                await keys(Keys.ENTER)
                answer = await browser.answers_after(before)
                await keys(Keys.TAB)  # back towards the message box: it is the next stop after the buttons
                while await browser.script("return document.activeElement.id;") != "message":
                    await keys(Keys.TAB)
                return answer
        raise AssertionError(f"no button {caption!r} reached with the keyboard")

    async with running_server(app, [WebChat(app)]) as (url, _):
        await browser.run(browser.driver.get, url + "/?lang=en")
        await browser.wait_for("document.readyState === 'complete'", what="the page")
        for _ in range(10):  # from the top of the page to the message box
            await keys(Keys.TAB)
            if await browser.script("return document.activeElement.id;") == "message":
                break
        assert "Withdraw" in await typed("how do I withdraw from a training?")
        assert "Registry ID" in await chosen("Yes, start now")
        assert "e-mail" in await typed(MARIA[0])
        assert "code" in await typed(MARIA[1])
        mail = await latest_mail(app.sessionmaker, MARIA[1])
        code = re.search(r"\b(\d{6})\b", mail.body if mail else "")
        assert code is not None
        assert "Supporting Dual Language Learners" in await typed(code.group(1))
        assert "withdraw" in (await chosen("Supporting Dual Language Learners")).lower()
        await chosen("Yes")
    assert await enrollment_status(app, MARIA[0], "T-401") == "withdrawn"


async def test_what_the_page_shows_stays_and_a_refused_file_says_so(
    app: App, browser: Browser, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a document the registry takes")
    async with running_server(app, [WebChat(app)]) as (url, _):
        await browser.run(browser.driver.get, url + "/?lang=en")
        await browser.wait_for("document.readyState === 'complete'", what="the page")
        await browser.say("how do I withdraw from a training?")
        await browser.press("When you can't withdraw")  # a button press: the member's bubble is its caption
        chooser = await browser.run(browser.driver.find_element, By.ID, "file")
        await browser.run(chooser.send_keys, str(notes))
        before = await browser.assistant_count()
        await browser.run((await browser.run(browser.driver.find_element, By.ID, "send")).click)
        await browser.answers_after(before)
        members = "return Array.from(document.querySelectorAll('.message.member')).map(m => m.innerText);"
        shown = await browser.script(members)
        assert "Document not accepted: notes.txt" in shown[-1]  # never "Document sent" for a refused file
        assert any("When you can't withdraw" in text for text in shown)
        await browser.script("document.getElementById('log').scrollTop = 0;")  # reading from the top
        await asyncio.sleep(11)  # the page looks for help desk messages every 10 s
        assert await browser.script(members) == shown  # nothing redrawn or lost
        assert await browser.script("return document.getElementById('log').scrollTop;") == 0
        # a new tab shows the document note too (from the transcript)
        await browser.run(browser.driver.get, url + "/?lang=en")
        await browser.wait_for(
            "document.getElementById('log').innerText.indexOf('notes.txt') >= 0", what="the document note"
        )


async def test_a_help_desk_reply_while_reading_up_shows_a_marker_not_a_jump(
    app: App, browser: Browser
) -> None:
    async with running_server(app, [WebChat(app)]) as (url, _):
        await browser.run(browser.driver.get, url + "/?lang=en")
        await browser.wait_for("document.readyState === 'complete'", what="the page")
        await browser.say("how do I withdraw from a training?")
        await browser.say("what are your hours?")
        await browser.script("document.getElementById('log').scrollTop = 0;")
        (conversation,) = await rows(app, Conversation)
        async with app.database.begin() as connection:
            staff = {"direction": "staff", "text": "Hello, this is Ana.", "now": utcnow()}
            await repo.add_transcript_entry(connection, conversation_id=conversation.id, **staff)
        await browser.wait_for(
            "!document.getElementById('new-message').hidden", what="the new-message marker"
        )
        assert await browser.script("return document.getElementById('log').scrollTop;") == 0  # no jump
        lang = await browser.script("return document.querySelector('.message.staff').lang;")
        assert lang == "en"
        await browser.run((await browser.run(browser.driver.find_element, By.ID, "new-message")).click)
        await browser.wait_for(
            "document.getElementById('new-message').hidden && document.getElementById('log').scrollTop > 0",
            what="the conversation at its newest message",
        )


async def test_the_page_works_320_pixels_wide(app: App, browser: Browser) -> None:
    # 320 px is also what 1280 px looks like at 400 % zoom, and 200 % zoom gives 640 px
    metrics = {"width": 320, "height": 640, "deviceScaleFactor": 1, "mobile": True}
    await browser.run(browser.driver.execute_cdp_cmd, "Emulation.setDeviceMetricsOverride", metrics)
    async with running_server(app, [WebChat(app)]) as (url, _):
        for lang in ("en", "es", "zh_Hans"):
            await browser.run(browser.driver.get, f"{url}/?lang={lang}")
            await browser.wait_for("document.readyState === 'complete'", what="the page")
            await browser.say(
                {"en": "I forgot my password", "es": "olvidé mi contraseña"}.get(lang, "忘记密码")
            )
            width = await browser.script("return document.documentElement.scrollWidth;")
            assert width <= 320, (lang, width)  # nothing to scroll sideways
            assert await violations(browser) == []
