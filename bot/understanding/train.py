"""Training the topic model: a build step (``registry-bot kb train``), never done at start-up.

The examples are every article's title, example questions and keywords, its ``not_about`` entries (as
"none of the topics"), and the training question files (``training/*.jsonl``); evaluation files
(``eval/``) are never read here. The features (``features.py``) are weighted by TF-IDF and fed to a
multinomial logistic regression; everything is deterministic, so the same inputs give the same model.
The thresholds of the answer rule are chosen from out-of-fold predictions on the training questions, so
they too come from training data alone. Needs scikit-learn (the ``train`` extra).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bot import text
from bot.knowledge import KnowledgeBase
from bot.understanding import features as features_module
from bot.understanding.features import char_features, word_features
from bot.understanding.message import Message
from bot.understanding.model import MIN_SPELLING, OUT_OF_SCOPE

logger = logging.getLogger(__name__)

C = 10.0  # inverse regularization of the logistic regression
FOLDS = 5
SEED = 0
# what a wrong confident answer costs against a question asked back about or declined
WRONG_ANSWER_COST = 4.0
# the sources whose change changes the model: the features, the normalization, and training itself
_FEATURE_SOURCES = (
    Path(features_module.__file__),
    Path(features_module.__file__).parent.parent / "text.py",
    Path(__file__),
)


class TrainingError(ValueError):
    """Training cannot go ahead (an evaluation file among the training files, a bad line)."""


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    lang: str
    topic: str  # OUT_OF_SCOPE for questions no topic answers
    source: str  # "knowledge" or the training file's name


def knowledge_examples(knowledge: KnowledgeBase, registry: str) -> list[Example]:
    """Titles, example questions and keywords of the registry's articles; not_about entries as none."""
    out = []
    for (reg, lang, topic), article in sorted(knowledge.articles.items()):
        if reg != registry:
            continue
        for phrase in (article.title, *article.questions, *article.keywords):
            out.append(Example(phrase, lang, topic, "knowledge"))
        out.extend(Example(entry, lang, OUT_OF_SCOPE, "knowledge") for entry in article.not_about)
    return out


def file_examples(paths: Sequence[Path], registry: str, topics: Iterable[str]) -> list[Example]:
    """The questions of the training files that belong to ``registry``."""
    known = set(topics)
    out = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                question, lang = str(item["q"]), str(item["lang"])
            except (ValueError, KeyError, TypeError) as error:
                raise TrainingError(f"{path}:{number}: not a question line ({error})") from error
            if item.get("registry", "ca") != registry:
                continue
            topic = item.get("topic") or OUT_OF_SCOPE
            if topic != OUT_OF_SCOPE and topic not in known:
                raise TrainingError(f"{path}:{number}: unknown topic {topic!r} for {registry}")
            out.append(Example(question, lang, topic, path.name))
    return out


def distinct(questions: Sequence[Example], own: Sequence[Example]) -> list[Example]:
    """The questions once each (by their normalized words), without those that are an article's own
    phrases: a twin in another fold would make the cross-validated thresholds look better than they are."""
    seen = {question_key(example.text) for example in own}
    out = []
    for example in questions:
        key = question_key(example.text)
        if key not in seen:
            seen.add(key)
            out.append(example)
    return out


def question_key(question: str) -> str:
    """A question's normalized words: two questions with the same key are the same question."""
    return " ".join(text.words(question))


def trained_on(knowledge: KnowledgeBase, training: Sequence[Path]) -> dict[str, set[str]]:
    """Per registry, the keys of every question and article phrase the models learn from."""
    return {
        registry: {
            question_key(example.text)
            for example in [
                *knowledge_examples(knowledge, registry),
                *file_examples(training, registry, knowledge.topics(registry)),
            ]
        }
        for registry in knowledge.registries()
    }


def refuse_evaluation_files(training: Sequence[Path], evaluation: Sequence[Path]) -> None:
    """Raise ``TrainingError`` when a training file is also an evaluation file (by name or content)."""
    held_out = {path.resolve(): path for path in evaluation}
    digests = {hashlib.sha256(path.read_bytes()).hexdigest(): path for path in evaluation}
    for path in training:
        twin = held_out.get(path.resolve()) or digests.get(hashlib.sha256(path.read_bytes()).hexdigest())
        if twin is None:
            twin = next((e for e in evaluation if e.name == path.name), None)
        if twin is not None:
            raise TrainingError(
                f"{path} is also an evaluation file ({twin}); held-out files are never trained on"
            )


