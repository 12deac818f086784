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
    definitely|of course|yes please|please do|go ahead|do it|sounds good|correct|that s right|thats right|
    confirm|confirmed|i confirm|yes i do|i would like that|id like that|that would be great|affirmative|
    no problem|no worries|lets do it|lets go|go for it|why not|start|start now|yes start now|
    si|sii|sip|claro|claro que si|por supuesto|dale|va|sale|orale|andale|vale|esta bien|de acuerdo|
    adelante|correcto|asi es|confirmo|simon|hagalo|hazlo|me parece bien|si por favor|si claro|con gusto|
    listo|ok si|no hay problema|empezar|empezar ahora|si empezar ahora|
    是|是的|好|好的|好滴|对|对的|可以|行|嗯|嗯嗯|确认|没问题|当然|当然可以|要的|ok的|开始|现在开始|
    it helped|that helped|yes it did|yes it helped|it did|helpful|very helpful|useful|
    me sirvio|si me sirvio|me ayudo|si me ayudo|sirvio|muy util|
    有用|有帮助|帮到了|帮到我了|有帮到
    """
)
NO_PHRASES = _phrases(
    """
    no|n|nope|nah|no thanks|no thank you|not now|not yet|dont|do not|negative|maybe later|later|not really|
    i dont want to|no way|no no|dont do it|never mind|nevermind|
    no gracias|mejor no|ahorita no|ahora no|todavia no|ya no|despues|luego|olvidalo|dejalo|para nada|
    no quiero|nel|no por favor|
    it didnt|no it didnt|didnt help|it didnt help|not helpful|no it didnt help|not useful|
    no me sirvio|no me ayudo|no sirvio|no ayudo|no me sirvio de nada|
    不|不是|不要|不用|不了|否|算了|先不|先不要|别|不对|不需要|不想|不使|不好|不必|不用了|
    没用|没有用|没帮助|没有帮助|没帮到|没帮上|没有帮到
    """
)
# words said around a yes or a no that change nothing ("yes please", "sí, por favor", "好的，麻烦你")
COURTESY = _phrases("please|pls|plz|por favor|porfa|porfavor|请|麻烦你|麻烦你了|麻烦了|唔该")
THANKS = _phrases("thanks|thank you|thx|ty|gracias|muchas gracias|谢谢|多谢|谢了|谢谢你")
# a yes this weak next to a thank-you is more likely "thanks, that's all" than "yes, start"
WEAK_YES = _phrases("ok|okay|okey|k|kk|alright|all right|vale|va|sale|好|好的|行|嗯|嗯嗯|ok的|listo")
_CJK_PARTICLES = "啊呀吧啦喇呢哦喔嘛了咯呗"
_CJK_REQUEST = ("请", "帮我", "替我", "麻烦")  # "好的，请帮我退出": a yes said again as a request
_CJK_LEXICON = sorted(
    (
        (kind, phrase)
        for kind, phrases in (
            ("yes", YES_PHRASES),
            ("no", NO_PHRASES),
            ("courtesy", COURTESY),
            ("thanks", THANKS),
        )
        for phrase in phrases
        if text.is_cjk(phrase)
    ),
    key=lambda entry: -len(entry[1]),
)
MAX_WORDS = 10  # longer messages say more than yes or no
MAX_CJK = 20
_NUMBER = re.compile(
    r"^\s*(?:#|no\.?|n[uú]mero|numero|option|opci[oó]n|choice|选项|第)?\s*(\d{1,2})\s*(?:号|个|項|项)?\s*[.)]?\s*$",
    re.IGNORECASE,
)


def yes_or_no(message: Message) -> bool | None:
    """True for a typed yes, False for a typed no, None when the message is neither or says more.

    The whole message must be a yes or a no, give or take courtesy ("yes please", "sí, por favor",
    "mejor no, olvídalo", "好的，请帮我退出", Traditional characters and Cantonese too): "I do not want to
    withdraw" and "可以告诉我怎么退出吗" are not answers, and "ok thanks" is a thank-you, not a yes.
    """
    words = message.words
    if not words or len(words) > MAX_WORDS or sum(len(w) for w in words if text.is_cjk(w)) > MAX_CJK:
        return None
    said: list[str] = []  # for each piece: yes, no, courtesy, thanks or request
    weak = True  # every yes said is a weak one ("ok")
    position = 0
    while position < len(words):
        word = words[position]
        if text.is_cjk(word):
            pieces = _cjk_pieces(word)
            if pieces is None:
                return None
            for piece, core in pieces:
                said.append(piece)
                weak = weak and (piece != "yes" or core in WEAK_YES)
            position += 1
            continue
        kind = None
        for size in (4, 3, 2, 1):  # the longest phrase first ("no problem" is a yes, "no" a no)
            core = " ".join(words[position : position + size])
            kind = _latin_piece(core) if len(words) - position >= size else None
            if kind is not None:
                break
        if kind is None:
            return None  # neither a yes, a no, nor courtesy: the member says more than that
        said.append(kind)
        weak = weak and (kind != "yes" or core in WEAK_YES)
        position += size
    answers = {piece for piece in said if piece in ("yes", "no")}
    if len(answers) != 1 or ("request" in said and answers != {"yes"}):
        return None
    if "thanks" in said and answers == {"yes"} and weak:
        return None
    return answers == {"yes"}


def _latin_piece(phrase: str) -> str | None:
    if phrase in YES_PHRASES:
        return "yes"
    if phrase in NO_PHRASES:
        return "no"
    if phrase in COURTESY:
        return "courtesy"
    return "thanks" if phrase in THANKS else None


def _cjk_pieces(run: str) -> list[tuple[str, str]] | None:
    """A run of Chinese cut into known pieces, longest first: (kind, words) pairs, kind being yes, no,
    courtesy, thanks, or a request said after them ("好的请帮我退出"); None when some of it is none of
    these ("可以告诉我怎么退出吗", "好像收不到")."""
    pieces: list[tuple[str, str]] = []
    position = 0
    while position < len(run):
        if run[position] in _CJK_PARTICLES:
            position += 1
            continue
        found = next(((kind, p) for kind, p in _CJK_LEXICON if run.startswith(p, position)), None)
        if found is None:
            if run.startswith(_CJK_REQUEST, position):
                return [*pieces, ("request", run[position:])]
            return None
        pieces.append(found)
        position += len(found[1])
    return pieces


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
