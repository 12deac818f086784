"""What a member asks for in so many words, anywhere in a message: a person, the help desk's hours, or the
assistant to do an errand ("can you send me my Registry ID") rather than explain it."""

from __future__ import annotations

import re

from bot.understanding.message import Message

# A person: "talk to a person", "speak with someone real", "hablar con una persona", "找真人", "人工客服".
# A verb of talking and a person together: "put staff on my roster" or "I am an agent for a sponsor" are not.
_PERSON = re.compile(
    r"\b(?:talk|speak|chat) (?:to|with) (?:a |an |some |one of |your )?(?:real |live |actual )?"
    r"(?:person|human|agent|representative|rep|someone|somebody|staff|people)\b"
    r"|\b(?:connect|transfer|put) me (?:to|with|through to) (?:a |an |some |one of |your )?(?:real "
    r"|live |actual )?"
    r"(?:person|human|agent|representative|rep|someone|somebody|staff)\b"
    r"|\b(?:real|live|actual) (?:person|human|agent)\b|\bhuman being\b"
    r"|\b(?:someone|somebody|a person) (?:to )?call me\b|\bque me llamen?\b"
    r"|\bhablar con (?:una |un |alguna |el |la )?(?:persona|humano|agente|alguien|representante|empleado"
    r"|empleada|personal)\b"
    r"|\bpersona (?:real|de verdad)\b|\bagente humano\b|\bcon alguien (?:real|de verdad)\b"
    r"|^(?:human|agent|person|representative|operator|persona|agente|humano)$"
    r"|真人|人工客服|人工服务|转人工|找人工|客服人员|跟人谈|和人谈|跟人讲|和人说|跟人说|找个人|找一个人|真正的人"
    r"|打电话给我"
)
# The help desk's hours: "are you open on christmas", "what time do you close", "a que hora cierran".
# The subject is the help desk ("you", "the office"), never "it" or "they" (a training, an audit).
_DESK = r"(?:you|you guys|the help ?desk|the office|the registry|the phone line|your office)"
_HOURS = re.compile(
    r"\b(?:office|opening|business|support|your|phone) hours\b"
    r"|\bwhat are (?:the |your )?hours\b"
    rf"|\b(?:are|is) {_DESK} (?:\w+ )?(?:open|closed)\b"
    rf"|\bwhat time (?:do|does|are|is|will) {_DESK} (?:\w+ )?(?:open|close|closed|start|end|be open)\b"
    rf"|\bwhen (?:do|does|are|will) {_DESK} (?:\w+ )?(?:open|close|be open|be back)\b"
    r"|\bhorarios? (?:de (?:atencion|oficina|servicio)|del? (?:registro|registry|centro de ayuda"
    r"|mesa de ayuda))\b"
    r"|\b(?:su|sus|el|los) horarios? de (?:ustedes|atencion)\b"
    r"|\ba que hora (?:abren|cierran|atienden|contestan)\b"
    r"|\bhasta que hora (?:abren|atienden|contestan|estan)\b"
    r"|\b(?:estan|estaran) (?:abiertos|cerrados|atendiendo)\b"
    r"|\b(?:abren|cierran|atienden) (?:hoy|manana|ahora|temprano|tarde|los sabados|los domingos)\b"
    r"|\bcuando abren\b"
    r"|几点(?:开门|关门|上班|下班|开|关)|什么时候(?:开门|开|上班)|(?:开门|关门|营业|上班)(?:吗|时间)"
    r"|营业时间|办公时间|开放时间|服务时间|今天开吗|有没有开|有冇开"
)
# A word that asks about hours only when it is all the message says ("hours?", "horario", "有人吗"):
# beside other words, "hours" is as often a training's hours, and 关门 a center closing down.
_HOURS_ALONE = re.compile(r"^(?:hours|office hours|horarios?|abiertos?|几点|有人吗|营业|开门)$")

