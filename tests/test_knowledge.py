"""The knowledge base: every article present and sound, `kb check` catching mistakes, search quality."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.app import load_knowledge
from bot.config import LANGUAGES, PROJECT_DIR
from bot.flows import FLOWS
from bot.intents import Understander
from bot.knowledge import check

KNOWLEDGE = PROJECT_DIR / "knowledge"
TOPICS_FILE = PROJECT_DIR.parent / "shared" / "knowledge-topics.md"
CA_TOPICS = {
    "registry-overview",
    "create-profile",
    "find-registry-id",
    "document-submission",
    "audit-request",
    "audit-coursework",
    "appeal",
    "training-calendar",
    "enroll-training",
    "withdraw-training",
    "withdraw-unavailable",
    "sponsor-past-training",
    "sponsor-edit-event",
    "sponsor-change-hours",
    "activate-account",
    "forgot-password",
    "forgot-email",
    "duplicate-profile",
    "update-profile",
    "document-status",
    "training-hours-report",
    "employer-admin-access",
    "staff-confirmation",
    "become-sponsor",
    "child-development-permit",
    "privacy",
    "contact-support",
    "talk-to-person",
}
CT_TOPICS = {
    "ct-registry-overview",
    "ct-who-can-join",
    "ct-benefits",
    "ct-application-portal",
    "ct-program-admin-tools",
    "ct-submit-documents",
    "ct-career-ladder",
    "ct-head-teacher",
    "ct-oec-programs",
    "contact-support",
    "talk-to-person",
}


def test_every_topic_has_an_article_in_every_language() -> None:
    kb = load_knowledge(KNOWLEDGE)
    assert set(kb.topics("ca")) == CA_TOPICS
    assert set(kb.topics("ct")) == CT_TOPICS
    for registry, topics in (("ca", CA_TOPICS), ("ct", CT_TOPICS)):
        for topic in topics:
            for lang in LANGUAGES:
                article = kb.articles.get((registry, lang, topic))
                assert article is not None, (registry, lang, topic)
                assert len(article.questions) >= 5 and article.body


def test_the_shipped_knowledge_base_is_sound() -> None:
    assert check(KNOWLEDGE, known_flows=FLOWS) == []


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    root = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE / "ct", root / "ct")
    return root


def test_check_finds_a_missing_translation(broken: Path) -> None:
    (broken / "ct" / "es" / "ct-benefits.md").unlink()
    assert check(broken, known_flows=FLOWS) == ["knowledge/ct/es/ct-benefits.md: missing translation"]


def test_check_finds_an_id_that_does_not_match_its_file(broken: Path) -> None:
    path = broken / "ct" / "en" / "ct-benefits.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace("id: ct-benefits", "id: ct-benefit"), encoding="utf-8"
    )
    assert any("does not match the file name" in p for p in check(broken, known_flows=FLOWS))


def test_check_finds_a_broken_related_link(broken: Path) -> None:
    path = broken / "ct" / "en" / "ct-benefits.md"
    raw = path.read_text(encoding="utf-8")
    start = raw.index("related:")
    end = raw.index("\n", start)
    path.write_text(raw[:start] + "related: [ct-nowhere]" + raw[end:], encoding="utf-8")
    assert any("'ct-nowhere' does not exist" in p for p in check(broken, known_flows=FLOWS))


def test_check_finds_bad_front_matter(broken: Path) -> None:
    (broken / "ct" / "en" / "ct-benefits.md").write_text("---\nid: [unclosed\n---\nBody\n", encoding="utf-8")
    (broken / "ct" / "es" / "ct-benefits.md").write_text("No front matter at all\n", encoding="utf-8")
    problems = check(broken, known_flows=FLOWS)
    assert any("not valid YAML" in p for p in problems)
    assert any("no front matter" in p for p in problems)


def test_check_finds_an_unknown_flow(broken: Path) -> None:
    path = broken / "ct" / "en" / "talk-to-person.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace("flow: handoff", "flow: teleport"), encoding="utf-8"
    )
    assert any("unknown flow 'teleport'" in p for p in check(broken, known_flows=FLOWS))


@pytest.fixture(scope="module")
def understander() -> Understander:
    return Understander(load_knowledge(KNOWLEDGE), answer_threshold=0.62, clarify_threshold=0.40)


@pytest.mark.parametrize(
    ("question", "registry", "topic"),
    [
        ("withdrwa from trainng", "ca", "withdraw-training"),
        ("I forgot my pasword", "ca", "forgot-password"),
        ("olvide mi contrasena", "ca", "forgot-password"),
        ("¿Cómo me retiro de una capacitación?", "ca", "withdraw-training"),
        ("我忘記了我的密碼", "ca", "forgot-password"),  # Traditional characters
        ("點樣退出培訓", "ca", "withdraw-training"),  # Cantonese wording
        ("password", "ca", "forgot-password"),
        ("密码", "ca", "forgot-password"),
        ("There is no withdraw button on my training", "ca", "withdraw-unavailable"),
        ("How do I withdraw from a training?", "ca", "withdraw-training"),
        ("What do I need for an audit about college courses?", "ca", "audit-coursework"),
        ("my audit was denied", "ca", "appeal"),
        ("what is my career ladder level", "ct", "ct-career-ladder"),
    ],
)
def test_search_finds_the_right_topic(
    understander: Understander, question: str, registry: str, topic: str
) -> None:
    understanding = understander.understand(question, registry)
    assert (understanding.kind, understanding.name) == ("answer", topic)


@pytest.mark.parametrize(
    "question",
    [
        "What's the weather in Sacramento today?",
        "Can you help me file my taxes?",
        "¿Cuál es la receta de la paella?",
        "今天股票行情怎么样？",
        "asdfgh qwerty",
        "who won the football game",
        "whats 2+2",
    ],
)
def test_out_of_scope_questions_get_no_topic(understander: Understander, question: str) -> None:
    assert understander.understand(question, "ca").kind in ("unknown", "clarify")


def test_a_lone_common_word_asks_instead_of_guessing(understander: Understander) -> None:
    understanding = understander.understand("training", "ca")
    assert understanding.kind == "clarify" and len(understanding.alternatives) >= 2
