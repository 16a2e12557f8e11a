"""Exports of a trial record (庭审笔录): WebVTT, SRT, plain text and DOCX.

Input is plain data: a `TrialRecordHeader` and the record's lines (`RecordLine`, or anything
with the same attributes, such as a `FinalLine`), times in seconds on the hearing timeline.
Labels are Chinese unless `language="en"`.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.shared import Pt, RGBColor

from config.timezone import zone_label
from transcription.labels import kind_label, role_label

# Cues need a positive duration; a zero-length line is shown for this long.
MIN_CUE_S = 0.01
DOCX_FONT = "SimSun"  # 宋体, the usual face of court documents
FIELD_LABELS = {
    "zh": {
        "title": "庭审笔录",
        "court": "法院",
        "case_number": "案号",
        "hearing": "案由",
        "kind": "类型",
        "time": "时间",
        "courtroom": "地点",
        "participants": "参加人员",
        "to": "至",
        "colon": "：",
        "list_sep": "、",
        "recovered": "（据录音补录）",
        "gap": "【记录中断】{speaker}自 {start} {until}的发言未能转写，以庭审录音为准。",
        "gap_until": "至 {end} ",
        "gap_open": "起",
    },
    "en": {
        "title": "Trial record",
        "court": "Court",
        "case_number": "Case number",
        "hearing": "Matter",
        "kind": "Kind",
        "time": "Time",
        "courtroom": "Place",
        "participants": "Participants",
        "to": "to",
        "colon": ": ",
        "list_sep": ", ",
        "recovered": " (recovered from the recording)",
        "gap": "[Record incomplete] What {speaker} said from {start} {until}could not be "
               "transcribed; the recording is authoritative.",
        "gap_until": "to {end} ",
        "gap_open": "on ",
    },
}


class SpeakerLine(Protocol):
    """What an export needs of a line of the record."""

    @property
    def name(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def text(self) -> str: ...


@dataclass(frozen=True, slots=True)
class RecordLine:
    """One speaker-labelled line of the trial record."""

    name: str
    role: str
    start: float
    end: float
    text: str
    # Transcribed from the recording after the live transcriber failed: the documents say so.
    recovered: bool = False


@dataclass(frozen=True, slots=True)
class RecordGap:
    """Speech of one participant that could not be transcribed, live or from the recording:
    the record says so where it happened, so a reader knows to go to the recording."""

    name: str
    role: str
    start: float
    end: float | None  # None: until the end of the hearing


@dataclass(frozen=True, slots=True)
class TrialRecordHeader:
    """The facts at the head of a trial record."""

    court: str
    case_number: str
    kind: str  # a HearingKind value ("trial", "arraignment", ...) or the court's own words
    started_at: datetime
    participants: tuple[tuple[str, str], ...]  # (name, role)
    title: str | None = None
    ended_at: datetime | None = None
    courtroom: str | None = None


def _ordered(lines: Iterable[SpeakerLine]) -> list[SpeakerLine]:
    return sorted((line for line in lines if line.text.strip()), key=lambda li: li.start)


def _clock(seconds: float, separator: str) -> str:
    millis = round(max(0.0, seconds) * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _span(line: SpeakerLine) -> tuple[float, float]:
    start = max(0.0, line.start)
    return start, max(line.end, start + MIN_CUE_S)


def speaker_label(line: SpeakerLine, language: str = "zh") -> str:
    """The role as the court names it, then the name: `审判员 张三`."""
    return f"{role_label(line.role, language)} {line.name}".strip()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _recovered(line: SpeakerLine, language: str) -> str:
    """The mark of a line taken from the recording rather than live ('' for a live one)."""
    return FIELD_LABELS[_lang(language)]["recovered"] if getattr(line, "recovered", False) else ""


def to_webvtt(lines: Iterable[SpeakerLine], language: str = "zh") -> str:
    """WebVTT captions, one cue per line, the speaker in a voice span (`<v 审判员 张三>`)."""
    out = ["WEBVTT", ""]
    for number, line in enumerate(_ordered(lines), start=1):
        start, end = _span(line)
        voice = _vtt_escape(speaker_label(line, language)).replace(">", "&gt;")
        out += [
            str(number),
            f"{_clock(start, '.')} --> {_clock(end, '.')}",
            f"<v {voice}>{_vtt_escape(_one_line(line.text))}"
            f"{_vtt_escape(_recovered(line, language))}",
            "",
        ]
    return "\n".join(out)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_srt(lines: Iterable[SpeakerLine], language: str = "zh") -> str:
    """SubRip subtitles, one numbered cue per line, prefixed with the speaker."""
    colon = FIELD_LABELS[_lang(language)]["colon"]
    out: list[str] = []
    for number, line in enumerate(_ordered(lines), start=1):
        start, end = _span(line)
        out += [
            str(number),
            f"{_clock(start, ',')} --> {_clock(end, ',')}",
            f"{speaker_label(line, language)}{colon}{_one_line(line.text)}"
            f"{_recovered(line, language)}",
            "",
        ]
    return "\n".join(out)


def _lang(language: str) -> str:
    return "en" if language == "en" else "zh"


def _header_fields(header: TrialRecordHeader, language: str) -> list[tuple[str, str]]:
    labels = FIELD_LABELS[_lang(language)]
    when = _datetime(header.started_at, language)
    if header.ended_at is not None:
        when += f" {labels['to']} {_datetime(header.ended_at, language)}"
    when += _zone(header.started_at, language)
    people = labels["list_sep"].join(
        f"{role_label(role, language)} {name}" for name, role in header.participants
    )
    fields = [
        (labels["court"], header.court),
        (labels["case_number"], header.case_number),
    ]
    if header.title:
        fields.append((labels["hearing"], header.title))
    fields.append((labels["kind"], kind_label(header.kind, language)))
    fields.append((labels["time"], when))
    if header.courtroom:
        fields.append((labels["courtroom"], header.courtroom))
    fields.append((labels["participants"], people))
    return fields


def _datetime(moment: datetime, language: str) -> str:
    """In the zone the time comes in: the caller gives the court's local time."""
    if language == "en":
        return moment.strftime("%Y-%m-%d %H:%M")
    return f"{moment.year}年{moment.month}月{moment.day}日 {moment:%H:%M}"


