"""Conversation control: help, cancel, back, a person, support hours, the registry's notice, sign out."""

from bot.intents.base import Intent

HELP = Intent(
    "help",
    {
        "en": (
            "help",
            "menu",
            "what can you do",
            "what can you help with",
            "options",
            "help me",
            "how does this work",
            "what do you do",
        ),
        "es": (
            "ayuda",
            "menu",
            "que puedes hacer",
            "en que me puedes ayudar",
            "opciones",
            "ayudame",
            "como funciona esto",
        ),
        "zh_Hans": (
            "帮助",
            "菜单",
            "你能做什么",
            "你可以帮我什么",
            "选项",
            "帮帮我",
            "怎么用",
            "我需要帮助",
            "需要帮忙",
        ),
    },
)
CANCEL = Intent(
    "cancel",
    {
        "en": ("cancel", "stop", "quit", "exit", "never mind", "nevermind", "forget it", "start over"),
        "es": ("cancelar", "cancela", "salir", "olvidalo", "dejalo", "empezar de nuevo", "parar"),
        "zh_Hans": ("取消", "算了", "退出", "停止", "不要了", "重新开始"),
    },
)
BACK = Intent(
    "back",
    {
        "en": ("back", "go back", "previous", "undo"),
        "es": ("atras", "volver", "regresar", "anterior"),
        "zh_Hans": ("返回", "上一步", "后退", "回去"),
    },
)
HOURS = Intent(
    "hours",
    {
        "en": (
            "are you open",
            "are you open now",
            "is anyone there",
            "opening hours",
            "hours",
            "when are you open",
            "is the help desk open",
        ),
        "es": ("estan abiertos", "esta abierto", "horario", "a que hora abren", "hay alguien"),
        "zh_Hans": ("现在开门吗", "营业时间", "几点上班", "有人吗", "现在有人吗", "办公时间"),
    },
)
NOTICE = Intent(
    "notice",
    {
        "en": ("notice", "announcement", "announcements", "any news", "is the site down", "maintenance"),
        "es": ("aviso", "anuncio", "anuncios", "novedades", "mantenimiento", "esta caido el sitio"),
        "zh_Hans": ("通知", "公告", "最新消息", "网站维护", "网站打不开"),
    },
)
LOGOUT = Intent(
    "logout",
    {
        "en": ("logout", "log out", "unlink", "unlink my account", "sign out", "forget me"),
        "es": ("cerrar sesion", "desvincular", "desvincular mi cuenta", "salir de mi cuenta"),
        "zh_Hans": ("退出登录", "解除绑定", "取消绑定", "注销"),
    },
)

LINK = Intent(
    "link",
    {
        "en": (
            "link my account",
            "verify my account",
            "verify me",
            "log in",
            "login",
            "sign in",
            "link account",
        ),
        "es": (
            "vincular mi cuenta",
            "verificar mi cuenta",
            "iniciar sesion",
            "vincular cuenta",
            "verificarme",
        ),
        "zh_Hans": ("绑定账户", "绑定我的账户", "验证身份", "验证我的账户", "登录"),
    },
)
STATUS = Intent(
    "status",
    {
        "en": (
            "what happened to my audit",
            "status of my audit",
            "audit status",
            "my requests",
            "status of my appeal",
            "appeal status",
            "where is my audit",
            "check my audit status",
            "any news on my audit",
            "is my audit done",
            "status",
            "my status",
            "status of my requests",
            "request status",
            "where is my appeal",
        ),
        "es": (
            "que paso con mi auditoria",
            "estado de mi auditoria",
            "estado de mi apelacion",
            "mis solicitudes",
            "como va mi auditoria",
            "estatus de mi auditoria",
            "estado",
            "estatus",
            "status",
            "mis tramites",
            "estado de mis solicitudes",
            "cual es el estado de mis solicitudes",
            "estado de mi solicitud",
            "como van mis solicitudes",
            "como van mis tramites",
            "estado de mis tramites",
        ),
        "zh_Hans": (
            "我的审核怎么样了",
            "审核进度",
            "我的审核结果",
            "申诉进度",
            "我的申请",
            "查询审核状态",
            "状态",
            "进度",
            "我的申请状态",
            "申请进度",
            "我的申请怎么样了",
        ),
    },
)

INTENTS = (HELP, CANCEL, BACK, HOURS, NOTICE, LOGOUT, LINK, STATUS)
