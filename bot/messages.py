"""The channel-neutral shapes of what members send and what the assistant answers."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field

# NUL and the other control characters a chat message never needs (tab and line breaks stay), and halves
# of UTF-16 surrogate pairs that arrive alone: no database stores them and no page can show them.
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` without what cannot be stored or shown (NUL, control characters, lone surrogates)."""
    return _UNSTORABLE.sub("", text) if _UNSTORABLE.search(text) else text


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file the member sent (a document for an audit request or an appeal)."""

    filename: str
    content: bytes
    declared_type: str = ""


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message from a member, as any channel delivers it."""

    channel: str
    user_id: str
    delivery_id: str
    text: str = ""
    payload: str | None = None
    attachments: tuple[Attachment, ...] = ()
    language_hint: str | None = None
    display_name: str | None = None
    #: where the message came from when many chats can share it (a web visitor's IP address): limits
    #: counted on it hold for every chat opened from there
    client: str | None = None

    def storable(self) -> Inbound:
        """This message with what cannot be stored taken out of everything the member typed."""
        typed = {"text": self.text, "payload": self.payload, "display_name": self.display_name}
        cleaned = {key: storable(value) for key, value in typed.items() if value}
        changed = {key: value for key, value in cleaned.items() if value != typed[key]}
        return dataclasses.replace(self, **changed) if changed else self  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Choice:
    """A button: the label shown and the payload sent back when pressed. ``meaning`` is "yes" or "no" for
    a button that a typed yes or no also presses."""

    label: str
    payload: str
    meaning: str = ""


@dataclass(frozen=True, slots=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True, slots=True)
class Reply:
    """One message of the assistant: text plus optional buttons and links."""

    text: str
    choices: tuple[Choice, ...] = field(default_factory=tuple)
    links: tuple[Link, ...] = field(default_factory=tuple)


def replies_to_json(replies: list[Reply]) -> str:
    """Replies as JSON, to be kept with the message they answered."""
    return json.dumps(
        [
            {
                "text": reply.text,
                "choices": [[c.label, c.payload, c.meaning] for c in reply.choices],
                "links": [[link.label, link.url] for link in reply.links],
            }
            for reply in replies
        ],
        ensure_ascii=False,
    )


def replies_from_json(kept: str) -> list[Reply]:
    """The replies ``replies_to_json`` kept."""
    return [
        Reply(
            item["text"],
            tuple(Choice(*choice) for choice in item["choices"]),
            tuple(Link(*link) for link in item["links"]),
        )
        for item in json.loads(kept)
    ]
