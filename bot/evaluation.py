"""Scoring a questions file (``{"q", "lang", "registry", "topic"}`` per line) against the assistant, and
comparing a new model with the one in use on the evaluation files (the guard of ``kb train``)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.intents import Understander, Understanding
from bot.knowledge import KnowledgeBase
from bot.language import detect_language
from bot.understanding.message import Message
from bot.understanding.model import TopicModel
from bot.understanding.train import question_key

INTENT_TOPICS = {"hours": "contact-support", "human": "talk-to-person"}
# probability bands of the calibration line: how often an answer given with that probability was right
BANDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.01)


def topic_of(understanding: Understanding) -> str | None:
    """The topic id the assistant would answer with (what ``ask --json`` reports), or None."""
    if understanding.kind == "answer":
        return understanding.name
    if understanding.kind in ("intent", "command"):
        return INTENT_TOPICS.get(understanding.name or "")
    return None


def ask(understander: Understander, question: str, *, registry: str, lang: str = "auto") -> dict[str, Any]:
    """The ``ask --json`` record of one question."""
    detected = lang if lang != "auto" else (detect_language(question, understander.knowledge) or "en")
    understanding = understander.understand(Message.of(question, detected), registry)
    return {
        "question": question,
        "lang": detected,
        "topic": topic_of(understanding),
        "score": round(understanding.score, 4),
        "alternatives": list(understanding.alternatives),
    }


@dataclass
class Report:
    total: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    correct: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    out_of_scope: int = 0
    out_of_scope_correct: int = 0
    wrong_confident: int = 0
    lang_correct: int = 0
    questions: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    # per probability band: (answers given, answers right)
    calibration: dict[int, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    seen: int = 0  # questions that also stand, word for word, in the training data
    unseen_correct: int = 0

    def accuracy(self, lang: str | None = None) -> float:
        if lang is None:
            total, correct = sum(self.total.values()), sum(self.correct.values())
        else:
            total, correct = self.total[lang], self.correct[lang]
        return correct / total if total else 1.0

    @property
    def wrong_rate(self) -> float:
        return self.wrong_confident / self.questions if self.questions else 0.0

    def lines(self) -> list[str]:
        out = [
            f"{lang:8} {self.correct[lang]:4}/{self.total[lang]:<4} {self.accuracy(lang):7.1%}"
            for lang in sorted(self.total)
        ]
        out.append(
            f"{'overall':8} {sum(self.correct.values()):4}/{sum(self.total.values()):<4} "
            f"{self.accuracy():7.1%}"
        )
        out.append(f"out of scope handled: {self.out_of_scope_correct}/{self.out_of_scope}")
        out.append(
            f"wrong confident answers: {self.wrong_confident}/{self.questions} ({self.wrong_rate:.1%})"
        )
        out.append(f"language detected: {self.lang_correct}/{self.questions}")
        bands = []
        for band, (given, right) in sorted(self.calibration.items()):
            low, high = BANDS[band], min(BANDS[band + 1], 1.0)
            bands.append(f"{low:.1f}-{high:.1f}: {right}/{given} right")
        out.append("calibration (answers by probability): " + ("; ".join(bands) or "no answers"))
        unseen = self.questions - self.seen
        rest = self.unseen_correct / unseen if unseen else 1.0
        out.append(
            f"also in the training data: {self.seen}/{self.questions}; accuracy on the rest: {rest:.1%}"
        )
        return out


def _band(score: float) -> int:
    return next(i for i in range(len(BANDS) - 1) if BANDS[i] <= score < BANDS[i + 1])


def evaluate(
    understander: Understander,
    path: Path,
    *,
    trained_on: Mapping[str, set[str]] | None = None,
    registry: str | None = None,
) -> Report:
    """Score the questions of ``path`` (of ``registry`` alone when given); ``trained_on`` (per registry,
    the normalized training questions and article phrases) sets apart the questions the model saw word for
    word."""
    report = Report()
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        if registry is not None and item.get("registry", "ca") != registry:
            continue
        understood_as = ask(understander, item["q"], registry=item.get("registry", "ca"))
        expected, got = item.get("topic"), understood_as["topic"]
        lang = item.get("lang", "en")
        report.questions += 1
        report.total[lang] += 1
        if understood_as["lang"] == lang:
            report.lang_correct += 1
        seen = trained_on is not None and question_key(item["q"]) in trained_on.get(
            item.get("registry", "ca"), ()
        )
        report.seen += seen
        report.unseen_correct += got == expected and not seen
        if got == expected:
            report.correct[lang] += 1
        else:
            report.failures.append(
                {
                    **item,
                    "got": got,
                    "score": understood_as["score"],
                    "alternatives": understood_as["alternatives"],
                    "detected": understood_as["lang"],
                }
            )
        if expected is None:
            report.out_of_scope += 1
            report.out_of_scope_correct += got is None
        if got is not None:
            band = report.calibration[_band(understood_as["score"])]
            band[0] += 1
            band[1] += got == expected
            if got != expected:
                report.wrong_confident += 1
    return report


@dataclass(frozen=True, slots=True)
class Figures:
    """What one model did with one evaluation file's questions of its registry."""

    questions: int
    right: int
    wrong_confident: int
    out_of_scope: int
    declined: int  # out-of-scope questions no topic was given for

    @classmethod
    def of(cls, report: Report) -> Figures:
        return cls(
            report.questions,
            sum(report.correct.values()),
            report.wrong_confident,
            report.out_of_scope,
            report.out_of_scope_correct,
        )

    def __str__(self) -> str:
        share = self.right / self.questions if self.questions else 1.0
        return (
            f"{self.right}/{self.questions} right ({share:.1%}), {self.wrong_confident} wrong confident, "
            f"{self.declined}/{self.out_of_scope} out of scope declined"
        )


@dataclass(frozen=True, slots=True)
class Comparison:
    """The model in use and a new one on the same evaluation file."""

    path: Path
    current: Figures
    new: Figures

    @property
    def worse(self) -> list[str]:
        """What the new model does worse on this file (nothing: it may replace the current one)."""
        current, new = self.current, self.new
        return [
            what
            for what, worse in (
                ("fewer right", new.right < current.right),
                ("more wrong confident answers", new.wrong_confident > current.wrong_confident),
                ("fewer out of scope declined", new.declined < current.declined),
            )
            if worse
        ]

    def lines(self) -> list[str]:
        verdict = f"  <- worse: {', '.join(self.worse)}" if self.worse else ""
        return [f"  {self.path.name}", f"    current: {self.current}", f"    new:     {self.new}{verdict}"]


def compare(
    knowledge: KnowledgeBase,
    registry: str,
    *,
    current: TopicModel,
    new: TopicModel,
    files: Sequence[Path],
) -> list[Comparison]:
    """Both models of ``registry`` on each evaluation file that has questions of ``registry`` (the guard
    of ``kb train``: a new model worse on any file is not installed unless forced)."""
    before = Understander(knowledge, {registry: current})
    after = Understander(knowledge, {registry: new})
    comparisons = []
    for path in files:
        report = evaluate(before, path, registry=registry)
        if report.questions:
            comparisons.append(
                Comparison(path, Figures.of(report), Figures.of(evaluate(after, path, registry=registry)))
            )
    return comparisons
