"""CLI tables: column widths capped with an ellipsis, wide (CJK) characters measured as two cells."""

from __future__ import annotations

import re
import unicodedata

from vision_eval.render import render_leaderboard
from vision_eval.text_table import ELLIPSIS, clip, display_width, table


def cells(text: str) -> int:
    """Terminal cells of a line, counted independently: W/F two, combining none, others one."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def test_wide_characters_keep_columns_aligned() -> None:
    out = table(["MODEL", "SCORE", "DATASET"],
                [["検出器-大", 0.5, "/data/a.yaml"], ["det", 0.25, "/data/b.yaml"], ["café", 0.125, "/d/c.yaml"]])
    lines = out.splitlines()
    dataset_col = [cells(line[: line.index("/")]) for line in lines[1:]]
    assert len(set(dataset_col)) == 1, out  # every DATASET cell starts at the same cell offset
    assert cells(lines[0][: lines[0].index("DATASET")]) == dataset_col[0]
    assert display_width("検出器") == 6 and display_width("cafe\u0301") == 4


def test_long_cells_are_capped_with_an_ellipsis() -> None:
    long_path = "/data/" + "very-long-folder-name/" * 10 + "data.yaml"
    out = table(["MODEL", "DATASET", "N"], [["m", long_path, 1], ["n", "/d.yaml", 22]], max_width=30)
    first = out.splitlines()[1]
    cut = re.split(r" {2,}", first)[1]
    assert cut.endswith(ELLIPSIS) and cells(cut) <= 30 and long_path.startswith(cut[:-1])
    assert all(cells(line) <= len("MODEL") + 2 + 30 + 2 + 2 for line in out.splitlines())
    assert clip("検出器検出器", 5) == "検出" + ELLIPSIS and cells(clip("検出器検出器", 5)) == 5
    assert clip("short", 5) == "short"


def test_control_characters_do_not_break_rows() -> None:
    out = table(["A", "B"], [["two\nlines", "x"]])
    assert len(out.splitlines()) == 2 and "two lines" in out


def test_leaderboard_table_caps_a_long_model_name_and_aligns_cjk() -> None:
    row = {"rank": 1, "model_name": "模型" * 30, "version": 1, "score": 0.5, "mAP50": 0.6, "mAP50_95": 0.4,
           "precision": 0.7, "recall": 0.5, "f1": 0.58, "small_object_recall": 0.3, "inference_ms": 12.5,
           "dataset": "/data/set.yaml", "timestamp": "2026-01-01T00:00:00Z"}
    out = render_leaderboard([row, {**row, "rank": 2, "model_name": "short"}])
    lines = out.splitlines()
    assert ELLIPSIS in lines[1]
    score_col = {cells(line[: line.index("0.5000")]) for line in lines[1:]}
    assert len(score_col) == 1, out
