"""/metrics in the Prometheus format, and structured logs that name the conversation but never the text."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from bot.app import App
from bot.channels.web import WebChat, create_asgi
from bot.logs import configure
from tests.helpers import Chatter


async def test_metrics_count_turns_hand_offs_and_the_outbox(app: App) -> None:
    member = Chatter(app.engine, "metrics")
    await member.say("I forgot my password")
    await member.say("who won the football game last night")
    await member.say("I forgot my password", delivery_id="twice")
    await member.say("I forgot my password", delivery_id="twice")
    await member.say("talk to a person")
    await member.say("My certificate is missing")
    transport = httpx.ASGITransport(app=create_asgi(app, [WebChat(app, secret=b"k" * 32)]))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    body = response.text
    assert 'registry_bot_turns_total{channel="test",outcome="answer"} 2.0' in body
    assert 'registry_bot_turns_total{channel="test",outcome="unknown"} 1.0' in body
    assert 'registry_bot_turns_total{channel="test",outcome="duplicate"} 1.0' in body
    assert (
        'registry_bot_turns_total{channel="test",outcome="flow"} 2.0' in body
    )  # a person, then the question
    assert 'registry_bot_turn_seconds_count{channel="test"} 6.0' in body
    assert "registry_bot_handoffs_open 1.0" in body
    assert "registry_bot_outbox_backlog 0.0" in body


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


async def test_json_logs_name_the_conversation_never_the_text(
    app: App, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure("INFO", "json")
    await Chatter(app.engine, "logged").say("Mi hija está enferma. Olvidé mi contraseña, ¿cómo entro?")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    (turn,) = [line for line in lines if line["message"] == "turn handled"]
    assert turn["level"] == "info" and turn["channel"] == "test" and turn["outcome"] == "answer"
    assert isinstance(turn["conversation_id"], int) and turn["ms"] >= 0
    assert not any("hija" in json.dumps(line, ensure_ascii=False) for line in lines)
