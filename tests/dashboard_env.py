"""The one daemon and the one browser of tests/test_dashboard.py, and what its tests read off the pages.

``make_env`` starts a real daemon (tests/daemon_fixtures.py: a child process with a bearer token and one CPU
worker) and runs, through its API, what the dashboard shows:

- ``det``: v1 = weak.pt and v2 = strong.pt on a 24-image synthetic dataset (auto_promote), and a compare of
  them (``v1``, ``v2``, ``compare``);
- ``cls``: the committed classifiers (weak v1, strong v2) on the synthetic shapes (36 images, imgsz 64) and a
  compare of them (``cls1``, ``cls2``, ``cls_compare``);
- ``segment`` (strong, ``seg``), ``pose`` (weak and strong and their compare: ``pose1``, ``pose2``,
  ``pose_compare``) and ``obb`` (strong, ``obb``) on their 6-image synthetic datasets;
- ``best``: weak.pt evaluated by a path outside the models root (``path``);
- ``broken``: a checkpoint of the models root whose evaluation fails (its classes are not the dataset's):
  the job ``broken`` fails with that reason.

The browser is Debian's headless Chromium driven through chromium-driver (selenium) at 1,400 x 1,000.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.daemon_fixtures import FIXTURES_DIR, STRONG_PT, WEAK_PT, Daemon, make_dataset, place_model

TOKEN = "dashboard-test-token"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WINDOW = (1400, 1000)
TASK_IMGSZ = 320  # the API's least for segmentation, pose and obb
CLS_IMGSZ = 64
TASK_IMAGES = 6  # segmentation, pose and obb val images: enough for failures of every kind, cheap to evaluate


class Env:
    def __init__(self, daemon: Daemon, root: Path, dataset: Path) -> None:
        self.daemon, self.root, self.dataset = daemon, root, dataset
        self.http = httpx.Client(base_url=daemon.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120.0)
        self.jobs: dict[str, dict[str, Any]] = {}

    def run(self, path: str, body: dict[str, Any], status: str = "completed") -> dict[str, Any]:
        r = self.http.post(path, json={"imgsz": 320, **body})
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            job = self.http.get(f"/v1/vision/jobs/{job_id}").json()
            if job["status"] in ("completed", "failed", "cancelled"):
                assert job["status"] == status, (job, self.daemon.log_tail())
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not finish:\n{self.daemon.log_tail()}")

    def eval_id(self, key: str) -> int:
        return int(self.jobs[key]["result"]["eval_id"])

    def get(self, path: str, **params: Any) -> Any:
        r = self.http.get(path, params=params)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    def predictions(self, key: str) -> list[dict[str, Any]]:
        return self.get(f"/v1/vision/eval/{self.jobs[key]['job_id']}/predictions")  # type: ignore[no-any-return]


def _renamed_classes(dataset: Path, target: Path) -> Path:
    """The dataset's YAML with other class names: a detection checkpoint's evaluation on it fails."""
    text = dataset.read_text().replace(": red", ": ruby").replace(": green", ": jade").replace(": blue", ": navy")
    target.write_text(text)
    return target


def make_env(root: Path) -> Env:
    """Start the daemon and run every job (see the module contract); the caller stops ``env.daemon``."""
    from tests.fixtures.cls_synth import make_imagefolder
    from tests.fixtures.synth_tasks import make_task_dataset

    dataset = make_dataset(root / "data", n_val=24, seed=0)
    shapes = make_imagefolder(root / "shapes")
    tasks = {t: make_task_dataset(root / f"data-{t}", t, n_val=TASK_IMAGES, seed=0) for t in ("segment", "pose", "obb")}
    daemon = Daemon(root, config={"paths": {"allowed_roots": [str(root)]}, "server": {"auth_token": TOKEN}})
    m = daemon.models_root
    ckpt = {"v1": place_model(m, "det", WEAK_PT, "v1.pt"), "v2": place_model(m, "det", STRONG_PT, "v2.pt"),
            "cls1": place_model(m, "cls", FIXTURES_DIR / "cls_weak.pt", "v1.pt"),
            "cls2": place_model(m, "cls", FIXTURES_DIR / "cls_strong.pt", "v2.pt"),
            "seg": place_model(m, "segment", FIXTURES_DIR / "segment_strong.pt", "v1.pt"),
            "pose1": place_model(m, "pose", FIXTURES_DIR / "pose_weak.pt", "v1.pt"),
            "pose2": place_model(m, "pose", FIXTURES_DIR / "pose_strong.pt", "v2.pt"),
            "obb": place_model(m, "obb", FIXTURES_DIR / "obb_strong.pt", "v1.pt"),
            "broken": place_model(m, "broken", WEAK_PT, "v1.pt")}
    (root / "elsewhere").mkdir()
    ckpt["path"] = Path(shutil.copy(WEAK_PT, root / "elsewhere" / "best.pt"))
    # A real image outside the dataset (one of its images plus a marker): the images route must never serve it.
    first = min((Path(dataset).parent / "images" / "val").iterdir())
    (root / "outside.png").write_bytes(first.read_bytes() + b"outside-the-dataset")
    daemon.start()
    e = Env(daemon, root, dataset)
    data = {"v1": dataset, "v2": dataset, "cls1": shapes, "cls2": shapes, "seg": tasks["segment"],
            "pose1": tasks["pose"], "pose2": tasks["pose"], "obb": tasks["obb"], "path": dataset}
    size = {"cls1": CLS_IMGSZ, "cls2": CLS_IMGSZ, "seg": TASK_IMGSZ, "pose1": TASK_IMGSZ, "pose2": TASK_IMGSZ,
            "obb": TASK_IMGSZ}
    for key, ds in data.items():
        e.jobs[key] = e.run("/v1/vision/eval", {"model": str(ckpt[key]), "dataset": str(ds), "auto_promote": key != "path",
                                                "imgsz": size.get(key, 320)})
    for key, (a, b) in {"compare": ("v1", "v2"), "cls_compare": ("cls1", "cls2"), "pose_compare": ("pose1", "pose2")}.items():
        e.jobs[key] = e.run("/v1/vision/eval/compare", {"model_a": str(ckpt[a]), "model_b": str(ckpt[b]),
                                                        "dataset": str(data[a]), "bootstrap_resamples": 50,
                                                        "imgsz": size.get(a, 320)})
    e.jobs["broken"] = e.run("/v1/vision/eval", {"model": str(ckpt["broken"]),
                                                 "dataset": str(_renamed_classes(dataset, root / "renamed.yaml"))},
                             status="failed")
    return e


def chromium() -> Any:
    """A headless Chromium session at ``WINDOW`` with its console log kept."""
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("chromium and chromium-driver are required (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    return driver


def open_route(driver: Any, url: str, timeout: float = 90.0) -> str:
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
    return wait_for(driver, "const v = document.getElementById('view'); return v && v.dataset.loaded", timeout, url)


def wait_for(driver: Any, script: str, timeout: float = 60.0, what: str = "") -> Any:
    """Poll ``script`` in the page until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what or script} never came true: {driver.page_source[:2000]}")


