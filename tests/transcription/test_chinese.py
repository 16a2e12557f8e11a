"""Recognized Mandarin as the trial record writes it: Simplified, Chinese punctuation, numbers."""

from __future__ import annotations

import pytest

from transcription.chinese import chinese_numeral, parse_numeral, simplified, written_chinese


def test_traditional_characters_come_out_simplified() -> None:
    assert (
        simplified("審判長宣佈開庭，被告人對起訴書有無異議？")
        == "审判长宣布开庭，被告人对起诉书有无异议？"
    )


@pytest.mark.parametrize(
    ("heard", "written"),
    [
        # Punctuation: Chinese marks in Chinese text, a full stop at the end of a sentence.
        ("被告人钱某某,你对起诉书有没有异议?", "被告人钱某某，你对起诉书有没有异议？"),
        ("我认为 这个证据不真实", "我认为，这个证据不真实。"),
        ("下面进行法庭辩论:公诉人先发言;", "下面进行法庭辩论：公诉人先发言；"),
        ("没有!", "没有！"),
        ("审判長宣佈開庭", "审判长宣布开庭。"),
        # Case numbers, dates, amounts and ages in Arabic digits.
        ("案号(二零二六)沪零一零一刑初七十七号", "案号（2026）沪0101刑初77号。"),
        ("（2026）沪0101刑初77号", "（2026）沪0101刑初77号。"),
        ("二零二六年三月五日上午", "2026年3月5日上午。"),
        ("十二月一号开庭", "12月1号开庭。"),
        ("他偷了五千元现金,还有三万元", "他偷了5000元现金，还有3万元。"),
        ("两万五千元", "25000元。"),
        ("罚金1.5万元", "罚金1.5万元。"),
        ("罚金3万元", "罚金3万元。"),
        ("他今年二十五岁", "他今年25岁。"),
        ("毒品三点五克", "毒品3.5克。"),
        # Statutes and sentences in Chinese numerals.
        ("根据刑法第264条", "根据刑法第二百六十四条。"),
        (
            "判处有期徒刑3年6个月,并处罚金人民币2000元",
            "判处有期徒刑三年六个月，并处罚金人民币2000元。",
        ),
        # Durations, approximate numbers and English untouched.
        ("三个月以前", "三个月以前。"),
        ("一两个人", "一两个人。"),
        ("3.5克", "3.5克。"),
        ("I am Robert Miller.", "I am Robert Miller."),
        ("No, 3.5 grams", "No, 3.5 grams"),
    ],
)
def test_a_line_is_written_as_a_court_writes_it(heard: str, written: str) -> None:
    assert written_chinese(heard) == written
    # Written text stays as it is: lines joined from written pieces can be written again.
    assert written_chinese(written) == written


@pytest.mark.parametrize(
    ("numeral", "value"),
    [
        ("十", 10),
        ("十五", 15),
        ("二百六十四", 264),
        ("一百零五", 105),
        ("三万", 30_000),
        ("两万五千", 25_000),
        ("十万", 100_000),
        ("一亿二千万", 120_000_000),
        ("二零二六", 2026),
        ("甲", None),
    ],
)
def test_chinese_numerals_are_read(numeral: str, value: int | None) -> None:
    assert parse_numeral(numeral) == value


@pytest.mark.parametrize("n", [0, 1, 10, 15, 20, 105, 264, 1000, 1010, 10_000, 30_005, 250_000])
def test_numbers_written_in_chinese_read_back(n: int) -> None:
    assert parse_numeral(chinese_numeral(n)) == n
    assert chinese_numeral(264) == "二百六十四" and chinese_numeral(15) == "十五"
