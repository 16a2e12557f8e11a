"""Chinese as a court writes it: Simplified characters, Chinese punctuation, and numbers.

Whisper's Mandarin mixes Traditional characters in, punctuates with ASCII (",", "?") and writes
numbers either way ("七十七号", "77号"). The trial record follows the conventions of court
documents (人民法院裁判文书制作规范; GB/T 15835 出版物上数字用法):

- Arabic digits for what is counted or identified: case numbers ((2026)沪0101刑初77号, written
  with full-width brackets), years and dates (2026年3月5日), amounts (5000元, 3万元), ages,
  weights and lengths (25岁, 50克).
- Chinese numerals where court documents use them: article numbers of statutes (第二百六十四条,
  第一款) and the terms of sentences (有期徒刑三年六个月, 拘役六个月).
- Everything else as Whisper wrote it: approximate and idiomatic numbers (一两个, 三番五次) and
  ordinals stay in words; a number Whisper already wrote in digits outside the contexts above
  stays in digits.
"""

from __future__ import annotations

import functools
import re
from typing import Any

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_DIGIT = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_UNIT = {"十": 10, "百": 100, "千": 1000}
_BIG = {"万": 10_000, "亿": 100_000_000}
_NUMERAL = "零〇一二两三四五六七八九十百千万亿"
_CHINESE_DIGITS = "零一二三四五六七八九"
_MONTH = "[一二三四五六七八九十]{1,3}"

_PUNCTUATION = {",": "，", ".": "。", "?": "？", "!": "！", ":": "：", ";": "；"}
_AMOUNT_UNITS = "元|块钱|块|万元|亿元|美元|欧元"
_MEASURE_UNITS = "岁|周岁|克|千克|公斤|吨|米|厘米|公里|千米|平方米|毫升|升"
# The kinds of case in a case number's last part: 刑初, 民终, 执, 刑更 ...
_CASE_KIND = "初终再申更执监保辖赔撤他恢异协"
_STATUTE_PARTS = "条款项"
_SENTENCES = "有期徒刑|拘役|管制|缓刑|剥夺政治权利"


@functools.cache
def _t2s() -> Any:
    import opencc  # OpenCC's own binding; loads its dictionaries once

    return opencc.OpenCC("t2s")


def simplified(text: str) -> str:
    """Traditional characters as Simplified (OpenCC)."""
    return str(_t2s().convert(text))


def written_chinese(text: str) -> str:
    """A recognized Mandarin line as the trial record writes it."""
    text = simplified(text).strip()
    text = _punctuated(text)
    return _court_numbers(text)


def _punctuated(text: str) -> str:
    text = text.replace("...", "……").replace("(", "（").replace(")", "）")
    out = []
    for i, ch in enumerate(text):
        if ch in _PUNCTUATION:
            before = text[:i].rstrip()[-1:]
            after = text[i + 1 :].lstrip()[:1]
            digits = before.isdigit() and after.isdigit()  # 3.5, 1,000
            if not digits and (
                _is_cjk(before) or _is_cjk(after) or (not after and _is_cjk_text(text))
            ):
                out.append(_PUNCTUATION[ch])
                continue
        if ch == " ":
            before = text[:i][-1:]
            after = text[i + 1 :][:1]
            if _is_cjk(before) and _is_cjk(after):
                out.append("，")  # Whisper marks a pause between Chinese words with a space
                continue
            if (
                _is_cjk(before)
                or _is_cjk(after)
                or before in "，。？！：；"
                or after in "，。？！：；"
            ):
                continue
        out.append(ch)
    written = "".join(out).strip()
    if written and (_is_cjk(written[-1]) or written[-1].isdigit()) and _is_cjk_text(written):
        written += "。"
    return written


def _is_cjk(ch: str) -> bool:
    return bool(ch) and re.match(f"[{_CJK}]", ch) is not None


def _is_cjk_text(text: str) -> bool:
    return re.search(f"[{_CJK}]", text) is not None


def parse_numeral(numeral: str) -> int | None:
    """A Chinese numeral's value ("二百六十四" → 264, "二零二六" → 2026), or None."""
    if not numeral or any(ch not in _NUMERAL for ch in numeral):
        return None
    if all(ch in _DIGIT for ch in numeral) and len(numeral) > 1:
        return int("".join(str(_DIGIT[ch]) for ch in numeral))
    total = myriads = section = digit = 0
    for ch in numeral:
        if ch in _DIGIT:
            digit = _DIGIT[ch]
        elif ch in _UNIT:
            section += (digit or 1) * _UNIT[ch]
            digit = 0
        elif ch == "万":
            myriads = (section + digit or 1) * _BIG[ch]
            section = digit = 0
        else:
            total = (total + myriads + section + digit or 1) * _BIG[ch]
            myriads = section = digit = 0
    return total + myriads + section + digit


