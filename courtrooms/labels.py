"""The court's words for roles, hearing states and hearing kinds, in Chinese."""

from __future__ import annotations

ROLE_ZH = {
    "judge": "审判员", "clerk": "书记员", "prosecutor": "公诉人", "defendant": "被告人",
    "lawyer": "律师", "party": "当事人", "witness": "证人", "interpreter": "翻译人员",
    "observer": "旁听/监督",
}
STATE_ZH = {
    "scheduled": "已排期", "open": "候审中", "in_session": "庭审中", "recess": "休庭",
    "closed": "已闭庭", "cancelled": "已取消",
}
KIND_ZH = {
    "trial": "庭审", "arraignment": "远程提讯", "parole": "减刑假释庭审", "mediation": "调解",
    "creditors_meeting": "债权人会议", "petition": "视频接访",
}
LOCATION_ZH = {"courtroom": "法庭", "prison": "监所", "remote": "远程"}
