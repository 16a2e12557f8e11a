"""How roles and hearing kinds are named in prompts and in the trial record."""

from __future__ import annotations

# The same names as courtrooms/labels.py (shown on the hearing pages), so that screen and
# record agree; transcription may not import courtrooms, hence the copy.
ROLE_ZH = {
    "judge": "审判员",
    "clerk": "书记员",
    "prosecutor": "公诉人",
    "defendant": "被告人",
    "lawyer": "律师",
    "party": "当事人",
    "witness": "证人",
    "interpreter": "翻译人员",
    "observer": "旁听/监督",
}
ROLE_EN = {
    "judge": "Judge",
    "clerk": "Clerk",
    "prosecutor": "Prosecutor",
    "defendant": "Defendant",
    "lawyer": "Counsel",
    "party": "Party",
    "witness": "Witness",
    "interpreter": "Interpreter",
    "observer": "Observer",
}
KIND_ZH = {
    "trial": "庭审",
    "arraignment": "远程提讯",
    "parole": "减刑假释庭审",
    "mediation": "调解",
    "creditors_meeting": "债权人会议",
    "petition": "视频接访",
}
KIND_EN = {
    "trial": "Trial",
    "arraignment": "Remote arraignment",
    "parole": "Commutation and parole hearing",
    "mediation": "Mediation",
    "creditors_meeting": "Creditors' meeting",
    "petition": "Video petition reception",
}


def role_label(role: str, language: str = "zh") -> str:
    """The role's name in `language` (Chinese unless English is asked); unknown roles as given."""
    return (ROLE_EN if language == "en" else ROLE_ZH).get(role, role)


def kind_label(kind: str, language: str = "zh") -> str:
    """The hearing kind's name in `language`; unknown kinds as given."""
    return (KIND_EN if language == "en" else KIND_ZH).get(kind, kind)


# Why someone left, as the court's document says it (the same words as the review page).
CAUSE_ZH = {
    "left": "主动离开", "page_closed": "关闭了页面", "network_lost": "网络中断",
    "server_restart": "服务器重启", "server_shutdown": "服务器停机", "not_reading": "网络过慢",
    "closed_by_server": "服务器断开", "removed": "被请出法庭", "released": "作证完毕离开",
    "hearing_ended": "庭审结束", "replaced": "在其他设备上重新加入",
}
CAUSE_EN = {
    "left": "left", "page_closed": "closed the page", "network_lost": "network lost",
    "server_restart": "server restart", "server_shutdown": "server shutdown",
    "not_reading": "connection too slow", "closed_by_server": "disconnected by the server",
    "removed": "removed by the court", "released": "released after testifying",
    "hearing_ended": "hearing ended", "replaced": "rejoined on another device",
}


def cause_label(cause: str, language: str = "zh") -> str:
    return (CAUSE_EN if language == "en" else CAUSE_ZH).get(cause, cause)
