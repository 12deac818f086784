"""Short answers to what the assistant just asked or offered: a typed yes or no, a button's number or
label. Members type "yes please", "sí, claro", "好的，请帮我退出", "2" or a button's words; each presses the
button it means."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rapidfuzz import fuzz

from bot import text
from bot.messages import Choice
from bot.understanding.message import Message


def _phrases(listed: str) -> frozenset[str]:
    return frozenset(phrase.strip() for phrase in listed.split("|") if phrase.strip())


YES_PHRASES = _phrases(
    """
    yes|y|ye|yea|yeah|yep|yup|ya|yas|yess|yesss|sure|ok|okay|okey|k|kk|alright|all right|absolutely|
    definitely|of course|please|yes please|please do|go ahead|do it|sounds good|correct|right|that s right|
    thats right|confirm|confirmed|i confirm|i do|i would|i would like that|id like that|that would be great|
    great|perfect|affirmative|indeed|no problem|no worries|lets do it|lets go|go for it|why not|
    si|sii|sip|claro|claro que si|por supuesto|dale|va|sale|orale|andale|vale|esta bien|de acuerdo|
    perfecto|adelante|correcto|asi es|confirmo|simon|porfa|por favor|hagalo|hazlo|me parece bien|bueno|
    si por favor|si claro|con gusto|listo|ok si|no hay problema|
    是|是的|好|好的|好啊|好吧|好呀|好滴|对|对的|可以|行|嗯|嗯嗯|确认|没问题|当然|需要|要的|麻烦你|麻烦了|ok的
    """
)
NO_PHRASES = _phrases(
    """
    no|n|nope|nah|no thanks|no thank you|not now|not yet|dont|do not|never mind|nevermind|negative|
    maybe later|later|not really|i dont want to|no way|no no|cancel|stop|forget it|dont do it|
    no gracias|mejor no|ahorita no|ahora no|todavia no|despues|luego|olvidalo|dejalo|cancelar|cancela|
    para nada|no quiero|nel|no por favor|
    不|不是|不要|不用|不了|否|算了|先不|先不要|别|不对|不需要|取消|不想|不使|不好|不必|不用了|没有
    """
)
_CJK_NO_START = ("不", "算了", "别", "否", "先不", "没有", "取消")
_CJK_YES_START = ("好", "是", "对", "可以", "行", "嗯", "确认", "没问题", "当然", "要", "麻烦", "需要", "ok")
_CJK_ASKING = re.compile(r"^(?:好不好|是不是|对不对|可不可以|行不行|要不要|需不需要|是否)")
MAX_WORDS = 10  # longer messages say more than yes or no
MAX_CJK = 20
_NUMBER = re.compile(
    r"^\s*(?:#|no\.?|n[uú]mero|numero|option|opci[oó]n|choice|选项|第)?\s*(\d{1,2})\s*(?:号|个|項|项)?\s*[.)]?\s*$",
    re.IGNORECASE,
)


def yes_or_no(message: Message) -> bool | None:
    """True for a typed yes, False for a typed no (in English, Spanish or Chinese, Traditional characters
    and Cantonese included), None when the message is neither or says more than that."""
    words = message.words
    if not words:
        return None
    if text.is_cjk(words[0]):
        return _cjk_yes_or_no(words)
    if len(words) > MAX_WORDS:
        return None
    for size in (4, 3, 2, 1):  # the longest opening phrase decides ("no problem" is a yes)
        opening = " ".join(words[:size])
        if len(words) >= size:
            if opening in YES_PHRASES:
                return True
            if opening in NO_PHRASES:
                return False
    return None


def _cjk_yes_or_no(words: tuple[str, ...]) -> bool | None:
    first = words[0]
    if sum(len(word) for word in words) > MAX_CJK or _CJK_ASKING.match(first):
        return None
    if first in NO_PHRASES or first.startswith(_CJK_NO_START):
        return False
    if first in YES_PHRASES or first.startswith(_CJK_YES_START):
        return True
    return None


def pressed(message: Message, choices: Sequence[Choice]) -> Choice | None:
    """The button ``message`` presses among ``choices`` (the ones just shown): by its number, by its label
    typed out, or by a typed yes or no when a button means that."""
    if not choices:
        return None
    number = _NUMBER.match(message.normalized) or _NUMBER.match(message.raw.strip())
    if number is not None:
        index = int(number.group(1))
        return choices[index - 1] if 1 <= index <= len(choices) else None
    for choice in choices:
        label = text.normalize(choice.label)
        if label and (label == message.normalized or _close(label, message.normalized)):
            return choice
    answer = yes_or_no(message)
    if answer is not None:
        meaning = "yes" if answer else "no"
        return next((choice for choice in choices if choice.meaning == meaning), None)
    return None


def _close(label: str, typed: str) -> bool:
    """A label typed with a typo or two, or without its first or last words."""
    if len(typed) < 4 or len(typed) < 0.6 * len(label):
        return False
    return fuzz.ratio(label, typed) >= 88
