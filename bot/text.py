"""Text normalization shared by intent detection, the topic model's features and language detection.

Latin-script text is lowercased, stripped of accents and stemmed (English and Spanish Snowball stemmers);
Chinese is converted to Simplified (OpenCC, plus common Cantonese words) and compared on characters and
character pairs, since there are no spaces to find words by.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import opencc
import snowballstemmer

_T2S = opencc.OpenCC("t2s")
_STEMMERS = {"en": snowballstemmer.stemmer("english"), "es": snowballstemmer.stemmer("spanish")}

# Cantonese wording → Mandarin, applied after conversion to Simplified characters.
CANTONESE = {
    "点样": "怎么",
    "点解": "为什么",
    "边度": "哪里",
    "边个": "谁",
    "乜嘢": "什么",
    "咩": "什么",
    "冇": "没有",
    "唔该": "谢谢",
    "唔": "不",
    "系咪": "是不是",
    "唔系": "不是",
    "系唔系": "是不是",
    "嘅": "的",
    "咗": "了",
    "喺": "在",
    "佢": "他",
    "揾": "找",
    "睇": "看",
    "谂": "想",
    "俾": "给",
    "畀": "给",
    "呢个": "这个",
    "噉": "这样",
    "几时": "什么时候",
    "倾": "谈",
    "啲": "些",
    "嚟": "来",
    "攞": "拿",
    "掣": "按钮",
    "识": "会",
    "晒": "完",
    "吖": "",
    "啦": "",
    "几多": "多少",
    "几耐": "多久",
    "而家": "现在",
    "点算": "怎么办",
    "点办": "怎么办",
    "做乜": "为什么",
    "乜": "什么",
    "嘢": "东西",
    "仲": "还",
    "咁": "这么",
    "边间": "哪间",
    "报读": "报名",
    # Traditional and Hong Kong / Taiwan wording for the same things
    "帐户": "账户",
    "帐号": "账号",
    "户口": "账户",
    "登入": "登录",
    "上载": "上传",
    "电邮": "邮件",
    "研习": "培训",
    "联络": "联系",
    "私隐": "隐私",
    "牌照": "执照",
}
# "系" (Cantonese 係, "to be") is "是" unless it is part of a word such as 系统 (system) or 联系 (contact).
_CANTONESE_IS = re.compile(r"(?<![联关体派世])系(?![统列数])")
_CANTONESE_RE = re.compile("|".join(sorted(map(re.escape, CANTONESE), key=len, reverse=True)))

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN_RE = re.compile(rf"[{_CJK}]+|[^\W\d_{_CJK}]+|\d+")
_CJK_RE = re.compile(rf"[{_CJK}]")
_SPANISH_MARKS = re.compile(r"[áéíóúñü¿¡]")

STOPWORDS_EN = frozenset(
    """
    a about above after again am an and any are aren as at be been before being below between both
    but by can cannot could did didn do does doesn doing don down during each few for from further
    had has have having he her here hers him his how i i'm im if in into is isn it its itself just
    me more most my myself no nor not now of off on once only or other our ours out over own same
    she should so some such than that the their them then there these they this those through to too
    under until up very was we were what whats what's when where which while whom will with would
    you your yours hi hello hey please thanks thank pls plz ok okay yes yeah also get got getting
    gets still anymore want wanted need needs know tell someone anyone something thing things way
    really much many one lot like let us s t ive ya u ur r cuz because since via whether
    even just actually basically literally kinda sorta maybe probably pretty quite anyway anyways
    though guys folks hmm um uh idk lol thx ty hiya sup dear wondering wonder trying able sure
    already yet ever every kind sort ok thats theres heres whos hows youre
    """.split()
)
STOPWORDS_ES = frozenset(
    """
    a al algo alguien algun alguna alguno ante antes aqui asi aun bien cada casi como con contra
    cual cuales cuando de del desde donde e el ella ellas ellos en entre era eres es esa ese eso
    esta estan estar este esto estos estoy fue fueron ha hace hacer han has hay hola la las le les
    lo los mas me mi mis mucho muy nada ni nos nosotros o otra otro para pero poco por puedo puede
    pueden que quien se ser si sin sobre soy su sus tambien tan todo todos tu tus un una uno unos
    usted ustedes y ya yo gracias favor quiero quisiera necesito saber debo cual mio mia aunque oye
    buenas buenos dias tardes noches senor senora
    pues bueno oiga oigan entonces solo nomas porfa porfis ahi alli aca alla este esto osea
    tengo tiene tienen tenemos estamos estas eh mmm pa pal
    """.split()
)
_ZH_STOP_CHARS = frozenset(
    "的了吗呢吧啊呀么是在我你您他她们这那个有和与及或也都就还要会能可以请问一下怎么如何什么哪里为"
)
# Negations decide between neighbours ("how do I withdraw" / "I can't withdraw"): one shared term for all.
NEGATIONS = frozenset(
    """
    no not cant cannot dont doesnt didnt wont isnt arent never couldnt havent hasnt wasnt nunca
    tampoco
    """.split()
)
NEGATION_TERM = "~not"
# Asking what something is ("what is the Training Calendar?") is a different question from how to use it.
WHAT_TERM = "~what"
_WHAT_IS = re.compile(
    r"\bwhat(?: is| are| s|s)\b|\bque (?:es|son)\b|\bpara que (?:sirve|sirven|es)\b"
    r"|是什么|什么是|是干什么|是做什么|干什么的|做什么的|有什么用"
)
STOPWORDS = (STOPWORDS_EN | STOPWORDS_ES) - NEGATIONS


def asks_what(text: str) -> bool:
    """Whether ``text`` asks what something is (for it, or in Spanish or Chinese)."""
    return bool(_WHAT_IS.search(normalize(text)))


def is_cjk(token: str) -> bool:
    return bool(_CJK_RE.match(token))


def has_cjk(text: str) -> bool:
    return bool(_CJK_RE.search(text))


def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@functools.lru_cache(maxsize=65536)
def normalize(text: str) -> str:
    """Lowercase, Simplified Chinese, Mandarin wording, no accents, punctuation turned into spaces."""
    text = unicodedata.normalize("NFKC", text)
    if has_cjk(text):
        text = _CANTONESE_RE.sub(lambda m: CANTONESE[m.group(0)], _T2S.convert(text))
        text = _CANTONESE_IS.sub("是", text)
    text = strip_accents(text.lower()).replace("'", "").replace("’", "")
    text = re.sub(r"\b(por|para) que\b", "porque", text)
    return " ".join(_TOKEN_RE.findall(text))


def words(text: str) -> list[str]:
    """The normalized words of ``text``: Latin words and digit runs, and runs of Chinese characters."""
    return normalize(text).split()


@functools.lru_cache(maxsize=65536)
def stem(word: str, lang: str) -> str:
    stemmer = _STEMMERS.get(lang)
    return stemmer.stemWord(word) if stemmer else word


def cjk_terms(run: str) -> list[str]:
    """Characters and character pairs of a run of Chinese, without function characters."""
    chars = [ch for ch in run if ch not in _ZH_STOP_CHARS]
    pairs = [run[i : i + 2] for i in range(len(run) - 1)]
    pairs = [p for p in pairs if p[0] not in _ZH_STOP_CHARS and p[1] not in _ZH_STOP_CHARS]
    return chars + pairs


def spanish_marks(text: str) -> int:
    return len(_SPANISH_MARKS.findall(text.lower()))


def cjk_count(text: str) -> int:
    return len(_CJK_RE.findall(text))
