"""Answer, ask back, or decline: the decision taken from the topic model's probabilities.

- The best topic reaches the answer threshold: answer with it.
- Otherwise a message of several sentences (background first, the question after) is read sentence by
  sentence: when the sentences that reach the threshold all name one topic, it is the answer; when they
  name several, the member is asked which.
- Otherwise, when "none of the topics" is the likeliest class or no topic reaches the clarify threshold,
  the assistant says what it can help with; else it offers the likely topics (those with at least a third
  of the best one's probability): "which of these did you mean?".

A topic whose ``not_about`` markers the message has (another service's password) is never chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bot.understanding.message import Message
from bot.understanding.model import OUT_OF_SCOPE, TopicModel

MIN_SENTENCE_WORDS = 3
MAX_ALTERNATIVES = 3
NEGLIGIBLE = 0.01  # a topic this unlikely is never answered, offered or checked

Verdict = Literal["answer", "clarify", "unknown"]


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    topic: str | None  # the answer's topic
    score: float  # the best topic's probability
    alternatives: tuple[str, ...] = ()  # the next likely topics (answer), or the topics offered (clarify)


def _ranked(
    model: TopicModel, message: Message, excluded: Callable[[str], bool]
) -> tuple[list[tuple[str, float]], float]:
    """The topics, most likely first, and the probability of none of them (excluded topics count there)."""
    topics, none = [], 0.0
    for topic, probability in model.ranked(message, floor=NEGLIGIBLE):  # the rest never matters
        if topic == OUT_OF_SCOPE or excluded(topic):
            none += probability
        else:
            topics.append((topic, probability))
    return topics, none


def decide(
    model: TopicModel, message: Message, *, excluded: Callable[[str], bool] = lambda _topic: False
) -> Decision:
    """What to do with ``message``; ``excluded(topic)`` says the message is about something else."""
    limits = model.thresholds
    ranked, none = _ranked(model, message, excluded)
    if not ranked:
        return Decision("unknown", None, 0.0)
    best, score = ranked[0]
    near = score / 3
    likely = tuple(t for t, p in ranked[1 : MAX_ALTERNATIVES + 1] if p >= max(near, limits.clarify))
    if score >= limits.answer:
        return Decision("answer", best, score, likely[: MAX_ALTERNATIVES - 1])
    sentences = message.sentences()
    if len(sentences) >= 2:
        sentences = [s for s in sentences if s.content_size >= MIN_SENTENCE_WORDS]
        named: dict[str, float] = {}
        for sentence in sentences:
            top, _ = _ranked(model, sentence, excluded)
            if top and top[0][1] >= limits.sentence:
                named[top[0][0]] = max(named.get(top[0][0], 0.0), top[0][1])
        if len(named) == 1:
            topic, sentence_score = next(iter(named.items()))
            return Decision("answer", topic, sentence_score, tuple(t for t in likely if t != topic)[:2])
        if named:
            chosen = sorted(named, key=named.__getitem__, reverse=True)[:MAX_ALTERNATIVES]
            return Decision("clarify", None, score, tuple(chosen))
    if none >= score or score < limits.clarify:
        return Decision("unknown", None, score)
    return Decision("clarify", None, score, tuple(t for t, p in ranked[:MAX_ALTERNATIVES] if p >= near))