def inputs_hash(knowledge_root: Path, registry: str, training: Sequence[Path]) -> str:
    """A digest of everything the model of ``registry`` is made from: its articles, the training files,
    the feature code and the training settings. A shipped model whose hash differs is out of date."""
    digest = hashlib.sha256()
    settings = {
        "features": features_module.VERSION,
        "C": C,
        "folds": FOLDS,
        "seed": SEED,
        "cost": WRONG_ANSWER_COST,
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    files = sorted((knowledge_root / registry).glob("*/*.md")) + sorted(training) + list(_FEATURE_SOURCES)
    for path in files:
        name = str(path.relative_to(knowledge_root)) if path.is_relative_to(knowledge_root) else path.name
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _message(example: Example) -> Message:
    return Message.of(example.text, example.lang)


def _vectorizers() -> tuple[Any, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    word = TfidfVectorizer(analyzer=lambda m: word_features(m.words, m.lang), sublinear_tf=True)
    char = TfidfVectorizer(analyzer=lambda m: char_features(m.words), sublinear_tf=True)
    return word, char


@dataclass
class Fitted:
    """A trained model before export: its classes, vectorizers, classifier and the words it has seen."""

    classes: list[str]
    word: Any
    char: Any
    classifier: Any
    spellings: list[str]

    def probabilities(self, messages: Sequence[Message]) -> npt.NDArray[np.float64]:
        from scipy.sparse import hstack

        matrix = hstack([self.word.transform(messages), self.char.transform(messages)]).tocsr()
        result: npt.NDArray[np.float64] = self.classifier.predict_proba(matrix)
        return result


def fit(examples: Sequence[Example]) -> Fitted:
    """Fit the vectorizers and the classifier on ``examples`` (deterministic)."""
    from scipy.sparse import hstack
    from sklearn.linear_model import LogisticRegression

    messages = [_message(example) for example in examples]
    labels = [example.topic for example in examples]
    word, char = _vectorizers()
    matrix = hstack([word.fit_transform(messages), char.fit_transform(messages)]).tocsr()
    classifier = LogisticRegression(C=C, max_iter=5000, random_state=SEED)
    classifier.fit(matrix, labels)
    return Fitted([str(c) for c in classifier.classes_], word, char, classifier, spellings(messages))


def spellings(messages: Sequence[Message]) -> list[str]:
    """The Latin words of the examples, which a misspelt word of a question is corrected to."""
    return sorted({w for m in messages for w in m.words if len(w) >= MIN_SPELLING and not text.is_cjk(w)})


def out_of_fold(knowledge: list[Example], questions: list[Example]) -> npt.NDArray[np.float64]:
    """Probabilities for each training question from a model that never saw it (k-fold; the articles'
    own phrases are in every fold's training part). Columns follow ``sorted`` class names."""
    from sklearn.model_selection import StratifiedKFold

    classes = sorted({example.topic for example in [*knowledge, *questions]})
    result = np.zeros((len(questions), len(classes)))
    labels = [example.topic for example in questions]
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=SEED)
    for train_rows, test_rows in folds.split(np.zeros(len(labels)), labels):
        fitted = fit([*knowledge, *(questions[i] for i in train_rows)])
        probabilities = fitted.probabilities([_message(questions[i]) for i in test_rows])
        columns = [classes.index(name) for name in fitted.classes]
        for row, values in zip(test_rows, probabilities, strict=True):
            result[row, columns] = values
    return result


def choose_thresholds(
    probabilities: npt.NDArray[np.float64], labels: Sequence[str], classes: Sequence[str]
) -> dict[str, float]:
    """The answer threshold that does best on out-of-fold predictions, a wrong answer costing
    ``WRONG_ANSWER_COST`` right ones; and the clarify threshold under which half of the out-of-scope
    questions' best topic falls (they are declined rather than asked back about)."""
    best = probabilities.argmax(axis=1)
    top = probabilities.max(axis=1)
    predicted = np.array([classes[i] for i in best])
    truth = np.array(labels)
    topical = predicted != OUT_OF_SCOPE
    candidates = np.round(np.arange(0.20, 0.91, 0.01), 2)
    scores = []
    for threshold in candidates:
        answered = topical & (top >= threshold)
        right = (answered & (predicted == truth)) | (~answered & (truth == OUT_OF_SCOPE))
        wrong = answered & (predicted != truth)
        scores.append(right.sum() - WRONG_ANSWER_COST * wrong.sum())
    answer = float(candidates[int(np.argmax(scores))])
    none = classes.index(OUT_OF_SCOPE)
    topic_columns = [i for i in range(len(classes)) if i != none]
    out_of_scope_rows = truth == OUT_OF_SCOPE
    best_topic = probabilities[:, topic_columns].max(axis=1)
    clarify = float(np.median(best_topic[out_of_scope_rows])) if out_of_scope_rows.any() else 0.2
    clarify = round(min(max(clarify, 0.1), 0.3), 2)
    return {"answer": answer, "clarify": clarify, "sentence": answer}


def export(fitted: Fitted, info: dict[str, Any]) -> dict[str, npt.NDArray[Any]]:
    """The arrays of a model file (see ``model.TopicModel``)."""
    classes = list(fitted.classes)
    order = [classes.index(c) for c in classes if c != OUT_OF_SCOPE] + [classes.index(OUT_OF_SCOPE)]
    coef = fitted.classifier.coef_[order]
    intercept = fitted.classifier.intercept_[order]

    def vocabulary(vectorizer: Any) -> npt.NDArray[np.str_]:
        names = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
        return np.array(names, dtype=np.str_)

    return {
        "classes": np.array([classes[i] for i in order], dtype=np.str_),
        "word_vocabulary": vocabulary(fitted.word),
        "word_idf": fitted.word.idf_.astype(np.float32),
        "char_vocabulary": vocabulary(fitted.char),
        "char_idf": fitted.char.idf_.astype(np.float32),
        "weights": np.ascontiguousarray(coef.T.astype(np.float32)),
        "intercept": intercept.astype(np.float32),
        "spellings": np.array(fitted.spellings, dtype=np.str_),
        "info": np.array(json.dumps(info, sort_keys=True)),
    }


def train(
    knowledge: KnowledgeBase, registry: str, *, knowledge_root: Path, training: Sequence[Path]
) -> dict[str, npt.NDArray[Any]]:
    """Train the model of ``registry`` and return its arrays (write them with ``save``)."""
    own = knowledge_examples(knowledge, registry)
    questions = distinct(file_examples(training, registry, knowledge.topics(registry)), own)
    classes = sorted({example.topic for example in [*own, *questions]} | {OUT_OF_SCOPE})
    if questions and any(example.topic == OUT_OF_SCOPE for example in questions):
        probabilities = out_of_fold(own, questions)
        thresholds = choose_thresholds(probabilities, [q.topic for q in questions], classes)
    else:
        thresholds = {"answer": 0.5, "clarify": 0.2, "sentence": 0.5}
    fitted = fit([*own, *questions])
    info = {
        "registry": registry,
        "inputs_hash": inputs_hash(knowledge_root, registry, training),
        "trained_on": ["knowledge", *sorted(path.name for path in training)],
        "examples": len(own) + len(questions),
        "thresholds": thresholds,
    }
    logger.info("trained %s on %d examples; thresholds %s", registry, info["examples"], thresholds)
    return export(fitted, info)


def save(arrays: dict[str, npt.NDArray[Any]], path: Path) -> None:
    """Write a model file; the same arrays always give the same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp.npz")
    np.savez_compressed(temporary, **arrays)  # type: ignore[arg-type]
    temporary.replace(path)


def stale_models(knowledge: KnowledgeBase, content_dir: Path) -> list[str]:
    """A line for each registry whose shipped model is missing or was trained on other inputs than the
    current articles, training files and feature code (``registry-bot kb train`` rebuilds them)."""
    from bot.understanding.model import ModelError, TopicModel
    from bot.understanding.store import model_path, training_files

    problems = []
    for registry in knowledge.registries():
        path = model_path(content_dir, registry)
        if not path.is_file():
            problems.append(f"{path}: no model; run registry-bot kb train")
            continue
        try:
            shipped = TopicModel.load(path).inputs_hash
        except ModelError as error:
            problems.append(str(error))
            continue
        expected = inputs_hash(content_dir / "knowledge", registry, training_files(content_dir))
        if shipped != expected:
            problems.append(f"{path}: trained on other inputs than today's; run registry-bot kb train")
    return problems
