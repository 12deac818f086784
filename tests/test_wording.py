"""`kb check` holds the three languages together: agreed terms, and every fact of the English kept."""

from __future__ import annotations

import shutil
from pathlib import Path

from bot import wording
from bot.config import PROJECT_DIR

ENGLISH = """---
id: forgot-password
kind: article
title: Resetting a forgotten password
questions: [I forgot my password]
keywords: [password]
source: https://childcareallianceoflosangeles.zohodesk.com/portal/en/kb/articles/what-if-i-forget-my-password
related: []
---
1. On the login page at **www.caregistry.org**, click **Forgot Password**.
2. Look for an e-mail from noreply@caregistry.org; the password works **within 2 hours**.

**Still stuck?** Call the help desk at **(855) 645-0826**.
"""
CHINESE = """---
id: forgot-password
kind: article
title: 重设密码
questions: [忘记密码]
keywords: [密码]
source: https://childcareallianceoflosangeles.zohodesk.com/portal/zh/kb/articles/what-if-i-forget-my-password
related: []
---
1. 打开 **www.caregistry.org** 登录页面，点击 **Forgot Password**（忘记密码）。
2. 查收 noreply@caregistry.org 发来的邮件；临时密码 **2 小时内**有效。

还是不行？请拨打 **(855) 645-0826** 联系客服。
"""
TERMS = """
- en: help desk
  es: mesa de ayuda
  zh_Hans: 客服
  avoid:
    zh_Hans: [帮助台, 服务台]
"""


def knowledge(tmp_path: Path, chinese: str) -> Path:
    root = tmp_path / "knowledge"
    for lang, text in (("en", ENGLISH), ("zh_Hans", chinese)):
        (root / "ca" / lang).mkdir(parents=True)
        (root / "ca" / lang / "forgot-password.md").write_text(text, encoding="utf-8")
    (root / "terms.yaml").write_text(TERMS, encoding="utf-8")
    return root


def problems(tmp_path: Path, chinese: str) -> list[str]:
    root = knowledge(tmp_path, chinese)
    return wording.check_articles(root, wording.load_terms(root / "terms.yaml"))


def test_a_faithful_translation_passes(tmp_path: Path) -> None:
    assert problems(tmp_path, CHINESE) == []


def test_a_dropped_phone_number_is_caught(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, CHINESE.replace("请拨打 **(855) 645-0826** 联系客服", "请联系客服"))
    assert "drops the phone number 855-645-0826" in found and "zh_Hans/forgot-password.md" in found


def test_a_dropped_step_label_is_caught(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, CHINESE.replace("**Forgot Password**（忘记密码）", "**忘记密码**"))
    assert 'drops the label "Forgot Password"' in found


def test_dropped_numbers_addresses_and_another_host_are_caught(tmp_path: Path) -> None:
    dropped = (
        CHINESE.replace("**2 小时内**", "**两小时内**")
        .replace("noreply@caregistry.org", "系统")
        .replace("portal/zh/kb", "portal/zh/kb", 1)
        .replace("https://childcareallianceoflosangeles.zohodesk.com", "https://example.org", 1)
    )
    found = "\n".join(problems(tmp_path, dropped))
    assert "drops the number 2" in found and "drops the e-mail address noreply@caregistry.org" in found
    assert "its source is on another host" in found


def test_a_ruled_out_term_is_caught(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, CHINESE.replace("联系客服", "联系帮助台"))
    assert '"帮助台" for "help desk" (say "客服")' in found


def test_catalog_entries_keep_placeholders_and_numbers_and_use_the_terms(tmp_path: Path) -> None:
    locales = tmp_path / "locales"
    shutil.copytree(PROJECT_DIR / "locales", locales)
    terms = wording.load_terms(PROJECT_DIR / "knowledge" / "terms.yaml")
    assert wording.check_catalogs(locales, terms) == []
    path = locales / "zh_Hans" / "LC_MESSAGES" / "messages.po"
    po = path.read_text(encoding="utf-8")
    entry = 'msgid "{day} at {time} {zone}"\nmsgstr "'
    start = po.index(entry) + len(entry)
    end = po.index('"\n', start)
    path.write_text(po[:start] + "{day} {time}，请联系帮助台" + po[end:], encoding="utf-8")
    found = "\n".join(wording.check_catalogs(locales, terms))
    assert "does not keep the placeholders ['day', 'time', 'zone']" in found
    assert '"帮助台" for "help desk"' in found


def test_the_labels_a_translation_must_keep_are_the_interface_ones() -> None:
    labels = wording.facts(
        "Click **Forgot Password**, then **My Training Events**. **Still stuck?** **Good to know:** "
        "**within 2 hours** **English, Spanish and Simplified Chinese**"
    ).labels
    assert labels == {"Forgot Password", "My Training Events"}


def test_the_projects_own_texts_pass() -> None:
    assert wording.check(PROJECT_DIR) == []
