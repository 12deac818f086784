"""How well the content-gap digest groups questions: training questions of twelve topics (all of them when a
registry has fewer), three per language each, chosen with a fixed seed, are grouped as a digest would group
them and compared with their topics. Only training files are read, never evaluation files.

    python scripts/gap_grouping.py
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import LANGUAGES, PROJECT_DIR
from bot.knowledge import KnowledgeBase
from bot.understanding.gaps import ArticleSpace, Question, group
from bot.understanding.model import TopicModel
from bot.understanding.store import model_path

TOPICS, PER_LANGUAGE, SEED = 12, 3, 1


def sample(registry: str) -> list[dict[str, str]]:
    questions = [
        item
        for path in sorted((PROJECT_DIR / "training").glob("questions-written-*.jsonl"))
        for item in map(json.loads, path.read_text(encoding="utf-8").splitlines())
        if item.get("registry", "ca") == registry and item.get("topic")
    ]
    chooser = random.Random(SEED)
    every = sorted({q["topic"] for q in questions})
    topics = chooser.sample(every, min(TOPICS, len(every)))
    chosen = []
    for topic in topics:
        for lang in LANGUAGES:
            pool = [q for q in questions if q["topic"] == topic and q["lang"] == lang]
            chosen += chooser.sample(pool, min(PER_LANGUAGE, len(pool)))
    return chosen


def main() -> None:
    knowledge = KnowledgeBase.load(PROJECT_DIR / "knowledge")
    for registry in knowledge.registries():
        questions = sample(registry)
        space = ArticleSpace(knowledge, registry, TopicModel.load(model_path(PROJECT_DIR, registry)))
        groups = group([Question(q["q"], q["lang"]) for q in questions], space)
        right = sum(Counter(questions[i]["topic"] for i in g).most_common(1)[0][1] for g in groups)
        mixed_languages = sum(1 for g in groups if len({questions[i]["lang"] for i in g}) > 1)
        topics = len({q["topic"] for q in questions})
        print(
            f"{registry}: {len(questions)} questions of {topics} topics -> {len(groups)} groups, "
            f"{right / len(questions):.1%} in a group of their own topic, "
            f"{mixed_languages} groups in more than one language"
        )


if __name__ == "__main__":
    main()
