"""Pieces of continuous speech cut at the maximum length, joined back into whole lines."""

from __future__ import annotations

from transcription.stitching import (
    MAX_LINE_S,
    Piece,
    Stitcher,
    TimedLine,
    Word,
    joined_text,
    stitch,
)


def spoken(text: str, start: float, step: float = 0.4) -> tuple[Word, ...]:
    """Words one after another, `step` seconds each, from `start`."""
    return tuple(
        (word, start + i * step, start + (i + 1) * step - 0.05, 0.9)
        for i, word in enumerate(text.split())
    )


def line(words: tuple[Word, ...], language: str = "en") -> TimedLine:
    separator = "" if language == "zh" else " "
    text = separator.join(w[0] for w in words)
    return TimedLine(words[0][1], words[-1][2], text, words, language)


def texts(lines: list[TimedLine]) -> list[str]:
    return [line.text for line in lines]


SENTENCE = "I am represented by my lawyer and I ask the court to hear my witness today."


def test_words_heard_in_both_pieces_are_kept_once_and_the_sentence_is_one_line() -> None:
    words = spoken(SENTENCE, 10.0)  # 15 words, 10.0 to 16.0
    cut = 14.0
    # The first piece ends at the cut: its last word is clipped into something else.
    first = (*words[:10], ("wi", 14.0, 14.0, 0.1))
    # The second starts 2 s earlier, mid-word: its first word is garbled.
    second = (("ter", 12.0, 12.3, 0.2), *words[6:])
    stitcher = Stitcher(overlap_s=2.0)
    assert stitcher.add(Piece(5.0, cut, (line(first),), cut=True)) == []
    assert stitcher.held_from == 10.0
    out = stitcher.add(Piece(cut - 2.0, 18.0, (line(second),), overlap_s=2.0))
    assert texts(out) == [SENTENCE]
    assert out[0].words == words
    assert (out[0].start, out[0].end) == (words[0][1], words[-1][2])
    assert stitcher.held_from is None


def test_lines_before_the_overlap_are_final_at_once() -> None:
    early = spoken("The court is in session.", 0.5)
    late = spoken("Please be seated and", 12.5)
    stitcher = Stitcher(overlap_s=2.0)
    out = stitcher.add(Piece(0.0, 15.0, (line(early), line(late)), cut=True))
    assert texts(out) == ["The court is in session."]
    assert stitcher.held_from == 12.5
    # The next piece does not come (the speaker left and their last piece failed): the held
    # lines are given up as they are.
    assert texts(stitcher.flush()) == ["Please be seated and"]
    assert stitcher.flush() == []


def test_a_second_piece_that_skipped_its_start_leaves_the_first_pieces_words() -> None:
    words = spoken("two days later they found the truck in a garage outside the city", 40.0)
    cut = 45.0  # 40.0 .. 45.0 holds the first 12 words
    first = tuple(w for w in words if w[2] <= cut)
    # Whisper skipped the first 1.6 s of the second piece (it starts at 43.0).
    second = tuple(w for w in words if w[1] >= 44.6)
    out = stitch([line(first)], [line(second)], cut - 2.0, cut)
    assert texts(out) == [" ".join(w[0] for w in words)]
    # And the other way round: the first piece lost its last words before the cut.
    first = tuple(w for w in words if w[2] <= 43.5)
    second = tuple(w for w in words if w[1] >= 43.0)
    out = stitch([line(first)], [line(second)], cut - 2.0, cut)
    assert texts(out) == [" ".join(w[0] for w in words)]


def test_without_a_word_in_common_the_overlap_is_split_at_its_middle() -> None:
    first = spoken("alpha bravo charlie delta echo", 10.0, step=0.5)  # 10.0 .. 12.5
    second = (
        ("brava", 10.5, 10.95, 0.5),
        ("charley", 11.0, 11.45, 0.5),
        ("dell", 11.5, 11.95, 0.5),
        ("ecko", 12.0, 12.45, 0.5),
        ("foxtrot.", 12.5, 12.9, 0.5),
    )
    out = stitch([line(first)], [line(second)], 10.5, 12.5)
    words = [w[0] for w in out[0].words]
    # Middle 11.5: the first piece up to it, the second after it; nothing twice or lost.
    assert words == ["alpha", "bravo", "charlie", "dell", "ecko", "foxtrot."]


def test_a_finished_sentence_stays_its_own_line() -> None:
    first = spoken("Thank you. Please", 20.0)
    second = spoken("you. Please sit down.", 20.4)
    out = stitch(
        [line(first[:2]), line(first[2:])], [line(second[:1]), line(second[1:])], 20.0, 21.2
    )
    assert texts(out) == ["Thank you.", "Please sit down."]


def test_lines_are_not_merged_past_the_longest_line() -> None:
    first = spoken("word " * 30, 0.0, step=1.0)  # 30 s without a sentence end
    second = spoken("word " * 5, 28.0, step=1.0)
    out = stitch([line(first)], [line(second)], 28.0, 30.0)
    assert len(out) == 2
    assert all(piece.end - piece.start <= MAX_LINE_S for piece in out)
    assert sum(len(piece.words) for piece in out) == 33


def test_chinese_is_joined_without_spaces() -> None:
    said = "被告人对起诉书指控的事实没有异议。"
    chars = tuple((ch, 5.0 + i * 0.3, 5.25 + i * 0.3, 0.9) for i, ch in enumerate(said))
    first = chars[:11]  # 5.0 .. 8.25, cut at 8.3
    second = chars[6:]
    out = stitch([line(first, "zh")], [line(second, "zh")], 6.8, 8.3)
    assert texts(out) == ["被告人对起诉书指控的事实没有异议。"]
    assert out[0].language == "zh"


def test_a_piece_that_does_not_continue_the_held_one_releases_it_first() -> None:
    held = spoken("and then he said", 13.0)
    stitcher = Stitcher(overlap_s=2.0)
    assert stitcher.add(Piece(0.0, 15.0, (line(held),), cut=True)) == []
    unrelated = spoken("Silence in court.", 40.0)
    out = stitcher.add(Piece(39.5, 42.0, (line(unrelated),)))
    assert texts(out) == ["and then he said", "Silence in court."]


def test_words_are_joined_as_the_language_writes_them() -> None:
    assert joined_text(["He", "was", "ill", "-disposed,", "wasn't", "he", "?"], "en") == (
        "He was ill-disposed, wasn't he?"
    )
    assert joined_text(["被告人", "，", "请", "起立", "。"], "zh") == "被告人，请起立。"


def test_a_piece_that_heard_nothing_leaves_the_other_pieces_words() -> None:
    words = spoken("the paint matched the marks on my car", 20.0)  # 20.0 .. 23.2
    out = stitch([line(words)], [], 21.0, 23.0)
    assert texts(out) == ["the paint matched the marks on my car"]
    out = stitch([], [line(words)], 19.0, 21.0)
    assert texts(out) == ["the paint matched the marks on my car"]