# An errand asked for outright: "can you send me", "please take me off", "quiero retirarme", "帮我退掉".
_DO_IT = re.compile(
    r"\b(?:can|could|would|will) you (?:please )?(?:\w+ )?(?:send|email|e mail|mail|give|remove|withdraw|drop"
    r"|cancel|file|submit|start|help me (?:withdraw|file|submit|appeal|cancel|drop|get))\b"
    r"|\bplease (?:send|email|take|remove|withdraw|drop|cancel|file|submit|start)\b"
    r"|\b(?:send|email|e mail|mail) (?:me|it to me)\b|\btake me off\b|\bremove me\b|\bunenroll me\b"
    r"|\bwithdraw me\b|\bdrop me\b"
    r"|\bi (?:want|would like|d like|wanna) to (?:withdraw|drop|unenroll|file|submit|appeal"
    r"|request an? (?:audit|review))\b"
    r"|\b(?:me )?(?:puede|podria|pueden|podrian|puedes) (?:\w+ )?(?:mandar|enviar|sacar|retirar|dar de baja"
    r"|quitar|cancelar|presentar|mandarme|enviarme|sacarme|retirarme"
    r"|ayudar a (?:retirarme|apelar|presentar))\b"
    r"|\b(?:mandame|mandeme|enviame|envieme|sacame|saqueme|retireme|retirame|quiteme|quitame"
    r"|dame de baja|deme de baja)\b|\bquiero (?:retirarme|darme de baja|apelar|presentar|solicitar"
    r"|cancelar mi)\b"
    r"|帮我|替我|给我发|发给我|寄给我|我要申诉|我要退|我想退|我要取消|请帮|麻烦你"
)
# A question about an errand is not a request to do it: "do I need to file an appeal?", "¿cómo apelo?".
_ASKS_HOW = re.compile(
    r"^(?:do|does|did|what|why|how|when|where|which|who|is|are|should|can i|could i|may i|am i|will i)\b"
    r"|^(?:como|cuando|que|donde|porque|cual|cuanto|puedo|debo|tengo que|hay|necesito saber)\b"
    r"|^(?:怎么|如何|什么|为什么|哪|是否|多久|几时|什么时候)"
)


def asks_for_person(message: Message) -> bool:
    """Whether the member asks for a person on the help desk."""
    return bool(_PERSON.search(message.normalized))


def asks_about_hours(message: Message) -> bool:
    """Whether the member asks when the help desk is open."""
    return bool(_HOURS.search(message.normalized) or _HOURS_ALONE.match(message.normalized))


def asks_to_do(message: Message) -> bool:
    """Whether the member asks the assistant to do something, not how to do it themselves."""
    return bool(_DO_IT.search(message.normalized)) and not _ASKS_HOW.match(message.normalized)


# At the code step: "I didn't get the code", "send it again", "no me llegó", "没收到验证码".
_NEW_CODE = re.compile(
    r"\b(?:resend|re send)\b|\bsend (?:it|the code|a code|me a code|another(?: code)?|a new(?: code)?|again)"
    r"(?: again)?\b|\b(?:new|another|different) code\b"
    r"|\b(?:didnt|did not|never|havent|have not|dont|do not|cant|cannot) (?:get|got|receive"
    r"|received|see|find)"
    r"(?: (?:the|a|any|my|your))? (?:code|e ?mail|email|it)\b|\bno code\b"
    r"|\bcode (?:never|didnt|did not|hasnt)\b"
    r"|\breenvia|\bvolver a enviar|\bmandar?(?:me)? (?:otro|de nuevo|otra vez)|\b(?:otro|nuevo) codigo\b"
    r"|\bno (?:me )?(?:llego|ha llegado|recibi|he recibido|encuentro|veo)\b"
    r"|没收到|没有收到|收不到|重新发|再发|重发|新的验证码|新验证码|另一个验证码|冇收到"
)
# At the code step: the e-mail typed was wrong ("wrong email", "me equivoqué de correo", "邮箱写错了").
_OTHER_EMAIL = re.compile(
    r"\b(?:wrong|different|another|other|change|changed|correct|fix|typo in)(?: the| my)? e ?mail\b"
    r"|\be ?mail (?:was|is) wrong\b|\bcorreo (?:equivocado|incorrecto|mal|distinto|diferente)\b"
    r"|\b(?:otro|cambiar(?: el| mi)?|corregir(?: el| mi)?) correo\b|\bme equivoque de correo\b"
    r"|邮箱写错|邮件写错|邮箱错了|换个邮箱|换邮箱|另一个邮箱|改邮箱|其他邮箱"
)


def asks_new_code(message: Message) -> bool:
    """Whether the member asks for another verification code (or says the first never came)."""
    return bool(_NEW_CODE.search(message.normalized))


def asks_other_email(message: Message) -> bool:
    """Whether the member says the e-mail address they gave was the wrong one."""
    return bool(_OTHER_EMAIL.search(message.normalized))
