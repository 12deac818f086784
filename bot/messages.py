"""The channel-neutral shapes of what members send and what the assistant answers."""

from __future__ import annotations

from dataclasses import dataclass, field


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
