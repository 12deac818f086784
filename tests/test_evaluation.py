"""`registry-bot eval` on the public questions and the project's own: the quality bar of the matcher."""

from __future__ import annotations

from bot.app import load_knowledge
from bot.config import PROJECT_DIR
from bot.evaluation import evaluate
from bot.intents import Understander


def understander() -> Understander:
    return Understander(
        load_knowledge(PROJECT_DIR / "knowledge"), answer_threshold=0.62, clarify_threshold=0.40
    )


def test_public_questions_meet_the_bar() -> None:
    report = evaluate(understander(), PROJECT_DIR / "eval" / "questions.jsonl")
    for lang in ("en", "es", "zh_Hans"):
        assert report.accuracy(lang) >= 0.95, (lang, report.lines(), report.failures)
    assert report.out_of_scope_correct == report.out_of_scope
    assert report.wrong_confident / report.questions <= 0.02


def test_held_out_questions_written_the_way_members_write() -> None:
    # Typos, no accents, one-word and mixed-language questions, written without looking at the articles.
    report = evaluate(understander(), PROJECT_DIR / "eval" / "questions-more.jsonl")
    assert report.accuracy() >= 0.80, report.lines()
    assert report.wrong_confident / report.questions <= 0.02, report.lines()
    assert report.lang_correct / report.questions >= 0.97


def test_questions_from_members_written_before_tuning() -> None:
    # Written before the articles were given members' wording and never tuned against (see the file's
    # history): typos, no accents, chatty context, Cantonese and Traditional Chinese, other services.
    report = evaluate(understander(), PROJECT_DIR / "eval" / "questions-members.jsonl")
    assert report.accuracy() >= 0.88, report.lines()
    assert report.wrong_confident / report.questions <= 0.02, report.lines()
    assert report.lang_correct / report.questions >= 0.97


def test_questions_written_blind_by_someone_who_saw_only_the_topic_list() -> None:
    # Written on 2026-11-24 from knowledge-topics.md alone (no articles, no other questions), then used once
    # to check the "well supported" answer rule: 80.0 % before it, 85.9 % after, out of scope all declined.
    report = evaluate(understander(), PROJECT_DIR / "eval" / "questions-blind.jsonl")
    assert report.accuracy() >= 0.84, report.lines()
    assert report.out_of_scope_correct == report.out_of_scope, report.lines()
    assert report.wrong_confident / report.questions <= 0.02, report.lines()


def test_a_second_blind_set_written_after_the_rule_was_chosen() -> None:
    # Written the same way as questions-blind.jsonl, by another writer, after the "well supported" rule was
    # chosen: 75.7 % without the rule, 87.8 % with it; out of scope all declined.
    report = evaluate(understander(), PROJECT_DIR / "eval" / "questions-blind2.jsonl")
    assert report.accuracy() >= 0.85, report.lines()
    assert report.out_of_scope_correct == report.out_of_scope, report.lines()
    assert report.wrong_confident / report.questions <= 0.02, report.lines()


def test_a_third_blind_set_of_situations_and_long_stories() -> None:
    # Written blind like the others, with members describing situations and telling long stories: 63.3 %
    # before the "well supported" rule, 75.0 % with it. Its long messages then led to trying each sentence
    # of a message that is not answered whole (77.8 %), so it is no longer blind for that change.
    report = evaluate(understander(), PROJECT_DIR / "eval" / "questions-blind3.jsonl")
    assert report.accuracy() >= 0.76, report.lines()
    assert report.out_of_scope_correct == report.out_of_scope, report.lines()
    assert report.wrong_confident / report.questions <= 0.02, report.lines()
