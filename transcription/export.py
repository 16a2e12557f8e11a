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
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt, RGBColor

from config.timezone import zone_label
from transcription.labels import cause_label, kind_label, role_label

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
        "interprets_for": "{name}（为{role} {party}翻译）",
        "to": "至",
        "colon": "：",
        "list_sep": "、",
        "recovered": "（据录音补录）",
        "gap": "【记录中断】{speaker}自 {start} {until}的发言未能转写，以庭审录音为准。",
        "gap_until": "至 {end} ",
        "gap_open": "起",
        "judges": "审判人员",
        "clerks": "书记员",
        "identity": "身份核验",
        "identity_verified": "{at} {who}：身份核验通过",
        "identity_refused": "{at} {who}：身份核验未通过（{reason}）",
        "notes": "到庭及中断情况",
        "left": "{at} {who}离开庭审（{cause}）",
        "returned": "{at} {who}重新加入",
        "warned": "{at} 法庭警告{who}：{detail}",
        "recording_gap": "{at} {who}的录音录像中断 {detail} 秒",
        "recess": "{at} 休庭",
        "resume": "{at} 继续开庭",
        "interrupted": "{at} 庭审服务中断，转入休庭",
        "signatures": "签名",
        "signed": "{who}（签名）{at}",
        "signed_earlier": "{who}：签署的是笔录的较早版本，未就最终版本签名",
        "refused_to_sign": "{who}：拒绝签名（{reason}）",
        "not_signed": "{who}：未签名",
        "page": "第 {page} 页 共 {pages} 页",
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
        "interprets_for": "{name} (interpreting for {role} {party})",
        "to": "to",
        "colon": ": ",
        "list_sep": ", ",
        "recovered": " (recovered from the recording)",
        "gap": "[Record incomplete] What {speaker} said from {start} {until}could not be "
               "transcribed; the recording is authoritative.",
        "gap_until": "to {end} ",
        "gap_open": "on ",
        "judges": "Judges",
        "clerks": "Clerk",
        "identity": "Identity checks",
        "identity_verified": "{at} {who}: identity verified",
        "identity_refused": "{at} {who}: identity not verified ({reason})",
        "notes": "Attendance and interruptions",
        "left": "{at} {who} left the hearing ({cause})",
        "returned": "{at} {who} rejoined",
        "warned": "{at} the court warned {who}: {detail}",
        "recording_gap": "{at} the recording of {who} was interrupted for {detail} s",
        "recess": "{at} recess",
        "resume": "{at} the hearing resumed",
        "interrupted": "{at} the hearing's server failed; in recess",
        "signatures": "Signatures",
        "signed": "{who} (signature) {at}",
        "signed_earlier": "{who}: signed an earlier version, not the final one",
        "refused_to_sign": "{who}: refused to sign ({reason})",
        "not_signed": "{who}: not signed",
        "page": "Page {page} of {pages}",
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
class CourtNote:
    """What the court's document notes besides the lines, at the court's local time: an
    absence and its cause, a return, a warning, a recording gap, a recess."""

    at: datetime  # the court's local time
    kind: str  # left | returned | warned | recording_gap | recess | resume | interrupted
    name: str = ""
    role: str = ""
    detail: str = ""  # the cause (a code), the warning's words, the gap's seconds


@dataclass(frozen=True, slots=True)
class IdentityNote:
    at: datetime  # the court's local time
    name: str
    role: str
    outcome: str  # verified | refused
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class SignatureEntry:
    """A participant's place in the signature block."""

    name: str
    role: str
    status: str  # signed | stale | refused | pending
    at: datetime | None = None  # the court's local time
    reason: str | None = None
    picture: bytes | None = None  # the drawn signature (PNG)


@dataclass(frozen=True, slots=True)
class CourtDocument:
    """What the court's trial record holds beyond the lines (all optional)."""

    identity: Sequence[IdentityNote] = ()
    notes: Sequence[CourtNote] = ()
    signatures: Sequence[SignatureEntry] = ()


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
    # Each interpreter's party: (interpreter's name, party's role, party's name).
    interpreters: tuple[tuple[str, str, str], ...] = ()


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
    # 审判人员, 书记员, then each party's role with its people; observers and supervisors are
    # not participants of the record.
    parties = {name: (role, party) for name, role, party in header.interpreters}
    groups: dict[str, list[str]] = {}
    for name, role in header.participants:
        if role == "interpreter" and name in parties:
            party_role, party = parties[name]
            name = labels["interprets_for"].format(
                name=name, role=role_label(party_role, language), party=party)
        if role != "observer":
            groups.setdefault(role, []).append(name)
    named = {"judge": labels["judges"], "clerk": labels["clerks"]}
    for role in ["judge", "clerk", *(r for r in groups if r not in named)]:
        if role in groups:
            fields.append((named.get(role, role_label(role, language)),
                           labels["list_sep"].join(groups[role])))
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


def _who(name: str, role: str, language: str) -> str:
    return f"{role_label(role, language)} {name}".strip() if language == "en" \
        else f"{role_label(role, language)}{name}"


def _hm(moment: datetime) -> str:
    return f"{moment:%H:%M}"


