"""Screenshots of the web chat for docs/screenshots/: a phone (390×844) and a desktop (1280×800) in English,
Spanish and Chinese, and the chat embedded on a registry's page with the one-line widget.

    python scripts/screenshots.py          # needs Debian's chromium and chromium-driver, and selenium

It runs `registry-bot serve`'s web chat on a demo database in a temporary directory and asks a question the
way a member does, so the pictures show real answers.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import tempfile
from pathlib import Path

import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app import App
from bot.channels.web import WebChat, create_asgi
from bot.config import PROJECT_DIR, Settings

OUT = PROJECT_DIR / "docs" / "screenshots"
QUESTIONS = {
    "en": "how do I withdraw from a training?",
    "es": "¿cómo me retiro de una capacitación?",
    "zh_Hans": "怎么退出培训？",
}
SIZES = {"phone": (390, 844, True), "desktop": (1280, 800, False)}


def bound_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


async def serve(asgi: object, sock: socket.socket) -> uvicorn.Server:
    config = uvicorn.Config(asgi, lifespan="on", log_config=None, access_log=False)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.05)
    return server


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def size(driver: webdriver.Chrome, width: int, height: int, mobile: bool) -> None:
    metrics = {"width": width, "height": height, "deviceScaleFactor": 2 if mobile else 1, "mobile": mobile}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


def ask(driver: webdriver.Chrome, question: str) -> None:
    box = driver.find_element(By.ID, "message")
    box.send_keys(question, Keys.ENTER)
    for _ in range(100):
        if driver.execute_script("return document.querySelectorAll('.message.assistant').length > 0;"):
            break
        driver.implicitly_wait(0.1)
    driver.execute_script("document.getElementById('log').scrollTop = 0;")


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        chat_sock, site_sock = bound_socket(), bound_socket()
        site_origin = f"http://localhost:{site_sock.getsockname()[1]}"
        settings = Settings(
            database_url=f"sqlite:///{workdir}/registry.db",
            web_secret="screenshots-secret-1234",  # type: ignore[arg-type]
            web_embed_origins=[site_origin],
        )
        app = App.build(settings)
        await app.migrate()
        await app.seed_demo()
        chat = await serve(create_asgi(app, [WebChat(app)]), chat_sock)
        chat_url = f"http://127.0.0.1:{chat_sock.getsockname()[1]}"
        page = (
            '<!doctype html><html lang="en"><head><title>California ECE Workforce Registry</title></head>'
            '<body style="font-family:system-ui;margin:2rem"><h1>California ECE Workforce Registry</h1>'
            "<p>Trainings, profiles and qualifications for early care and education professionals.</p>"
            f'<script src="{chat_url}/widget.js" async></script></body></html>'
        )
        site = await serve(Starlette(routes=[Route("/", lambda request: HTMLResponse(page))]), site_sock)
        driver = await asyncio.to_thread(browser)
        try:
            for lang, question in QUESTIONS.items():
                for name, (width, height, mobile) in SIZES.items():
                    await asyncio.to_thread(driver.delete_all_cookies)
                    await asyncio.to_thread(size, driver, width, height, mobile)
                    await asyncio.to_thread(driver.get, f"{chat_url}/?lang={lang}")
                    await asyncio.to_thread(ask, driver, question)
                    await asyncio.sleep(0.3)
                    await asyncio.to_thread(driver.save_screenshot, str(OUT / f"web-chat-{name}-{lang}.png"))
            await asyncio.to_thread(size, driver, 1280, 800, False)
            await asyncio.to_thread(driver.get, site_origin + "/")
            await asyncio.sleep(0.5)
            launcher = await asyncio.to_thread(driver.find_element, By.ID, "registry-bot-launcher")
            await asyncio.to_thread(driver.save_screenshot, str(OUT / "widget-closed.png"))
            await asyncio.to_thread(launcher.click)
            frame = await asyncio.to_thread(driver.find_element, By.ID, "registry-bot-frame")
            await asyncio.to_thread(driver.switch_to.frame, frame)
            await asyncio.sleep(0.5)
            await asyncio.to_thread(ask, driver, QUESTIONS["en"])
            await asyncio.to_thread(driver.switch_to.default_content)
            await asyncio.sleep(0.3)
            await asyncio.to_thread(driver.save_screenshot, str(OUT / "widget-open.png"))
        finally:
            await asyncio.to_thread(driver.quit)
            site.should_exit = chat.should_exit = True
            await asyncio.sleep(0.3)
            await app.close()
    print(f"screenshots in {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
