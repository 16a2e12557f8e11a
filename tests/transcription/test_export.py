"""Trial-record exports, read back with independent parsers (webvtt-py, srt, python-docx)."""

from __future__ import annotations

import html
import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import docx
import srt
import webvtt

from transcription.export import (
    CourtDocument,
    CourtNote,
    IdentityNote,
    RecordGap,
    RecordLine,
    SignatureEntry,
    TrialRecordHeader,
    to_docx,
    to_srt,
    to_text,
    to_webvtt,
)
from transcription.pipeline import FinalLine

HEADER = TrialRecordHeader(
    court="北京市朝阳区人民法院",
    case_number="（2026）京0105刑初123号",
    kind="trial",
    started_at=datetime(2026, 11, 23, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai")),
    ended_at=datetime(2026, 11, 23, 11, 5, tzinfo=ZoneInfo("Asia/Shanghai")),
    participants=(("张三", "judge"), ("李四", "clerk"), ("王五", "defendant"), ("赵六", "lawyer")),
    title="王五盗窃案",
    courtroom="第三法庭",
)
# Out of order on purpose, one line with markup characters, one of zero length, one empty.
LINES = [
    RecordLine("王五", "defendant", 3723.25, 3725.5, "我叫王五，<没有>异议 & 认罪。"),
    RecordLine("张三", "judge", 1.5, 4.25, "现在开庭。"),
    RecordLine("李四", "clerk", 10.0, 10.0, "请坐。"),
    RecordLine("赵六", "lawyer", 12.0, 13.0, "   "),
]
SPOKEN = [LINES[1], LINES[2], LINES[0]]


def test_webvtt_parses_with_voices_times_and_text() -> None:
    captions = webvtt.from_buffer(io.StringIO(to_webvtt(LINES)))
    assert [c.voice for c in captions] == ["审判员 张三", "书记员 李四", "被告人 王五"]
    assert [html.unescape(c.text) for c in captions] == [line.text for line in SPOKEN]
    assert [(c.start, c.end) for c in captions] == [
        ("00:00:01.500", "00:00:04.250"),
        ("00:00:10.000", "00:00:10.010"),
        ("01:02:03.250", "01:02:05.500"),
    ]


def test_srt_parses_in_order_with_speaker_labels() -> None:
    subtitles = list(srt.parse(to_srt(LINES)))
    assert [s.index for s in subtitles] == [1, 2, 3]
    assert subtitles[0].content == "审判员 张三：现在开庭。"
    assert subtitles[2].content == "被告人 王五：我叫王五，<没有>异议 & 认罪。"
    assert subtitles[2].start == timedelta(hours=1, minutes=2, seconds=3, milliseconds=250)
    assert subtitles[1].end > subtitles[1].start
    assert srt.compose(subtitles) == to_srt(LINES) + "\n"


def test_plain_text_has_the_header_and_one_line_per_utterance() -> None:
    text = to_text(HEADER, LINES)
    lines = text.splitlines()
    assert lines[0] == "北京市朝阳区人民法院 庭审笔录"
    assert "案号：（2026）京0105刑初123号" in lines
    assert "类型：庭审" in lines
    assert "时间：2026年11月23日 09:30 至 2026年11月23日 11:05（北京时间）" in lines
    # The court's format: 审判人员 and 书记员, then each party's role with its people.
    assert lines[7:11] == ["地点：第三法庭", "审判人员：张三", "书记员：李四", "被告人：王五"]
    assert "律师：赵六" in lines
    assert lines[-3:] == [
        "[00:00:01] 审判员 张三：现在开庭。",
        "[00:00:10] 书记员 李四：请坐。",
        "[01:02:03] 被告人 王五：我叫王五，<没有>异议 & 认罪。",
    ]


def test_docx_reads_back_with_header_table_and_labelled_lines() -> None:
    document = docx.Document(io.BytesIO(to_docx(HEADER, LINES)))
    paragraphs = [p.text for p in document.paragraphs if p.text]
    assert paragraphs[:2] == ["北京市朝阳区人民法院", "庭审笔录"]
    assert paragraphs[2:] == [
        "[00:00:01] 审判员 张三：现在开庭。",
        "[00:00:10] 书记员 李四：请坐。",
        "[01:02:03] 被告人 王五：我叫王五，<没有>异议 & 认罪。",
    ]
    table = {row.cells[0].text: row.cells[1].text for row in document.tables[0].rows}
    assert table["法院"] == HEADER.court
    assert table["案号"] == HEADER.case_number
    assert table["类型"] == "庭审"
    assert table["案由"] == "王五盗窃案"
    assert table["地点"] == "第三法庭"
    assert (table["审判人员"], table["书记员"], table["被告人"], table["律师"]) == (
        "张三", "李四", "王五", "赵六")
    speaker_runs = [p.runs[1] for p in document.paragraphs if p.text.startswith("[")]
    assert all(run.bold for run in speaker_runs)


def test_an_interpreter_is_listed_with_the_party_they_interpret_for() -> None:
    header = TrialRecordHeader(
        court=HEADER.court, case_number=HEADER.case_number, kind="trial",
        started_at=HEADER.started_at,
        participants=(*HEADER.participants, ("陈译", "interpreter"), ("周译", "interpreter")),
        interpreters=(("陈译", "defendant", "王五"),))
    document = docx.Document(io.BytesIO(to_docx(header, LINES)))
    table = {row.cells[0].text: row.cells[1].text for row in document.tables[0].rows}
    # One linked to their party, one the court did not link (listed as before).
    assert table["翻译人员"] == "陈译（为被告人 王五翻译）、周译"
    assert "Interpreter: 陈译 (interpreting for Defendant 王五), 周译" in to_text(
        header, LINES, "en")


def test_english_labels_and_pipeline_lines_export_too() -> None:
    line = FinalLine("p1", "Ann Lee", "judge", 2.0, 3.5, "The court is now in session.", (), "en")
    header = TrialRecordHeader(
        "Court", "2026-17", "arraignment", datetime(2026, 1, 2, 8, 0), (("Ann Lee", "judge"),)
    )
    text = to_text(header, [line], language="en")
    assert "Kind: Remote arraignment" in text
    assert text.rstrip().endswith("[00:00:02] Judge Ann Lee: The court is now in session.")
    captions = webvtt.from_buffer(io.StringIO(to_webvtt([line], language="en")))
    assert captions[0].voice == "Judge Ann Lee"


def test_the_header_names_the_zone_its_times_are_in() -> None:
    """The caller passes the court's local time; the header says which zone that is."""
    utc = HEADER.started_at.astimezone(ZoneInfo("UTC"))
    elsewhere = TrialRecordHeader(
        court="Court", case_number="1", kind="trial", participants=(),
        started_at=utc.astimezone(ZoneInfo("Europe/Berlin")))
    assert "Time: 2026-11-23 02:30 (UTC+01:00)" in to_text(elsewhere, LINES, "en")
    beijing = TrialRecordHeader(court="Court", case_number="1", kind="trial",
                                participants=(), started_at=HEADER.started_at)
    assert "Time: 2026-11-23 09:30 (Beijing time)" in to_text(beijing, LINES, "en")


def test_captions_mark_the_lines_taken_from_the_recording() -> None:
    """A line recovered after the live record stopped says so in every export, captions too."""
    recovered = [RecordLine("张三", "judge", 1.5, 4.25, "现在开庭。", recovered=True),
                 RecordLine("李四", "clerk", 10.0, 11.0, "请坐。")]
    cues = webvtt.from_buffer(io.StringIO(to_webvtt(recovered)))
    assert [html.unescape(c.text) for c in cues] == ["现在开庭。（据录音补录）", "请坐。"]
    subtitles = list(srt.parse(to_srt(recovered, "en")))
    assert subtitles[0].content.endswith("(recovered from the recording)")
    assert not subtitles[1].content.endswith(")")


def test_the_record_notes_speech_that_could_not_be_transcribed_where_it_happened() -> None:
    """A hole the transcriber left and the recording could not fill is a note in the text and
    the DOCX, in time order between the lines, naming who and when; one still open runs to the
    end."""
    gaps = [RecordGap("王五", "defendant", 5.0, 9.5), RecordGap("赵六", "lawyer", 3800.0, None)]
    text = to_text(HEADER, LINES, gaps=gaps).splitlines()
    body = [line for line in text if line.startswith("[")]
    assert body == [
        "[00:00:01] 审判员 张三：现在开庭。",
        "[00:00:05] 【记录中断】被告人 王五自 00:00:05 至 00:00:09 的发言未能转写，"
        "以庭审录音为准。",
        "[00:00:10] 书记员 李四：请坐。",
        "[01:02:03] 被告人 王五：我叫王五，<没有>异议 & 认罪。",
        "[01:03:20] 【记录中断】律师 赵六自 01:03:20 起的发言未能转写，以庭审录音为准。",
    ]
    english = to_text(HEADER, LINES, "en", gaps=gaps[:1])
    assert ("[Record incomplete] What Defendant 王五 said from 00:00:05 to 00:00:09 could not be "
            "transcribed; the recording is authoritative.") in english
    paragraphs = [p.text for p in docx.Document(io.BytesIO(to_docx(HEADER, LINES, gaps=gaps)))
                  .paragraphs if p.text.startswith("[")]
    assert paragraphs == body


def test_the_courts_document_has_identity_checks_attendance_signatures_and_page_numbers(
) -> None:
    """The DOCX in the court's format: A4, observers not listed, the identity checks before the
    lines, attendance and interruptions after them, the signature block with the drawn
    signatures, page numbers in the footer."""
    from tests.courtrooms.test_signing import signature

    zone = ZoneInfo("Asia/Shanghai")
    local = lambda h, m: datetime(2026, 11, 23, h, m, tzinfo=zone)  # noqa: E731
    header = TrialRecordHeader(
        court=HEADER.court, case_number=HEADER.case_number, kind="arraignment",
        started_at=HEADER.started_at, ended_at=HEADER.ended_at,
        participants=(*HEADER.participants, ("赵监督", "observer")), courtroom="第三法庭")
    extras = CourtDocument(
        identity=[IdentityNote(local(9, 25), "王五", "defendant", "verified"),
                  IdentityNote(local(9, 26), "赵六", "lawyer", "refused", "律师证已过期")],
        notes=[CourtNote(local(10, 42), "left", "王五", "defendant", "network_lost"),
               CourtNote(local(10, 44), "returned", "王五", "defendant"),
               CourtNote(local(10, 15), "recess"), CourtNote(local(10, 30), "resume"),
               CourtNote(local(10, 50), "warned", "赵六", "lawyer", "请遵守法庭纪律。"),
               CourtNote(local(10, 51), "recording_gap", "王五", "defendant", "12.5")],
        signatures=[SignatureEntry("王五", "defendant", "refused", reason="不认可"),
                    SignatureEntry("赵六", "lawyer", "signed", local(11, 20), None, signature()),
                    SignatureEntry("张三", "judge", "signed", local(11, 30), None, signature(4)),
                    SignatureEntry("李四", "clerk", "pending")])
    document = docx.Document(io.BytesIO(to_docx(header, LINES, extras=extras)))
    section = document.sections[0]
    assert (round(section.page_width.mm), round(section.page_height.mm)) == (210, 297)
    table = {row.cells[0].text: row.cells[1].text for row in document.tables[0].rows}
    assert "赵监督" not in "".join(table.values()) and "旁听/监督" not in table
    paragraphs = [p.text for p in document.paragraphs if p.text]
    first_line = paragraphs.index("[00:00:01] 审判员 张三：现在开庭。")
    assert paragraphs[2:first_line] == [
        "身份核验", "09:25 被告人王五：身份核验通过",
        "09:26 律师赵六：身份核验未通过（律师证已过期）"]
    notes = paragraphs.index("到庭及中断情况")
    assert paragraphs[notes + 1:notes + 7] == [
        "10:15 休庭", "10:30 继续开庭", "10:42 被告人王五离开庭审（网络中断）",
        "10:44 被告人王五重新加入", "10:50 法庭警告律师赵六：请遵守法庭纪律。",
        "10:51 被告人王五的录音录像中断 12.5 秒"]
    block = paragraphs[paragraphs.index("签名") + 1:]
    assert block == ["被告人王五：拒绝签名（不认可）", "律师赵六（签名）2026年11月23日 11:20",
                     "审判员张三（签名）2026年11月23日 11:30", "书记员李四：未签名"]
    # The two drawn signatures are in the document as pictures, byte for byte.
    pictures = {part.blob for part in document.part.package.parts
                if part.content_type == "image/png"}
    assert pictures == {signature(), signature(4)}
    footer = section.footer.paragraphs[0]._p.xml
    assert 'w:instr="PAGE"' in footer and 'w:instr="NUMPAGES"' in footer
    assert "第 " in footer and " 页 共 " in footer
    text = to_text(header, LINES, extras=extras)
    assert "身份核验" in text and "10:42 被告人王五离开庭审（网络中断）" in text
    assert text.rstrip().endswith("书记员李四：未签名")
