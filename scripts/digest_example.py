"""The content-gap digest as staff see it in Slack, for the README: docs/digest-example.json (the Block Kit
message the assistant posts) and docs/screenshots/digest.png (that JSON drawn the way Slack lays it out).

    python scripts/digest_example.py       # the picture needs Debian's chromium and chromium-driver

It plays a week on a demo database in a temporary directory: members ask questions, in three languages,
that the assistant cannot answer, and say whether some answers helped; then the digest is made from them.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app import App
from bot.channels.slack import digest_blocks
from bot.config import PROJECT_DIR, Settings
from bot.messages import Inbound

JSON_OUT = PROJECT_DIR / "docs" / "digest-example.json"
PICTURE_OUT = PROJECT_DIR / "docs" / "screenshots" / "digest.png"
# (member, what they say) in order; a press of "helped:yes|no" answers the last answer's thumbs
WEEK = [
    ("a", "does the registry have a mobile app for my phone"),
    ("b", "hay una aplicación para el celular del registro"),
    ("c", "登记系统有手机应用程序吗"),
    ("d", "is there an app I can download for the registry"),
    ("e", "existe app del registro para descargar en mi teléfono"),
    ("f", "can my daycare owner see all our teachers records"),
    ("g", "como dueña del centro puedo ver los datos de mis maestras"),
    ("h", "what is the training calendar"),
    ("h", "helped:yes"),
    ("i", "what is the training calendar"),
    ("i", "helped:no"),
    ("j", "¿qué es el calendario de capacitaciones?"),
    ("j", "helped:yes"),
    ("k", "how do I reset my password"),
    ("k", "helped:yes"),
    ("l", "怎么重设密码"),
    ("m", "what's the weather tomorrow"),
]


async def play_week(app: App) -> list[dict[str, Any]]:
    shown: dict[str, list[str]] = {}
    for number, (member, said) in enumerate(WEEK):
        payload = None
        if said.startswith("helped:"):
            payload = next(p for p in shown[member] if p.startswith("helped:") and p.endswith(said[7:]))
            said = ""
        result = await app.engine.turn(
            Inbound("web", f"member-{member}", f"week-{number}", text=said, payload=payload)
        )
        shown[member] = [choice.payload for reply in result.replies for choice in reply.choices]
    return digest_blocks(await app.gaps.digest())


def mrkdwn(text: str) -> str:
    """Slack's mrkdwn as HTML, enough for the digest: bold, italics, code, quotes, mentions, escapes."""
    out = []
    for line in text.split("\n"):
        quoted = line.startswith("&gt; ") or line.startswith("> ")
        line = re.sub(r"^(&gt;|>) ", "", line)
        line = html.escape(html.unescape(line), quote=False)
        line = re.sub(r"&lt;@(\w+)&gt;", r'<span class="mention">@\1</span>', line)
        line = re.sub(r"`([^`]+)`", r"<code>\1</code>", line)
        line = re.sub(r"\*([^*]+)\*", r"<b>\1</b>", line)
        line = re.sub(r"(?<!\w)_([^_]+)_(?!\w)", r"<i>\1</i>", line)
        out.append(f'<div class="quote">{line}</div>' if quoted else f"<div>{line or '&nbsp;'}</div>")
    return "".join(out)


def as_html(blocks: list[dict[str, Any]]) -> str:
    parts = []
    for block in blocks:
        kind = block["type"]
        if kind == "header":
            parts.append(f"<h1>{html.escape(block['text']['text'])}</h1>")
        elif kind == "divider":
            parts.append("<hr>")
        elif kind == "section":
            accessory = ""
            if block.get("accessory", {}).get("type") == "static_select":
                accessory = (
                    f'<span class="select">{html.escape(block["accessory"]["placeholder"]["text"])} ▾</span>'
                )
            parts.append(f'<div class="section"><div>{mrkdwn(block["text"]["text"])}</div>{accessory}</div>')
        elif kind == "context":
            parts.append(
                f'<div class="context">{"".join(mrkdwn(e["text"]) for e in block["elements"])}</div>'
            )
        elif kind == "actions":
            buttons = "".join(
                f'<span class="button">{html.escape(e["text"]["text"])}</span>' for e in block["elements"]
            )
            parts.append(f'<div class="actions">{buttons}</div>')
    style = """
    body { font: 15px/1.46 Lato, 'Noto Sans', 'Noto Sans CJK SC', sans-serif; color: #1d1c1d; margin: 0; }
    .message { display: flex; gap: 8px; padding: 16px 20px; width: 760px; }
    .avatar { width: 36px; height: 36px; border-radius: 6px; background: #2b6cb0; flex: none; }
    .name { font-weight: 900; }
    .app { background: #e8e8e8; font-size: 11px; padding: 1px 4px; border-radius: 3px; }
    h1 { font-size: 18px; margin: 6px 0; } hr { border: 0; border-top: 1px solid #ddd; margin: 10px 0; }
    .section { display: flex; justify-content: space-between; gap: 12px; margin: 4px 0; }
    .quote { border-left: 4px solid #ddd; padding-left: 8px; color: #444; }
    code { background: #f4f4f4; border: 1px solid #ddd; border-radius: 3px; padding: 0 3px; color: #c01343; }
    .select, .button { border: 1px solid #bbb; border-radius: 4px; padding: 3px 10px; font-weight: 700;
      font-size: 13px; white-space: nowrap; align-self: flex-start; }
    .actions { display: flex; gap: 8px; margin: 6px 0; } .context { font-size: 13px; color: #616061; }
    .mention { background: #e8f5fa; color: #1264a3; }
    """
    body = "".join(parts)
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><style>{style}</style></head><body>"
        f"<div class='message'><div class='avatar'></div><div><span class='name'>Registry help desk</span> "
        f"<span class='app'>APP</span>{body}</div></div></body></html>"
    )


def picture(page: str) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=820,400"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "digest.html"
            path.write_text(page, encoding="utf-8")
            driver.get(path.as_uri())
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(820, int(height) + 24)
            PICTURE_OUT.parent.mkdir(parents=True, exist_ok=True)
            driver.get_screenshot_as_file(str(PICTURE_OUT))
    finally:
        driver.quit()


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        app = App.build(Settings(database_url=f"sqlite+aiosqlite:///{Path(folder) / 'week.db'}"))
        try:
            await app.migrate()
            await app.seed_demo()
            blocks = await play_week(app)
        finally:
            await app.close()
    JSON_OUT.write_text(json.dumps({"blocks": blocks}, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {JSON_OUT}")
    if Path("/usr/bin/chromium").exists():
        picture(as_html(blocks))
        print(f"wrote {PICTURE_OUT}")


if __name__ == "__main__":
    asyncio.run(main())
