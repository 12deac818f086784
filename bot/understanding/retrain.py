"""Training again with what the help desk taught: staff's labels as one more question file.

Staff label members' questions in Slack (``training_labels``). ``registry-bot kb train`` gives a
registry's labels to ``train.train`` as a question file of their own (the shape ``kb labels export``
writes), after the training files, so a training file's question is kept over a label with the same words.
A label whose topic is not a topic of its registry is left out: a label never moves a question to a topic
of another registry, nor to an article that is gone. Nor is a label worded like an evaluation question
trained on: the evaluation files stay held out.

The model's ``inputs_hash`` stays the hash of the files alone (``kb check`` compares it, and CI has no
labels); the labels it learnt from are recorded apart, as ``labels`` (how many) and ``labels_hash``.
``train.py`` itself is not changed for this: it is one of the inputs every shipped model is hashed with.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from bot.knowledge import KnowledgeBase
from bot.understanding import train
from bot.understanding.model import TopicModel
from bot.understanding.train import Example

LABELS = "labels"  # the examples' source, and the name the labels' question file is trained under


class StaffLabel(Protocol):
    """What training needs of a stored label (``bot.registry.learning.Label`` is one)."""

    @property
    def id(self) -> int: ...
    @property
    def registry(self) -> str: ...
    @property
    def language(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def topic(self) -> str: ...


def question_line(text: str, *, lang: str, registry: str, topic: str) -> str:
    """One line of a question file (``training/*.jsonl``): ``{"q", "lang", "registry", "topic"}``."""
    return json.dumps({"q": text, "lang": lang, "registry": registry, "topic": topic}, ensure_ascii=False)


def held_out(evaluation: Sequence[Path], registry: str) -> set[str]:
    """The normalized words of every evaluation question of ``registry``: a label worded like one is not
    trained on (the evaluation files stay held out, whatever members happen to type)."""
    keys = set()
    for path in evaluation:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                if item.get("registry", "ca") == registry:
                    keys.add(train.question_key(str(item["q"])))
    return keys


def label_examples(
    labels: Iterable[StaffLabel], registry: str, topics: Iterable[str], *, held_out: Iterable[str] = ()
) -> tuple[list[Example], list[str]]:
    """The labels of ``registry`` to train on, and a warning for each one left out: its topic is not one
    of ``topics`` (the registry's topics today), or it is worded like a ``held_out`` question."""
    known, evaluation = set(topics), set(held_out)
    examples, warnings = [], []
    for label in labels:
        if label.registry != registry:
            continue
        about = f"label {label.id} ({registry}, {label.text[:60]!r})"
        if label.topic not in known:
            warnings.append(f"{about}: {label.topic!r} is not a topic of {registry}; not trained on")
        elif train.question_key(label.text) in evaluation:
            warnings.append(f"{about}: an evaluation question; not trained on")
        else:
            examples.append(Example(label.text, label.language, label.topic, LABELS))
    return examples, warnings


def labels_hash(examples: Iterable[Example]) -> str:
    """A digest of the (language, text, topic) of the labels a model learns from, in any order."""
    triples = sorted((example.lang, example.text, example.topic) for example in examples)
    return hashlib.sha256(json.dumps(triples, ensure_ascii=False).encode()).hexdigest()


NO_LABELS = labels_hash(())  # what a model trained without labels (a shipped one) learnt from


def train_with_labels(
    knowledge: KnowledgeBase,
    registry: str,
    *,
    knowledge_root: Path,
    training: Sequence[Path],
    labels: Sequence[Example],
) -> dict[str, npt.NDArray[Any]]:
    """``train.train`` on the training files and then ``labels``; without labels, exactly ``train.train``
    (the model a checkout without a database makes)."""
    if not labels:
        return train.train(knowledge, registry, knowledge_root=knowledge_root, training=training)
    with tempfile.TemporaryDirectory(prefix="registry-bot-labels-") as folder:
        questions = Path(folder) / LABELS
        lines = (question_line(e.text, lang=e.lang, registry=registry, topic=e.topic) for e in labels)
        questions.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        arrays = train.train(
            knowledge, registry, knowledge_root=knowledge_root, training=[*training, questions]
        )
    info = json.loads(str(arrays["info"]))
    info["inputs_hash"] = train.inputs_hash(knowledge_root, registry, training)  # the files alone
    info["labels"] = len(labels)
    info["labels_hash"] = labels_hash(labels)
    arrays["info"] = np.array(json.dumps(info, sort_keys=True))
    return arrays


def up_to_date(model: TopicModel, *, inputs: str, labels: str) -> bool:
    """Whether ``model`` was trained on the inputs (``train.inputs_hash``) and labels (``labels_hash``)
    training would use now."""
    return model.inputs_hash == inputs and str(model.info.get("labels_hash", NO_LABELS)) == labels
