"""Curves/errors/images routes, CSV, the compare error breakdown and the dashboard, on one real daemon.

One daemon for the module (tests/daemon_fixtures.py), with a bearer token and
one CPU worker: model ``det`` with v1 = weak.pt and v2 = strong.pt, both
evaluated with auto_promote on a 24-image synthetic dataset, and a compare job
(v1 vs v2, 50 bootstrap resamples). Nothing is mocked.

The browser tests drive Debian's headless Chromium through chromium-driver
(selenium): every page loads without a console error, holds drawn chart
marks, the leaderboard lists the model, and failure-example images load.
Screenshots are saved under ``<tmp>/dashboard-screenshots/``; set
``DASHBOARD_SCREENSHOTS`` to a folder to keep them.
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.daemon_fixtures import STRONG_PT, WEAK_PT, Daemon, make_dataset, place_model
from tests.test_error_analysis import read_ground_truth, recompute
from vision_eval.render import render_compare

pytestmark = pytest.mark.ultralytics
TOKEN = "dashboard-test-token"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


class Env:
    def __init__(self, daemon: Daemon, root: Path, dataset: Path) -> None:
        self.daemon, self.root, self.dataset = daemon, root, dataset
        self.http = httpx.Client(base_url=daemon.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120.0)
        self.jobs: dict[str, dict[str, Any]] = {}

    def run(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post(path, json={"imgsz": 320, **body})
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            job = self.http.get(f"/v1/vision/jobs/{job_id}").json()
            if job["status"] in ("completed", "failed", "cancelled"):
                assert job["status"] == "completed", (job, self.daemon.log_tail())
                return job
            time.sleep(0.3)
        raise AssertionError(f"job {job_id} did not finish:\n{self.daemon.log_tail()}")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("dashboard")
    dataset = make_dataset(root / "data", n_val=24, seed=0)
    daemon = Daemon(root, config={"paths": {"allowed_roots": [str(root)]}, "server": {"auth_token": TOKEN}})
    v1 = place_model(daemon.models_root, "det", WEAK_PT, "v1.pt")
    v2 = place_model(daemon.models_root, "det", STRONG_PT, "v2.pt")
    # A real image outside the dataset (one of its images plus a marker): the images route must never serve it.
    first = min((Path(dataset).parent / "images" / "val").iterdir())
    (root / "outside.png").write_bytes(first.read_bytes() + b"outside-the-dataset")
    try:
        daemon.start()
        e = Env(daemon, root, dataset)
        e.jobs["v1"] = e.run("/v1/vision/eval", {"model": str(v1), "dataset": str(dataset), "auto_promote": True})
        e.jobs["v2"] = e.run("/v1/vision/eval", {"model": str(v2), "dataset": str(dataset), "auto_promote": True})
        e.jobs["compare"] = e.run("/v1/vision/eval/compare", {"model_a": str(v1), "model_b": str(v2),
                                                              "dataset": str(dataset), "bootstrap_resamples": 50})
        yield e
        e.http.close()
    finally:
        daemon.stop()


def _eval_id(env: Env, key: str) -> int:
    return int(env.jobs[key]["result"]["eval_id"])


def test_curves_and_errors_by_job_and_by_evaluation_id(env: Env) -> None:
    job_id, eval_id = env.jobs["v1"]["job_id"], _eval_id(env, "v1")
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
    assert httpx.get(f"{env.daemon.url}/v1/vision/evaluations/{eval_id}/errors").status_code == 401


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
    eval_id = _eval_id(env, "v2")
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
    eval_id, job_id = _eval_id(env, "v1"), env.jobs["v1"]["job_id"]
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
    url = env.daemon.url
    page = httpx.get(f"{url}/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for name in ("app.js", "charts.js", "pages.js", "style.css"):
        assert httpx.get(f"{url}/dashboard/{name}", timeout=10).status_code == 200, name
    assert httpx.get(f"{url}/dashboard/session", timeout=10).json() == {"auth_required": True}
    assert httpx.get(f"{url}/dashboard/index.py", timeout=10).status_code == 404
    eval_id = _eval_id(env, "v1")
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
    per_class_a = env.http.get(f"/v1/vision/evaluations/{_eval_id(env, 'v1')}/errors").json()["per_class"]
    per_class_b = env.http.get(f"/v1/vision/evaluations/{_eval_id(env, 'v2')}/errors").json()["per_class"]
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
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("chromium and chromium-driver are required (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or tmp_path_factory.mktemp("dashboard-screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _open(driver: Any, url: str, timeout: float = 90.0) -> str:
    """Go to a dashboard route and wait until the page says it finished (``data-loaded``).

    A route of the page already open is re-rendered (a hash change reloads nothing)."""
    base, _, route = url.partition("#")
    if driver.current_url.split("#")[0] != base:
        driver.get(url)
    else:
        driver.execute_script(
            "document.getElementById('view').dataset.loaded = '';"
            "if (location.hash === arguments[0]) window.dispatchEvent(new HashChangeEvent('hashchange'));"
            "else location.hash = arguments[0];", "#" + route)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        loaded = driver.execute_script("const v = document.getElementById('view'); return v && v.dataset.loaded")
        if loaded:
            return str(loaded)
        time.sleep(0.2)
    raise AssertionError(f"{url} did not finish loading: {driver.page_source[:2000]}")


def _console_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _marks(driver: Any, selector: str = "svg .mark") -> int:
    return int(driver.execute_script(f"return document.querySelectorAll({json.dumps(selector)}).length"))


def test_every_dashboard_page_renders_with_charts_and_no_console_error(env: Env, browser: Any, shots: Path) -> None:
    url = env.daemon.url
    # The token is entered once per browser session, in the form the page shows after a 401.
    browser.get(f"{url}/#/leaderboard")
    deadline = time.monotonic() + 30
    while not browser.execute_script("return !document.getElementById('token-form').hidden"):
        assert time.monotonic() < deadline, browser.page_source[:2000]
        time.sleep(0.2)
    assert _console_errors(browser) == []  # the page asked whether a token is needed: no 401 shown
    browser.find_element("id", "token-input").send_keys(TOKEN)
    browser.find_element("css selector", "#token-form button").click()
    eval_a, eval_b = _eval_id(env, "v1"), _eval_id(env, "v2")
    pages = {
        "leaderboard": ("#/leaderboard", "table.leaderboard tbody tr", None),
        "models": ("#/models", "tbody tr", None),
        "model": ("#/model/det", "svg .mark", 4),
        "evaluation": (f"#/eval/{eval_a}", "svg .mark", 50),
        "evaluation-strong": (f"#/eval/{eval_b}", "svg .mark", 50),
        "comparison": (f"#/compare/{env.jobs['compare']['job_id']}", "svg.forest .mark", 4),
        "jobs": ("#/jobs", "tbody tr .progress", None),
    }
    for name, (route, selector, min_marks) in pages.items():
        loaded = _open(browser, f"{url}/{route}")
        browser.save_screenshot(str(shots / f"{name}.png"))
        assert loaded != "error", (name, browser.find_element("id", "view").text[:1000])
        assert _console_errors(browser) == [], name
        count = _marks(browser, selector)
        assert count >= (min_marks or 1), (name, selector, count)
        if name == "leaderboard":
            assert "det" in browser.find_element("css selector", "table.leaderboard").text
        if name.startswith("evaluation"):
            assert _marks(browser, "svg.heatmap .mark") > 0
            assert _marks(browser, "svg .operating-point") >= 2  # PR and F1 curves mark the operating point
        if name == "jobs":
            assert len(browser.find_elements("css selector", "tbody tr")) >= 3
    assert (shots / "evaluation.png").stat().st_size > 10_000


def test_a_failure_example_image_loads_in_the_gallery(env: Env, browser: Any, shots: Path) -> None:
    eval_id = _eval_id(env, "v1")
    _open(browser, f"{env.daemon.url}/#/eval/{eval_id}")
    loaded = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const images = [...document.querySelectorAll('.example svg image')];
        Promise.all(images.map((im) => new Promise((ok) => {
            const probe = new Image();
            probe.onload = () => ok(probe.naturalWidth > 0);
            probe.onerror = () => ok(false);
            probe.src = im.getAttribute('href');
        }))).then(done);
    """)
    browser.execute_script("document.querySelector('.example').scrollIntoView()")
    browser.save_screenshot(str(shots / "gallery.png"))
    assert loaded and all(loaded), loaded
    boxes = _marks(browser, ".example svg rect.mark")
    assert boxes >= len(loaded)
    assert _console_errors(browser) == []


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
    worker = httpx.get(f"{env.daemon.url}/healthz", timeout=10).json()["worker_info"]["pid"]
    assert "libtorch" in Path(f"/proc/{worker}/maps").read_text()
