"""The knowledge base: every article present and sound, `kb check` catching mistakes, what questions get."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot import text
from bot.app import load_knowledge
from bot.config import LANGUAGES, PROJECT_DIR
from bot.flows import FLOWS
from bot.intents import Understander, Understanding
from bot.knowledge import check
from bot.language import detect_language
from bot.understanding.message import Message
from bot.understanding.store import load_models

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


def test_check_finds_a_not_about_entry_that_leaves_out_the_topics_own_question(broken: Path) -> None:
    path = broken / "ct" / "en" / "ct-benefits.md"
    raw = path.read_text(encoding="utf-8")
    path.write_text(raw.replace("\nsource:", "\nnot_about:\n  - benefits\nsource:", 1), encoding="utf-8")
    assert any("not_about entry 'benefits' would leave out" in p for p in check(broken, known_flows=FLOWS))


def test_check_finds_a_not_about_that_is_not_a_list(broken: Path) -> None:
    path = broken / "ct" / "en" / "ct-benefits.md"
    raw = path.read_text(encoding="utf-8")
    path.write_text(raw.replace("\nsource:", "\nnot_about: netflix\nsource:", 1), encoding="utf-8")
    assert any("'not_about' is not a list" in p for p in check(broken, known_flows=FLOWS))


@pytest.fixture(scope="module")
def understander() -> Understander:
    knowledge = load_knowledge(KNOWLEDGE)
    return Understander(knowledge, load_models(PROJECT_DIR, tuple(knowledge.registries())))


def understand(
    understander: Understander, question: str, registry: str, lang: str | None = None
) -> Understanding:
    """What the assistant makes of ``question`` (its language detected as the engine does)."""
    detected = lang or detect_language(question, understander.knowledge) or "en"
    return understander.understand(Message.of(question, detected), registry)


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
    understanding = understand(understander, question, registry)
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
    assert understand(understander, question, "ca").kind in ("unknown", "clarify")


def test_a_lone_common_word_asks_instead_of_guessing(understander: Understander) -> None:
    understanding = understand(understander, "training", "ca")
    assert understanding.kind == "clarify" and len(understanding.alternatives) >= 2


@pytest.mark.parametrize(
    "question",
    [
        "i forgot my netflix password",
        "how do I reset my facebok password",
        "olvidé la contraseña de mi correo de gmail",
        "微信密碼唔記得咗",
    ],
)
def test_another_services_password_is_not_the_registrys(understander: Understander, question: str) -> None:
    # forgot-password lists other services in its not_about: the question gets no topic, not a wrong one
    assert understand(understander, question, "ca").name != "forgot-password"


def test_the_registrys_own_password_still_finds_its_article(understander: Understander) -> None:
    assert understand(understander, "forgot my password for the registry", "ca").name == "forgot-password"


def test_system_and_contact_survive_the_cantonese_mapping() -> None:
    # 係 (Cantonese "is") becomes 是, but not inside 系统 (system) or 联系 (contact)
    assert text.normalize("登記系統") == "登记系统"
    assert text.normalize("點樣聯繫你哋").startswith("怎么联系")
    assert text.normalize("你係邊個") == "你是谁"
    assert text.normalize("收唔到啟用電郵") == "收不到启用邮件"


def test_asking_what_something_is_prefers_the_overview(understander: Understander) -> None:
    for question, lang in (("what is this registry even for", "en"), ("que es el registro", "es")):
        assert understand(understander, question, "ca", lang).name == "registry-overview", question


def test_everyday_context_counts_less_than_another_subject(understander: Understander) -> None:
    chatty = "so i signed up for a workshop but my daughter is sick on saturday, how do i drop it"
    understood = understand(understander, chatty, "ca", "en")
    # the member's story does not drown the question: it is answered or asked back about, never dropped
    assert understood.kind in ("answer", "clarify")
    assert "withdraw-training" in (understood.name, *understood.alternatives[:1])


def test_background_first_and_the_question_after_is_answered(understander: Understander) -> None:
    story = (
        "Hi there. I have been working with toddlers for eleven years and my new director says a lot of "
        "things. What is my registry ID and where do I find it?"
    )
    assert understand(understander, story, "ca", "en").name == "find-registry-id"


def test_a_short_generic_sentence_does_not_decide_a_long_message(understander: Understander) -> None:
    # "where do i start??" alone matches many phrases; it must not answer for the sentence before it
    message = "new teacher here, i need to make an account so i can take trainings. where do i start??"
    understood = understand(understander, message, "ca", "en")
    assert understood.name != "duplicate-profile"
    assert "create-profile" in (understood.name, *understood.alternatives)


def test_a_polite_story_about_something_else_still_gets_no_topic(understander: Understander) -> None:
    message = "Good morning. My landlord wants the deposit by Friday. How do I pay my rent online?"
    assert understand(understander, message, "ca", "en").kind in ("unknown", "clarify")


@pytest.mark.parametrize(
    "message",
    [
        "I forgot my gmail password. How do I reset my password to log in?",
        "My gmail account is locked. I forgot my password and cannot sign in, how do I reset it?",
    ],
)
def test_a_sentence_is_checked_against_the_whole_messages_not_about_markers(
    understander: Understander, message: str
) -> None:
    assert understand(understander, message, "ca", "en").name != "forgot-password"


def test_sentences_about_two_topics_are_asked_back_about(understander: Understander) -> None:
    message = (
        "I reset my forgotten password yesterday and logged in fine. "
        "How do I withdraw from a training I enrolled in?"
    )
    understood = understand(understander, message, "ca", "en")
    assert understood.kind == "clarify" and "withdraw-training" in understood.alternatives