def identity_lines(extras: CourtDocument, language: str = "zh") -> list[str]:
    labels = FIELD_LABELS[_lang(language)]
    return [labels[f"identity_{n.outcome}"].format(
        at=_hm(n.at), who=_who(n.name, n.role, language), reason=n.reason or "")
        for n in sorted(extras.identity, key=lambda n: n.at)]


def note_lines(extras: CourtDocument, language: str = "zh") -> list[str]:
    labels = FIELD_LABELS[_lang(language)]
    out = []
    for note in sorted(extras.notes, key=lambda n: n.at):
        detail = cause_label(note.detail, language) if note.kind == "left" else note.detail
        out.append(labels[note.kind].format(
            at=_hm(note.at), who=_who(note.name, note.role, language), cause=detail,
            detail=detail))
    return out


def signature_line(entry: SignatureEntry, language: str = "zh") -> str:
    labels = FIELD_LABELS[_lang(language)]
    who = _who(entry.name, entry.role, language)
    if entry.status == "signed":
        return labels["signed"].format(
            who=who, at=_datetime(entry.at, language) if entry.at else "")
    if entry.status == "refused":
        return labels["refused_to_sign"].format(who=who, reason=entry.reason or "")
    return labels["signed_earlier" if entry.status == "stale" else "not_signed"].format(who=who)


def _entries(lines: Iterable[SpeakerLine], gaps: Iterable[RecordGap]
             ) -> list[SpeakerLine | RecordGap]:
    """Lines and gaps in the order they happened (a gap before a line starting with it)."""
    entries: list[SpeakerLine | RecordGap] = [*gaps, *_ordered(lines)]
    return sorted(entries, key=lambda e: (e.start, not isinstance(e, RecordGap)))


def to_text(header: TrialRecordHeader, lines: Iterable[SpeakerLine], language: str = "zh",
            gaps: Iterable[RecordGap] = (), extras: CourtDocument = CourtDocument()) -> str:
    """The record as plain text: the header, the identity checks, then `[00:01:02] 审判员
    张三：…` lines (where speech could not be transcribed, a note saying so), attendance and
    interruptions, and the signatures."""
    labels = FIELD_LABELS[_lang(language)]
    out = [f"{header.court} {labels['title']}", ""]
    out += [f"{name}{labels['colon']}{value}" for name, value in _header_fields(header, language)]
    out.append("")
    if extras.identity:
        out += [labels["identity"], *identity_lines(extras, language), ""]
    tail = []
    if extras.notes:
        tail += ["", labels["notes"], *note_lines(extras, language)]
    if extras.signatures:
        tail += ["", labels["signatures"],
                 *(signature_line(e, language) for e in extras.signatures)]
    for entry in _entries(lines, gaps):
        stamp = _clock(entry.start, ".")[:8]
        if isinstance(entry, RecordGap):
            out.append(f"[{stamp}] {gap_text(entry, language)}")
            continue
        label = speaker_label(entry, language)
        out.append(f"[{stamp}] {label}{labels['colon']}{_one_line(entry.text)}"
                   f"{_recovered(entry, language)}")
    return "\n".join(out + tail) + "\n"


def to_docx(header: TrialRecordHeader, lines: Sequence[SpeakerLine], language: str = "zh",
            gaps: Iterable[RecordGap] = (), extras: CourtDocument = CourtDocument()) -> bytes:
    """The record as the court's Word document: A4, the court and 庭审笔录 heading, time,
    place and who took part, the identity checks, the speaker-labelled lines, attendance and
    interruptions, the signature block with the drawn signatures, page numbers."""
    labels = FIELD_LABELS[_lang(language)]
    document = Document()
    section = document.sections[0]
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.left_margin = section.right_margin = Mm(28)
    section.top_margin, section.bottom_margin = Mm(25), Mm(25)
    _page_numbers(section.footer.paragraphs[0], labels["page"])
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

    if extras.identity:
        _heading(document, labels["identity"])
        for text in identity_lines(extras, language):
            document.add_paragraph(text)
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
    if extras.notes:
        _heading(document, labels["notes"])
        for text in note_lines(extras, language):
            document.add_paragraph(text)
    if extras.signatures:
        _heading(document, labels["signatures"])
        for entry in extras.signatures:
            paragraph = document.add_paragraph(signature_line(entry, language))
            if entry.status == "signed" and entry.picture:
                paragraph.add_run().add_picture(io.BytesIO(entry.picture), width=Mm(40))
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _heading(document: Any, text: str) -> None:
    paragraph = document.add_paragraph()
    run = paragraph.add_run(text)
    run.bold = True
    run.font.size = Pt(13)


def _page_numbers(paragraph: Any, template: str) -> None:
    """`第 {page} 页 共 {pages} 页` in the footer, the numbers as Word fields."""
    paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
    before, rest = template.split("{page}")
    middle, after = rest.split("{pages}")
    for text, field_code in ((before, "PAGE"), (middle, "NUMPAGES"), (after, None)):
        if text:
            paragraph.add_run(text)
        if field_code is not None:
            simple = OxmlElement("w:fldSimple")
            simple.set(qn("w:instr"), field_code)
            run = OxmlElement("w:r")
            number = OxmlElement("w:t")
            number.text = "1"
            run.append(number)
            simple.append(run)
            paragraph._p.append(simple)
