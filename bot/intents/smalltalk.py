"""Greetings, thanks and goodbyes: answered briefly, never mistaken for a support question."""

from bot.intents.base import Intent

GREETING = Intent(
    "greeting",
    {
        "en": (
            "hi",
            "hello",
            "hey",
            "hey there",
            "hi there",
            "good morning",
            "good afternoon",
            "good evening",
            "start",
            "hello bot",
            "yo",
        ),
        "es": (
            "hola",
            "buenos dias",
            "buenas tardes",
            "buenas noches",
            "buenas",
            "saludos",
            "que tal",
            "hola buenos dias",
            "hola buenas tardes",
        ),
        "zh_Hans": ("你好", "您好", "嗨", "哈喽", "早上好", "下午好", "晚上好", "喂", "在吗", "你好啊"),
    },
)
THANKS = Intent(
    "thanks",
    {
        "en": (
            "thanks",
            "thank you",
            "thank you so much",
            "thanks a lot",
            "thx",
            "ty",
            "great thanks",
            "ok thanks",
            "perfect thank you",
            "that helped",
            "awesome",
        ),
        "es": (
            "gracias",
            "muchas gracias",
            "mil gracias",
            "ok gracias",
            "perfecto gracias",
            "muy amable",
            "gracias por la ayuda",
        ),
        "zh_Hans": ("谢谢", "多谢", "谢谢你", "非常感谢", "感谢", "好的谢谢", "谢了", "唔该"),
    },
)
GOODBYE = Intent(
    "goodbye",
    {
        "en": ("bye", "goodbye", "see you", "bye bye", "that is all", "thats all", "no thanks"),
        "es": ("adios", "chao", "hasta luego", "nos vemos", "eso es todo", "no gracias"),
        "zh_Hans": ("再见", "拜拜", "没有了", "就这些", "不用了"),
    },
)

INTENTS = (GREETING, THANKS, GOODBYE)
