"""CLI tables: they fit the terminal's width without losing text (long cells wrap, paths shorten from the
left, rows too wide become cards), and wide (CJK) characters are measured as two cells."""

from __future__ import annotations

import unicodedata

import pytest

from vision_eval.render_rankings import render_leaderboard
from vision_eval.text_table import ELLIPSIS, display_width, shorten_left, table, terminal_width, wrap

REASON = ("gain 0.1575 [0.1262, 0.2154] (interval of the paired bootstrap over 24 images, 1000 resamples) "
          "does not clear min_delta 0.2, so current.pt keeps v2")


def cells(text: str) -> int:
    """Terminal cells of a line, counted independently: W/F two, combining none, others one."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def words(text: str) -> str:
    """The text's words in order, however it was wrapped."""
    return " ".join(text.split())


def test_wide_characters_keep_columns_aligned() -> None:
    out = table(["MODEL", "SCORE", "DATASET"],
                [["検出器-大", 0.5, "/data/a.yaml"], ["det", 0.25, "/data/b.yaml"], ["café", 0.125, "/d/c.yaml"]])
    lines = out.splitlines()
    dataset_col = [cells(line[: line.index("/")]) for line in lines[1:]]
    assert len(set(dataset_col)) == 1, out  # every DATASET cell starts at the same cell offset
    assert cells(lines[0][: lines[0].index("DATASET")]) == dataset_col[0]
    assert display_width("検出器") == 6 and display_width("cafe\u0301") == 4


def test_control_characters_do_not_break_rows() -> None:
    out = table(["A", "B"], [["two\nlines", "x"]])
    assert len(out.splitlines()) == 2 and "two lines" in out


def test_wrap_keeps_every_character() -> None:
    text = "a reason with 検出器 words and a-very-long-token-that-cannot-fit-on-one-line at the end"
    lines = wrap(text, 12)
    assert all(cells(line) <= 12 for line in lines), lines
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    assert words(" ".join(lines)).replace(" ", "") == text.replace(" ", "")
    assert wrap("short", 12) == ["short"]


def test_a_long_last_column_wraps_within_it() -> None:
    rows = [[4, "refused", REASON], [5, "promoted", "beats v2"]]
    out = table(["ID", "DECISION", "REASON"], rows, width=60)
    lines = out.splitlines()
    assert all(cells(line) <= 60 for line in lines), out
    assert words(REASON) in words(out)  # every word, in order
    start = lines[0].index("REASON")
    continuation = lines[2:-1]  # the first row's wrapped lines: blank but for the reason's column
    assert continuation and all(line[:start].strip() == "" and line[start:].strip() for line in continuation), out
    assert table(["ID", "DECISION", "REASON"], rows).count("\n") == 2  # no width: one line per row


def test_a_table_that_cannot_fit_becomes_cards() -> None:
    headers = ["RANK", "MODEL", "SCORE", "mAP50", "mAP50_95", "INF_MS", "EVALUATED", "REASON"]
    row = [1, "my-detector", "0.5123", "0.7000", "0.4500", "20.5 ms", "2026-01-01T00:00:00Z", REASON]
    out = table(headers, [row, [2, *row[1:]]], width=40)
    assert all(cells(line) <= 40 for line in out.splitlines()), out
    first, second = out.split("\n\n")
    assert first.splitlines()[0].split() == ["RANK:", "1"] and second.splitlines()[0].split() == ["RANK:", "2"]
    for h, value in zip(headers, row):
        assert words(f"{h}: {value}") in words(first), h


def test_paths_shorten_from_the_left_only_when_they_must() -> None:
    path = "/srv/projects/vision/datasets/traffic-cameras/2026-spring/data.yaml"
    rows = [["det", 0.5, path], ["weak", 0.25, "/d/b.yaml"]]
    wide = table(["MODEL", "SCORE", "DATASET"], rows, width=120, paths=[2])
    assert path in wide
    natural = max(cells(line) for line in wide.splitlines())
    narrow = table(["MODEL", "SCORE", "DATASET"], rows, width=natural - 20, paths=[2])
    cut = narrow.splitlines()[1].split()[-1]
    assert all(cells(line) <= natural - 20 for line in narrow.splitlines()), narrow
    assert cut.startswith(ELLIPSIS + "/") and path.endswith(cut[1:]) and cut.endswith("/2026-spring/data.yaml"), cut
    assert shorten_left("/a/b/my-detector/v3.pt", 20) == ELLIPSIS + "/my-detector/v3.pt"
    assert shorten_left("x.pt", 20) == "x.pt"


def test_the_width_comes_from_columns_else_no_limit_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "57")
    assert terminal_width() == 57
    monkeypatch.delenv("COLUMNS")
    assert terminal_width() is None  # pytest captures stdout: not a terminal


def test_leaderboard_keeps_a_long_cjk_model_name_whole() -> None:
    row = {"rank": 1, "model_name": "模型" * 30, "version": 1, "score": 0.5, "mAP50": 0.6, "mAP50_95": 0.4,
           "precision": 0.7, "recall": 0.5, "f1": 0.58, "small_object_recall": 0.3, "inference_ms": 12.5,
           "dataset": "/data/set.yaml", "timestamp": "2026-01-01T00:00:00Z"}
    wide = render_leaderboard([row, {**row, "rank": 2, "model_name": "short"}])
    lines = wide.splitlines()
    score_col = {cells(line[: line.index("0.5000")]) for line in lines[1:]}
    assert len(score_col) == 1, wide
    narrow = render_leaderboard([row], 80)
    assert all(cells(line) <= 80 for line in narrow.splitlines()), narrow
    assert "模型" * 30 in "".join(narrow.split())