def _zone(moment: datetime, language: str) -> str:
    """The zone's name after the times (北京时间), when they carry one."""
    if not isinstance(moment.tzinfo, ZoneInfo):
        return ""
    label = zone_label(moment.tzinfo, moment, language)
    return f" ({label})" if language == "en" else f"（{label}）"


def gap_text(gap: RecordGap, language: str = "zh") -> str:
    """`【记录中断】被告人 赵某自 00:02:12 至 00:03:40 的发言未能转写，以庭审录音为准。`"""
    labels = FIELD_LABELS[_lang(language)]
    until = (labels["gap_open"] if gap.end is None
             else labels["gap_until"].format(end=_clock(gap.end, ".")[:8]))
    return labels["gap"].format(speaker=f"{role_label(gap.role, language)} {gap.name}".strip(),
                                start=_clock(gap.start, ".")[:8], until=until)


def _entries(lines: Iterable[SpeakerLine], gaps: Iterable[RecordGap]
             ) -> list[SpeakerLine | RecordGap]:
    """Lines and gaps in the order they happened (a gap before a line starting with it)."""
    entries: list[SpeakerLine | RecordGap] = [*gaps, *_ordered(lines)]
    return sorted(entries, key=lambda e: (e.start, not isinstance(e, RecordGap)))


def to_text(header: TrialRecordHeader, lines: Iterable[SpeakerLine], language: str = "zh",
            gaps: Iterable[RecordGap] = ()) -> str:
    """The record as plain text: the header, then `[00:01:02] 审判员 张三：…` lines, and where
    speech could not be transcribed, a note saying so."""
    labels = FIELD_LABELS[_lang(language)]
    out = [f"{header.court} {labels['title']}", ""]
    out += [f"{name}{labels['colon']}{value}" for name, value in _header_fields(header, language)]
    out.append("")
    for entry in _entries(lines, gaps):
        stamp = _clock(entry.start, ".")[:8]
        if isinstance(entry, RecordGap):
            out.append(f"[{stamp}] {gap_text(entry, language)}")
            continue
        label = speaker_label(entry, language)
        out.append(f"[{stamp}] {label}{labels['colon']}{_one_line(entry.text)}"
                   f"{_recovered(entry, language)}")
    return "\n".join(out) + "\n"


def to_docx(header: TrialRecordHeader, lines: Sequence[SpeakerLine], language: str = "zh",
            gaps: Iterable[RecordGap] = ()) -> bytes:
    """The record as a Word document: the court's header, then speaker-labelled lines."""
    labels = FIELD_LABELS[_lang(language)]
    document = Document()
    normal = document.styles["Normal"]
    normal.font.name = DOCX_FONT
    normal.font.size = Pt(12)
    # Word takes CJK characters from the East Asian font slot, which python-docx leaves unset.
    normal.element.rPr.rFonts.set(qn("w:eastAsia"), DOCX_FONT)

    court = document.add_paragraph()
    court.alignment = WD_ALIGN_PARAGRAPH.CENTER
    court_run = court.add_run(header.court)
    court_run.bold = True
    court_run.font.size = Pt(16)
    title = document.add_paragraph()
    title.alignment = WD_ALIGN_PARAGRAPH.CENTER
    title_run = title.add_run(labels["title"])
    title_run.bold = True
    title_run.font.size = Pt(18)

    table = document.add_table(rows=0, cols=2)
    table.style = "Table Grid"
    for name, value in _header_fields(header, language):
        cells = table.add_row().cells
        cells[0].text = name
        cells[1].text = value

    document.add_paragraph()
    for line in _entries(lines, gaps):
        paragraph = document.add_paragraph()
        stamp = paragraph.add_run(f"[{_clock(line.start, '.')[:8]}] ")
        stamp.font.size = Pt(9)
        stamp.font.color.rgb = RGBColor(0x70, 0x70, 0x70)
        if isinstance(line, RecordGap):
            paragraph.add_run(gap_text(line, language)).italic = True
            continue
        speaker = paragraph.add_run(f"{speaker_label(line, language)}{labels['colon']}")
        speaker.bold = True
        paragraph.add_run(_one_line(line.text))
        if mark := _recovered(line, language):
            note = paragraph.add_run(mark)
            note.font.size = Pt(9)
            note.font.color.rgb = RGBColor(0x70, 0x70, 0x70)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
