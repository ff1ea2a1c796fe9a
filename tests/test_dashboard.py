"""Curves/errors/images routes, CSV, the compare error breakdown and the dashboard, on one real daemon.

One daemon for the module, with a bearer token and one CPU worker, and one browser session
(tests/dashboard_env.py: detection, classification, segmentation, pose and obb evaluations and compares,
a model evaluated by path, a model whose evaluation failed). Nothing is mocked.

The browser tests drive Debian's headless Chromium through chromium-driver (selenium) at 1,400 px: every
page loads without a console error, is no wider than the window, holds drawn chart marks; per-class
tables sort; a confusion-matrix cell opens its images; gallery headings count what they draw and the
true totals, "show more" and the class filter page through the kept examples; compare flips draw A's and
B's predictions side by side; masks, keypoints and rotated boxes are drawn. Screenshots are saved under
``<tmp>/dashboard-screenshots/``; set ``DASHBOARD_SCREENSHOTS`` to a folder to keep them.
"""

from __future__ import annotations

import csv
import http.client
import io
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard_env import (
    TOKEN,
    Env,
    chromium,
    column_values,
    console_errors,
    count,
    images_loaded,
    make_env,
    open_route,
    overflow,
    select_class,
    skeleton_lines,
    wait_for,
)
from tests.test_error_analysis import read_ground_truth, recompute
from vision_eval.render import render_compare

pytestmark = pytest.mark.ultralytics


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    e = None
    try:
        e = make_env(tmp_path_factory.mktemp("dashboard"))
        yield e
        e.http.close()
    finally:
        if e is not None:
            e.daemon.stop()


def test_curves_and_errors_by_job_and_by_evaluation_id(env: Env) -> None:
    job_id, eval_id = env.jobs["v1"]["job_id"], env.eval_id("v1")
    for kind in ("curves", "errors"):
        by_job = env.http.get(f"/v1/vision/eval/{job_id}/{kind}")
        by_id = env.http.get(f"/v1/vision/evaluations/{eval_id}/{kind}")
        assert by_job.status_code == by_id.status_code == 200, (by_job.text, by_id.text)
        assert by_job.json() == by_id.json()
    errors = env.http.get(f"/v1/vision/evaluations/{eval_id}/errors", params={"boxes": "false"}).json()
    assert "prediction_types" not in errors
    full = env.http.get(f"/v1/vision/evaluations/{eval_id}/errors").json()
    assert len(full["prediction_types"]) == len(env.http.get(f"/v1/vision/eval/{job_id}/predictions").json())
    assert errors["overall"] == env.jobs["v1"]["result"]["error_counts"]
    assert sum(errors["overall"][t] for t in ("duplicate", "classification", "localization", "both",
                                              "background")) == errors["overall"]["fp"]
    result = env.http.get(f"/v1/vision/evaluations/{eval_id}").json()
    assert result["mAP50"] == env.jobs["v1"]["result"]["mAP50"]
    assert env.http.get("/v1/vision/evaluations/999999/curves").status_code == 404
    assert env.http.get("/v1/vision/evaluations/abc/curves").status_code == 400
    compare_id = env.jobs["compare"]["job_id"]
    assert env.http.get(f"/v1/vision/eval/{compare_id}/errors").status_code == 404
    assert env.daemon.http.get(f"/v1/vision/evaluations/{eval_id}/errors").status_code == 401


@pytest.mark.parametrize("which", ["v1", "v2"])
def test_served_errors_equal_an_independent_recomputation(env: Env, which: str) -> None:
    """What the daemon serves, box for box, against tests/test_error_analysis.py's recomputation from the
    served predictions artifact and the label files."""
    job = env.jobs[which]
    errors = env.http.get(f"/v1/vision/eval/{job['job_id']}/errors").json()
    predictions = env.http.get(f"/v1/vision/eval/{job['job_id']}/predictions").json()
    names, gts = read_ground_truth(Path(env.dataset))
    expected = recompute(predictions, gts, len(names), job["result"]["conf_threshold"])
    assert errors["prediction_types"] == expected["types"]
    assert errors["confusion_matrix"]["matrix"] == expected["matrix"]
    assert {k: errors["overall"][k] for k in expected["counts"]} == expected["counts"]