def console_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def count(driver: Any, selector: str, within: Any = None) -> int:
    if within is not None:
        return len(within.find_elements("css selector", selector))
    return int(driver.execute_script(f"return document.querySelectorAll({json.dumps(selector)}).length"))


def overflow(driver: Any) -> int:
    """How many pixels the page is wider than the window's viewport (0: nothing scrolls sideways)."""
    return int(driver.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"))


def images_loaded(driver: Any) -> list[bool]:
    """Whether each drawn image of the page decodes (fetched with the token, as object URLs)."""
    return list(driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const images = [...document.querySelectorAll('.example svg image')];
        Promise.all(images.map((im) => new Promise((ok) => {
            const probe = new Image();
            probe.onload = () => ok(probe.naturalWidth > 0);
            probe.onerror = () => ok(false);
            probe.src = im.getAttribute('href');
        }))).then(done);
    """))


def column_values(driver: Any, table: str, key: str) -> list[str]:
    """The texts of a table's column (by its header's ``data-key``), top to bottom."""
    return list(driver.execute_script("""
        const table = document.querySelector(arguments[0]);
        const col = [...table.querySelectorAll('thead th')].findIndex((th) => th.dataset.key === arguments[1]);
        return [...table.querySelectorAll('tbody tr')].map((tr) => tr.children[col].textContent);
    """, table, key))


def select_class(driver: Any, name: str) -> None:
    """Pick a class in the gallery's filter and wait until the gallery shows it."""
    driver.execute_script("const s = document.querySelector('select.class-filter'); s.value = arguments[0];"
                          "s.dispatchEvent(new Event('change'));", name)
    wait_for(driver, f"return document.querySelector('.kind') && "
                     f"document.querySelector('.kind').parentNode.dataset.cls === {json.dumps(name)}")


def skeleton_lines(driver: Any) -> tuple[int, int]:
    """Limbs ``Charts.annotatedImage`` draws for a 17-keypoint pose, all seen, then with keypoint 6 hidden."""
    return tuple(driver.execute_script("""
        const kpts = [...Array(17).keys()].flatMap((i) => [10 + 4 * i, 10 + 3 * i, 0.9]);
        const limbs = (k) => Charts.annotatedImage('data:,', 100, 100, [{ keypoints: k, color: '#f00' }])
            .querySelectorAll('line.limb').length;
        const hidden = [...kpts]; hidden[5 * 3 + 2] = 0;
        return [limbs(kpts), limbs(hidden)];
    """))