def chinese_numeral(n: int) -> str:
    """A number below 100 000 000 in Chinese numerals (264 → 二百六十四, 15 → 十五)."""
    if n == 0:
        return "零"
    if n >= 10_000:
        high, low = divmod(n, 10_000)
        rest = chinese_numeral(low) if low else ""
        return chinese_numeral(high) + "万" + ("零" if 0 < low < 1000 else "") + rest
    out = ""
    zero = False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        d, n = divmod(n, value)
        if d:
            if zero:
                out += "零"
            out += _CHINESE_DIGITS[d] + unit
            zero = False
        elif out:
            zero = True
    return out[1:] if out.startswith("一十") else out


def _arabic(match: re.Match[str]) -> str:
    numeral = match.group("n")
    value: int | str | None = parse_numeral(numeral)
    if len(numeral) > 1 and all(ch in _DIGIT for ch in numeral):
        value = "".join(str(_DIGIT[ch]) for ch in numeral)  # read digit by digit: 0101
    return match.group(0) if value is None else match.expand(rf"\g<a>{value}\g<b>")


def _amount(match: re.Match[str]) -> str:
    numeral, unit = match.group("n"), match.group("b")
    whole, _, fraction = numeral.partition("点")
    if whole and whole[-1] in _BIG and len(whole) > 1 and not fraction:
        whole, unit = whole[:-1], whole[-1] + unit  # 三万元 → 3万元, as written
    value = parse_numeral(whole)
    decimals = "".join(str(_DIGIT[ch]) for ch in fraction if ch in _DIGIT)
    if value is None or len(decimals) != len(fraction):
        return match.group(0)
    return f"{value}.{decimals}{unit}" if decimals else f"{value}{unit}"


def _court_numbers(text: str) -> str:
    n = f"[{_NUMERAL}]+"
    digits = "[零〇一二三四五六七八九]"
    # Years (digit by digit), in a case number's brackets too.
    text = re.sub(rf"(?P<a>(?:^|[^{_NUMERAL}]))(?P<n>{digits}{{4}})(?P<b>年|）)", _arabic, text)
    # Month and day: 三月五日, 2026年三月, 3月五号.
    text = re.sub(rf"(?<![{_NUMERAL}])(?P<m>{_MONTH})月(?P<d>{_MONTH})(?P<x>[日号])", _date, text)
    text = re.sub(rf"(?P<y>\d年)(?P<m>{_MONTH})月", _date, text)
    text = re.sub(rf"(?P<y>\d月)(?P<d>{_MONTH})(?P<x>[日号])", _date, text)
    # A case number's court code and serial: （2026）沪零一零一刑初七十七号.
    text = re.sub(rf"(?P<a>）[{_CJK}])(?P<n>{digits}{{2,6}})(?P<b>)", _arabic, text)
    # A case number's serial: 刑初七十七号.
    text = re.sub(rf"(?P<a>[{_CASE_KIND}])(?P<n>{n})(?P<b>号)", _arabic, text)
    # Amounts and measures.
    text = re.sub(
        rf"(?<![点\d.{_NUMERAL}])(?P<n>{n}(?:点{digits}+)?)(?P<b>{_AMOUNT_UNITS}|{_MEASURE_UNITS})",
        _amount,
        text,
    )
    # Statute articles and sentences in Chinese numerals.
    text = re.sub(
        rf"第(\d+)([{_STATUTE_PARTS}])",
        lambda m: f"第{chinese_numeral(int(m.group(1)))}{m.group(2)}",
        text,
    )
    return re.sub(
        rf"({_SENTENCES})((?:\d+(?:年|个月))+)",
        lambda m: (
            m.group(1) + re.sub(r"\d+", lambda d: chinese_numeral(int(d.group())), m.group(2))
        ),
        text,
    )


def _date(match: re.Match[str]) -> str:
    """A month (1-12) and day (1-31) in digits; anything else (三十五月) as it was."""
    parts = match.groupdict()
    month = parse_numeral(parts["m"]) if parts.get("m") else 1
    day = parse_numeral(parts["d"]) if parts.get("d") else 1
    if month is None or day is None or not (1 <= month <= 12 and 1 <= day <= 31):
        return match.group(0)
    out = parts.get("y") or ""
    out += f"{month}月" if parts.get("m") else ""
    out += f"{day}{parts['x']}" if parts.get("d") else ""
    return out
