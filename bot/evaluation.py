"""Scoring a questions file (``{"q", "lang", "registry", "topic"}`` per line) against the assistant."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.intents import Understander, Understanding
from bot.language import detect_language

INTENT_TOPICS = {"hours": "contact-support", "human": "talk-to-person"}


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
    understanding = understander.understand(question, registry, detected)
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

    def accuracy(self, lang: str | None = None) -> float:
        if lang is None:
            total, correct = sum(self.total.values()), sum(self.correct.values())
        else:
            total, correct = self.total[lang], self.correct[lang]
        return correct / total if total else 1.0

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
        rate = self.wrong_confident / self.questions if self.questions else 0.0
        out.append(f"wrong confident answers: {self.wrong_confident}/{self.questions} ({rate:.1%})")
        out.append(f"language detected: {self.lang_correct}/{self.questions}")
        return out


def evaluate(understander: Understander, path: Path) -> Report:
    report = Report()
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        result = ask(understander, item["q"], registry=item.get("registry", "ca"))
        expected, got = item.get("topic"), result["topic"]
        lang = item.get("lang", "en")
        report.questions += 1
        report.total[lang] += 1
        if result["lang"] == lang:
            report.lang_correct += 1
        if got == expected:
            report.correct[lang] += 1
        else:
            report.failures.append(
                {
                    **item,
                    "got": got,
                    "score": result["score"],
                    "alternatives": result["alternatives"],
                    "detected": result["lang"],
                }
            )
        if expected is None:
            report.out_of_scope += 1
            report.out_of_scope_correct += got is None
        if got is not None and got != expected:
            report.wrong_confident += 1
    return report