def test_artifacts_of_an_older_evaluation_are_computed_on_demand_identically(env: Env) -> None:
    eval_id = env.eval_id("v2")
    row = env.daemon.query("SELECT predictions_path FROM eval_results WHERE id = ?", (eval_id,))[0]
    folder = Path(row["predictions_path"]).parent
    before = {k: env.http.get(f"/v1/vision/evaluations/{eval_id}/{k}?boxes=true" if k == "errors" else
                              f"/v1/vision/evaluations/{eval_id}/{k}").json() for k in ("errors", "curves")}
    for name in ("errors.json", "curves.json"):
        (folder / name).unlink()  # as an evaluation stored before this version wrote them
    after_errors = env.http.get(f"/v1/vision/evaluations/{eval_id}/errors?boxes=true")
    assert after_errors.status_code == 200, (after_errors.text, env.daemon.log_tail())
    assert after_errors.json() == before["errors"]
    assert env.http.get(f"/v1/vision/evaluations/{eval_id}/curves").json() == before["curves"]


def test_images_are_served_only_by_a_listed_name(env: Env) -> None:
    eval_id, job_id = env.eval_id("v1"), env.jobs["v1"]["job_id"]
    errors = env.http.get(f"/v1/vision/evaluations/{eval_id}/errors").json()
    name = errors["images"][0]
    val_dir = Path(env.dataset).parent / "images" / "val"
    for url in (f"/v1/vision/evaluations/{eval_id}/images/{name}", f"/v1/vision/eval/{job_id}/images/{name}"):
        r = env.http.get(url)
        assert r.status_code == 200 and r.headers["content-type"].startswith("image/")
        assert r.content == (val_dir / name).read_bytes()
    outside = env.root / "outside.png"
    assert outside.is_file()
    tricks = [
        "../../outside.png", "..%2F..%2Foutside.png", "%2e%2e/%2e%2e/outside.png", str(outside),
        "%2F" + str(outside).lstrip("/").replace("/", "%2F"), "/" + str(outside), f"{name}/",
        "../val/" + name, "..\\..\\outside.png", "outside.png", f"{name}%00.png", str(Path(env.dataset)),
        "../" + Path(env.dataset).name, "../../../" * 8 + str(outside).lstrip("/"), "~/outside.png",
    ]
    # http.client sends the path byte for byte (httpx would normalise the dot segments away first).
    conn = http.client.HTTPConnection("127.0.0.1", env.daemon.port, timeout=30)
    try:
        for trick in tricks:
            conn.request("GET", f"/v1/vision/evaluations/{eval_id}/images/{trick}",
                         headers={"Authorization": f"Bearer {TOKEN}"})
            r = conn.getresponse()
            body = r.read()
            assert r.status in (400, 404), (trick, r.status)
            assert b"outside-the-dataset" not in body and not body.startswith(b"\x89PNG"), trick
            assert r.getheader("Content-Type", "").startswith("application/json"), trick
    finally:
        conn.close()


def test_dashboard_files_are_open_and_nothing_else_is(env: Env) -> None:
    """The static files need no token (they hold no data); every API route still does, also by dot tricks."""
    anonymous = env.daemon.http  # no token
    page = anonymous.get("/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for name in ("app.js", "charts.js", "pages.js", "style.css"):
        assert anonymous.get(f"/dashboard/{name}", timeout=10).status_code == 200, name
    assert anonymous.get("/dashboard/session", timeout=10).json() == {"auth_required": True}
    assert anonymous.get("/dashboard/index.py", timeout=10).status_code == 404
    eval_id = env.eval_id("v1")
    conn = http.client.HTTPConnection("127.0.0.1", env.daemon.port, timeout=30)
    try:
        for path in ("/dashboard/../v1/vision/jobs", "/dashboard/%2e%2e/v1/vision/jobs",
                     "/dashboard/..%2Fv1%2Fvision%2Fjobs", f"/dashboard/../v1/vision/evaluations/{eval_id}/errors",
                     "/dashboard/%2e%2e/%2e%2e/etc/passwd", "/dashboard/../../etc/passwd",
                     f"/v1/vision/evaluations/{eval_id}/errors", f"/v1/vision/evaluations/{eval_id}/images/0000.png"):
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
            assert r.status in (401, 404), (path, r.status)
            assert b'"jobs"' not in body and b"root:" not in body and b"overall" not in body, path
    finally:
        conn.close()


def test_leaderboard_and_history_as_csv(env: Env) -> None:
    r = env.http.get("/v1/vision/eval/leaderboard", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    as_json = env.http.get("/v1/vision/eval/leaderboard").json()
    assert [row["model_name"] for row in rows] == [row["model_name"] for row in as_json]
    assert [float(row["score"]) for row in rows] == [row["score"] for row in as_json]
    h = env.http.get("/v1/vision/eval/leaderboard/det", params={"format": "csv"})
    hist = list(csv.DictReader(io.StringIO(h.text)))
    assert [int(x["eval_id"]) for x in hist] == [x["eval_id"] for x in env.http.get("/v1/vision/eval/leaderboard/det").json()]
    assert env.http.get("/v1/vision/eval/leaderboard", params={"format": "xml"}).status_code == 400
    # The CLI's --csv prints the same columns and rows.
    cli = Path(sys.executable).parent / "vision-eval"
    environ = {**os.environ, "VISION_EVAL_URL": env.daemon.url, "VISION_EVAL_TOKEN": TOKEN}
    for args, expected in ((["leaderboard", "--csv"], r.text), (["history", "det", "--csv"], h.text)):
        out = subprocess.run([str(cli), *args], check=False, capture_output=True, text=True, timeout=60, env=environ)
        assert out.returncode == 0, out.stderr
        assert list(csv.reader(io.StringIO(out.stdout))) == list(csv.reader(io.StringIO(expected)))


def test_compare_shows_both_error_breakdowns_and_their_changes(env: Env) -> None:
    result = env.jobs["compare"]["result"]
    errors = result["errors"]
    a, b = env.jobs["v1"]["result"]["error_counts"], env.jobs["v2"]["result"]["error_counts"]
    assert errors["available"] and errors["a"] == a and errors["b"] == b
    for key, row in errors["rows"].items():
        assert row == {"a": a[key], "b": b[key], "diff": a[key] - b[key]}
    changed = [k for k in errors["rows"] if a[k] != b[k]]
    assert len(errors["changes"]) == len(changed) > 0
    assert f"localization errors {a['localization']} -> {b['localization']}" in errors["changes"] or a["localization"] == b["localization"]
    per_class_a = env.http.get(f"/v1/vision/evaluations/{env.eval_id('v1')}/errors").json()["per_class"]
    per_class_b = env.http.get(f"/v1/vision/evaluations/{env.eval_id('v2')}/errors").json()["per_class"]
    for name, rows in errors["per_class"].items():
        for key, row in rows.items():
            assert row == {"a": per_class_a[name][key], "b": per_class_b[name][key],
                           "diff": per_class_a[name][key] - per_class_b[name][key]}
    assert set(errors["per_size"]) == {"small", "medium", "large"}
    text = render_compare(result)
    assert "DIFF (A-B)" in text and errors["changes"][0] in text


# --------------------------------------------------------------------------- the dashboard in Chromium


@pytest.fixture(scope="module")
def browser(env: Env):
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or tmp_path_factory.mktemp("dashboard-screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_every_dashboard_page_renders_with_charts_and_no_console_error(env: Env, browser: Any, shots: Path) -> None:
    """Every page of every task loads, with its drawn marks, no console error, and no wider than 1,400 px."""
    url = env.daemon.url
    # The token is entered once per browser session, in the form the page shows after a 401.
    browser.get(f"{url}/#/leaderboard")
    wait_for(browser, "return !document.getElementById('token-form').hidden", 30)
    assert console_errors(browser) == []  # the page asked whether a token is needed: no 401 shown
    browser.find_element("id", "token-input").send_keys(TOKEN)
    browser.find_element("css selector", "#token-form button").click()
    compare = f"#/compare/{env.jobs['compare']['job_id']}"
    pages = {
        "leaderboard": ("#/leaderboard", "table.leaderboard tbody tr", None),
        "models": ("#/models", "tbody tr", None),
        "model": ("#/model/det", "svg .mark", 4),
        "evaluation": (f"#/eval/{env.eval_id('v1')}", "svg .mark", 50),
        "evaluation-strong": (f"#/eval/{env.eval_id('v2')}", "svg .mark", 50),
        "comparison": (compare, "svg.forest .mark", 4),
        "jobs": ("#/jobs", "tbody tr .progress", None),
        "evaluation-classification": (f"#/eval/{env.eval_id('cls1')}", "svg.heatmap rect.cell", 6),
        "comparison-classification": (f"#/compare/{env.jobs['cls_compare']['job_id']}", "svg.forest .mark", 4),
        "evaluation-segmentation": (f"#/eval/{env.eval_id('seg')}", ".example svg polygon.mask", 1),
        "evaluation-pose": (f"#/eval/{env.eval_id('pose1')}", ".example svg circle.keypoint", 4),
        "evaluation-obb": (f"#/eval/{env.eval_id('obb')}", ".example svg polygon.rotated", 1),
        "comparison-pose": (f"#/compare/{env.jobs['pose_compare']['job_id']}", ".pair svg circle.keypoint", 4),
        "model-by-path": ("#/model/best", "svg .mark", 1),
        "model-failed": ("#/model/broken", ".problems tbody tr", 1),
    }
    for name, (route, selector, min_marks) in pages.items():
        loaded = open_route(browser, f"{url}/{route}")
        browser.save_screenshot(str(shots / f"{name}.png"))
        assert loaded != "error", (name, browser.find_element("id", "view").text[:1000])
        assert console_errors(browser) == [], name
        assert overflow(browser) == 0, name  # nothing wider than the window: tables wrap
        marks = count(browser, selector)
        assert marks >= (min_marks or 1), (name, selector, marks)
        if name == "leaderboard":
            assert "det" in browser.find_element("css selector", "table.leaderboard").text
        if name.startswith("evaluation") and name != "evaluation-classification":
            assert count(browser, "svg.heatmap .mark") > 0
            assert count(browser, "svg .operating-point") >= 2  # PR and F1 curves mark the operating point
        if name == "jobs":
            assert len(browser.find_elements("css selector", "tbody tr")) >= 3
    assert (shots / "evaluation.png").stat().st_size > 10_000


def test_a_failure_example_image_loads_in_the_gallery(env: Env, browser: Any, shots: Path) -> None:
    open_route(browser, f"{env.daemon.url}/#/eval/{env.eval_id('v1')}")
    loaded = images_loaded(browser)
    browser.execute_script("document.querySelector('.example').scrollIntoView()")
    browser.save_screenshot(str(shots / "gallery.png"))
    assert loaded and all(loaded), loaded
    boxes = count(browser, ".example svg rect.mark")
    assert boxes >= len(loaded)
    assert console_errors(browser) == []


def test_a_real_daemon_refuses_the_cross_site_rollback_and_the_rebinding_host(env: Env) -> None:
    """Issue 15's request against the vision-evald process: a rollback of the promoted ``det`` posted by a
    foreign page (``Origin: http://evil.example``), or sent through a rebinding ``Host``, is a 403 JSON
    answer, with the token (which would otherwise roll back) and without it (a 403, not the token's 401:
    the guard comes first), and changes nothing. tests/test_browser_guard.py covers every route in process."""
    d = env.daemon
    current = d.models_root / "det" / "current.pt"
    before = current.read_bytes()
    ledger = d.query("SELECT COUNT(*) AS n FROM promotions")[0]["n"]
    for headers in ({"Origin": "http://evil.example"}, {"Host": f"evil.example:{d.port}"}):
        for client_headers in ({"Authorization": f"Bearer {TOKEN}"}, {}):
            r = d.http.post("/v1/vision/models/det/rollback", data={"reason": "x"},
                            headers={**client_headers, **headers})
            assert r.status_code == 403 and isinstance(r.json()["detail"], str), (headers, r.text)
    assert env.http.get("/v1/vision/models", headers={"Host": f"evil.example:{d.port}"}).status_code == 403
    assert current.read_bytes() == before
    assert d.query("SELECT COUNT(*) AS n FROM promotions")[0]["n"] == ledger
    assert env.http.get("/v1/vision/models").status_code == 200


def test_the_http_process_stays_free_of_torch_and_plotting(env: Env) -> None:
    """After evaluations, analyses (one recomputed on demand), images and every page: the daemon process
    has neither torch nor matplotlib mapped; its worker does have torch (the check can see it)."""
    maps = Path(f"/proc/{env.daemon.pid}/maps").read_text()
    assert "libtorch" not in maps and "matplotlib" not in maps
    worker = env.daemon.http.get("/healthz", timeout=10).json()["worker_info"]["pid"]
    assert "libtorch" in Path(f"/proc/{worker}/maps").read_text()


def _page_all(env: Env, eval_id: int, route: str, **query: Any) -> list[dict[str, Any]]:
    """Every item of a paged route, fetched 5 at a time."""
    items: list[dict[str, Any]] = []
    while True:
        page = env.get(f"/v1/vision/evaluations/{eval_id}/{route}", offset=len(items), limit=5, **query)
        items += page["items"]
        if not page["items"]:
            return items


def test_the_gallery_pages_the_kept_examples_with_true_counts(env: Env) -> None:
    eval_id = env.eval_id("v1")
    errors = env.get(f"/v1/vision/evaluations/{eval_id}/errors")
    summary = env.get(f"/v1/vision/evaluations/{eval_id}/errors", boxes="false", images="false")
    assert not {"images", "cells", "prediction_types"} & set(summary) and summary["examples"] == errors["examples"]
    for kind, examples in errors["examples"].items():
        page = env.get(f"/v1/vision/evaluations/{eval_id}/gallery", kind=kind, limit=3)
        assert (page["count"], page["stored"]) == (errors["overall"][kind], len(examples))
        items = _page_all(env, eval_id, "gallery", kind=kind)
        assert [{k: e[k] for k in x} for e, x in zip(items, examples)] == examples and len(items) == len(examples)
        for cls, counts in errors["per_class"].items():
            page = env.get(f"/v1/vision/evaluations/{eval_id}/gallery", kind=kind, cls=cls, limit=200)
            assert page["count"] == counts[kind] and all(e["class"] == cls for e in page["items"])
    cls = env.get(f"/v1/vision/evaluations/{env.eval_id('cls1')}/gallery", kind="mistakes", limit=200)
    assert cls["count"] == env.jobs["cls1"]["result"]["error_counts"]["wrong"] == cls["stored"] == len(cls["items"])
    assert env.http.get(f"/v1/vision/evaluations/{eval_id}/gallery", params={"kind": "nope"}).status_code == 400
    assert env.http.get("/v1/vision/evaluations/999999/gallery", params={"kind": "missed"}).status_code == 404


def test_cells_list_the_images_an_independent_recomputation_puts_there(env: Env) -> None:
    """Detection: each image's own matrix, recomputed alone by tests/test_error_analysis.py; classification:
    top-1 against the true class, from the predictions artifact."""
    names, gts = read_ground_truth(Path(env.dataset))
    rows = env.predictions("v1")
    conf = env.jobs["v1"]["result"]["conf_threshold"]
    errors = env.get(f"/v1/vision/evaluations/{env.eval_id('v1')}/errors")
    expected: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index, image in enumerate(errors["images"]):
        alone = recompute([r for r in rows if r["file_name"] == image], {image: gts[image]}, len(names), conf)
        for i, row in enumerate(alone["matrix"]):
            expected.update({(i, j): expected[(i, j)] + [index] for j, v in enumerate(row) if v})
    cells = errors["cells"]
    assert {(i, j): c for i, row in enumerate(cells) for j, c in enumerate(row) if c} == dict(expected)
    (i, j), indices = max(expected.items(), key=lambda kv: len(kv[1]))
    listed = _page_all(env, env.eval_id("v1"), "cells", predicted=i, true=j)
    assert [item["index"] for item in listed] == indices
    assert all({p["class"] for p in item["annotations"]["predictions"]} <= {errors["classes"][i]} for item in listed)
    images = env.get(f"/v1/vision/evaluations/{env.eval_id('cls1')}/errors")["images"]
    by_cell: dict[tuple[int, int], list[str]] = defaultdict(list)
    for r in sorted(env.predictions("cls1"), key=lambda r: images.index(r["file_name"])):
        by_cell[(r["top5"][0], r["true"])].append(r["file_name"])
    for (p, t), expected_images in by_cell.items():
        page = env.get(f"/v1/vision/evaluations/{env.eval_id('cls1')}/cells", predicted=p, true=t, limit=200)
        assert [item["image"] for item in page["items"]] == expected_images


@pytest.mark.parametrize("key", ["v1", "seg", "pose2", "obb", "cls2"])
def test_annotations_are_the_image_s_rows_at_the_operating_point(env: Env, key: str) -> None:
    """Against the whole predictions artifact (read by the predictions route, filtered here)."""
    rows, result = env.predictions(key), env.jobs[key]["result"]
    eval_id, names = env.eval_id(key), result["class_names"]
    errors = env.get(f"/v1/vision/evaluations/{eval_id}/errors", boxes="false")
    for image in errors["images"][:6]:
        notes = env.get(f"/v1/vision/evaluations/{eval_id}/annotations", image=image)
        mine = [r for r in rows if r["file_name"] == image]
        if key == "cls2":
            assert (notes["true"], notes["top5"]) == (names[mine[0]["true"]], [names[c] for c in mine[0]["top5"]])
            continue
        kept = [r for r in mine if r["score"] >= errors["conf_threshold"]]
        assert [{"class": names[r["category_id"]], **{k: v for k, v in r.items() if k not in ("file_name", "category_id")}}
                for r in kept] == notes["predictions"]
        assert all(len(g["box"]) == 4 for g in notes["ground_truth"])


def test_tables_sort_cells_open_and_the_gallery_counts_true(env: Env, browser: Any, shots: Path) -> None:
    url, errors = env.daemon.url, env.get(f"/v1/vision/evaluations/{env.eval_id('v1')}/errors")
    for key, column in (("v1", "ap50"), ("cls1", "recall")):
        open_route(browser, f"{url}/#/eval/{env.eval_id(key)}")
        for order in ("desc", "asc"):
            browser.find_element("css selector", f"table.per-class th[data-key={column}]").click()
            values = [float(v) for v in column_values(browser, "table.per-class", column)]
            assert values == sorted(values, reverse=order == "desc"), (key, order, values)
    # classification: a cell of the matrix opens the images the predictions put there
    rows = [r for r in env.predictions("cls1") if r["top5"][0] != r["true"]]
    p, t = rows[0]["top5"][0], rows[0]["true"]
    browser.find_element("css selector", f"svg.heatmap rect.cell[data-row='{p}'][data-col='{t}']").click()
    wait_for(browser, f"return document.querySelector('.cell-panel[data-cell=\"{p},{t}\"] .example')")
    shown = browser.execute_script("return [...document.querySelectorAll('.cell-panel .example')].map((e) => e.dataset.image)")
    assert sorted(shown) == sorted(r["file_name"] for r in rows if (r["top5"][0], r["true"]) == (p, t))
    browser.save_screenshot(str(shots / "cell-images.png"))
    # detection: every kind's heading counts what it draws and the true total; "show more"; the class filter
    open_route(browser, f"{url}/#/eval/{env.eval_id('v1')}")
    for block in browser.find_elements("css selector", ".kind:not(.empty)"):
        kind, cards = block.get_attribute("data-kind"), count(browser, ".example", block)
        assert int(block.get_attribute("data-count")) == errors["overall"][kind]
        assert cards == int(block.get_attribute("data-shown")) == min(8, len(errors["examples"][kind]))
        assert f"{errors['overall'][kind]} in all · {cards} shown" in block.find_element("css selector", "h3").text
    block = browser.find_element("css selector", ".kind[data-kind=background]")
    block.find_element("css selector", "button.more").click()
    wait_for(browser, "return document.querySelectorAll('.kind[data-kind=background] .example').length > 8")
    assert count(browser, ".example", block) == min(16, len(errors["examples"]["background"]))
    select_class(browser, "red")
    for block in browser.find_elements("css selector", ".kind:not(.empty)"):
        assert int(block.get_attribute("data-count")) == errors["per_class"]["red"][block.get_attribute("data-kind")]
        assert {c.text for c in block.find_elements("css selector", ".example b")} <= {"red"}
    assert console_errors(browser) == []


def test_flips_draw_a_and_b_side_by_side_and_failed_or_path_models_say_why(env: Env, browser: Any, shots: Path) -> None:
    url = env.daemon.url
    open_route(browser, f"{url}/#/compare/{env.jobs['compare']['job_id']}")
    flips = env.jobs["compare"]["result"]["statistics"]["flips"]
    names = env.jobs["v1"]["result"]["class_names"]
    for pair in browser.find_elements("css selector", ".pair"):
        image, cls = pair.get_attribute("data-image"), pair.get_attribute("data-class")
        assert image in flips[cls]["examples_a_only"] + flips[cls]["examples_b_only"]
        for card, key in zip(pair.find_elements("css selector", ".example"), ("v1", "v2")):
            conf = env.get(f"/v1/vision/evaluations/{env.eval_id(key)}/errors", boxes="false")["conf_threshold"]
            kept = [r for r in env.predictions(key) if r["file_name"] == image and names[r["category_id"]] == cls
                    and r["score"] >= conf]
            labelled = int(card.get_attribute("data-labelled"))
            assert count(browser, "svg rect.box", card) == min(10, len(kept)) + labelled, (image, cls, key)
    assert count(browser, ".pair") >= 2
    open_route(browser, f"{url}/#/compare/{env.jobs['cls_compare']['job_id']}")
    assert "McNemar" in browser.find_element("id", "view").text and count(browser, ".pair .right") >= 1
    assert count(browser, "table.per-class-diff tbody tr") == len(env.jobs["cls_compare"]["result"]["statistics"]["per_class"])
    assert skeleton_lines(browser) == (19, 15)  # COCO's 19 limbs; 4 gone with one hidden keypoint
    open_route(browser, f"{url}/#/model/broken")
    assert env.jobs["broken"]["error"] in browser.find_element("css selector", ".problems").text
    open_route(browser, f"{url}/#/leaderboard")
    browser.find_element("link text", "best").click()
    wait_for(browser, "return document.getElementById('view').dataset.loaded === '/model/best'")
    assert f"#{env.eval_id('path')}" in browser.find_element("id", "view").text
    assert console_errors(browser) == []
