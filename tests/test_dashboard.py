"""The dashboard as people see it: VisualDL over real records of tiny runs, a tiny sweep and the
notebook baseline, opened in a real browser (Debian's Chromium driven by Playwright), plus the
extra views' records read back. Screenshots land in outputs/test-artifacts/dashboard (git-ignored).

Skipped without Chromium or Playwright, except where GRU_EXP_REQUIRE_BROWSER=1 (CI) makes that a
failure."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run_sweep, tiny_overrides

CHROMIUM = os.environ.get("GRU_EXP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 # WebGL (the embedding projector's three.js) in software: recent Chromium no longer falls
                 # back to SwiftShader by itself when there is no GPU.
                 "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
SHOTS = REPO / "outputs" / "test-artifacts" / "dashboard"
BOUND_S = 20  # seconds a view may take to draw (VisualDL's parallel coordinates froze for minutes before)
PROJECTOR_BOUND_S = 60  # the embedding projector loads three.js and runs its PCA in a web worker first
# The projector's side panel ("Total variance described: 0.00%") is drawn at once; the points and the
# variance only once the tensor is parsed and the PCA has run, which on a loaded CI machine took longer
# than the screenshot's pause: so the view is ready when both are there, not when the panel is.
PROJECTED = ("() => /Points: [1-9]/.test(document.body.innerText)"
             " && !/Total variance described: 0\\.00%/.test(document.body.innerText)")


def _browser_missing() -> str:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; no browser download needed)"
    return "" if Path(CHROMIUM).is_file() else f"no Chromium at {CHROMIUM} (apt-get install chromium)"


MISSING = _browser_missing()
if MISSING and os.environ.get("GRU_EXP_REQUIRE_BROWSER") == "1":
    raise RuntimeError(f"GRU_EXP_REQUIRE_BROWSER=1 but {MISSING}")
needs_browser = pytest.mark.skipif(bool(MISSING), reason=MISSING)


def _read(vdl: Path):
    from visualdl import LogReader

    (path,) = sorted(vdl.glob("vdlrecords*"))
    return LogReader(file_path=str(path))


def test_extra_views_are_recorded(tiny_cfg, tmp_path):
    from gru_exp.train.run import run_training

    run_training(tiny_cfg("trainer.epochs=2", "logger.text_samples=5"), tmp_path / "r")
    reader = _read(tmp_path / "r" / "vdl")
    tags = reader.get_tags()
    assert "test/pr_positive" in tags["pr_curve"] and "test/roc_positive" in tags["roc_curve"]
    (roc,) = reader.get_data("roc_curve", "test/roc_positive")
    tpr, fpr = np.array(roc.roc_curve.tpr), np.array(roc.roc_curve.fpr)
    assert tpr.max() <= 1 + 1e-9 and fpr.max() <= 1 + 1e-9 and tpr[0] == pytest.approx(1.0)  # VisualDL's own: > 1
    texts = [r.text.encoded_text_string for r in reader.get_data("text", "test/confident_mistakes")]
    assert 1 <= len(texts) <= 5 and all("true " in t and "predicted " in t and "confidence" in t for t in texts)
    assert all(t.split("true ")[1].split(",")[0] != t.split("predicted ")[1].split(" ")[0] for t in texts)
    assert {"weights/embedding", "weights/gru", "weights/classifier", "grad_norm/gru"} <= set(tags["histogram"])
    assert len(reader.get_data("histogram", "weights/gru")) == 2  # one per epoch
    assert "embedding/words" in tags.get("embeddings", [])


# -- the browser ----------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base: str, path: str):
    with urllib.request.urlopen(f"{base}/app/api/{path}", timeout=30) as answer:
        body = json.loads(answer.read())
    assert body["status"] == 0, body
    return body["data"]


def _same(cell: str, value) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return math.isclose(float(cell), float(value), rel_tol=1e-5, abs_tol=1e-9)
        except ValueError:
            return False
    return cell == str(value)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory, learnable_archive):
    """Two runs, a run pruned after its first epoch (no test score), a 2-trial sweep and the
    baseline in one outputs folder, served by gru_exp.dashboard."""
    from gru_exp import dashboard
    from gru_exp.config.compose import compose_config
    from gru_exp.train.loop import Callback, StopRun
    from gru_exp.train.run import run_training

    class Prune(Callback):  # what a sweep's pruner does: stop the run after an epoch, unscored
        def on_epoch_end(self, state):
            raise StopRun("pruned", "pruned after epoch 1")

    home = tmp_path_factory.mktemp("home")
    for hidden in (8, 16, 12):
        cfg = compose_config(tiny_overrides(learnable_archive, home, f"model.hidden_size={hidden}",
                                            "trainer.epochs=2", "data.val_size=40", f"name=run_h{hidden}"))
        run_training(cfg, Path(cfg.paths.output_dir) / "runs" / f"h{hidden}", callbacks=[Prune()] if hidden == 12 else [])
    sweeps = home / "sweeps"
    sweeps.mkdir()
    (sweeps / "dash.yaml").write_text(f"""
study_name: dash
base: [data.path={learnable_archive}, data.cutoff=2, data.val_size=40, trainer.batch_size=16, trainer.epochs=2,
       model.embedding_size=16, model.hidden_size=16, trainer.progress_every_s=0]
n_trials: 2
sampler: {{name: random, seed: 0}}
pruner: {{name: none}}
params:
  trainer.lr: {{type: float, low: 1.0e-3, high: 1.0e-2, log: true}}
  model.pooling: {{type: categorical, choices: [max, mean]}}
""")
    env = {"GRU_EXP_SWEEPS_PATH": str(sweeps), "GRU_EXP_HOME": str(home)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        assert run_sweep("sweep=dash") == 0
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    output_dir = home / "outputs"
    port = _free_port()
    proc = dashboard.start(output_dir, port=port, log_file=home / "visualdl.log")
    try:
        yield f"http://127.0.0.1:{port}", output_dir
    finally:
        dashboard.stop(proc)  # its whole process group


@pytest.fixture(scope="module")
def browser(dashboard):
    from playwright.sync_api import sync_playwright

    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A page of its own for each test (a fresh browser context: no shared storage, cache or
    errors), so one view's JavaScript error fails that view's test and no other."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.errors = []  # JavaScript errors and failed requests of this test's page, checked by the test
    page.on("pageerror", lambda e: page.errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: m.type == "error" and "Failed to load resource" not in m.text
            and page.errors.append(f"console: {m.text[:200]}"))
    # VisualDL 2.5.3 asks for an icon it does not ship (/app/icons/dragger.svg): not ours to fix
    page.on("response", lambda r: r.status >= 400 and not r.url.endswith("/icons/dragger.svg")
            and page.errors.append(f"HTTP {r.status} {r.url}"))
    yield page
    context.close()


@needs_browser
def test_scalars_view_lists_every_run_with_a_readable_name(dashboard, page):
    base, _ = dashboard
    runs = _api(base, "scalar/tags")["runs"]
    page.goto(f"{base}/app/scalar", wait_until="load")
    page.wait_for_selector(".echarts canvas", timeout=BOUND_S * 1000)
    text = page.inner_text("body")
    page.screenshot(path=str(SHOTS / "scalars.png"))
    assert len(runs) == 7  # 3 runs (one pruned), 2 trials, the study's best-so-far curve, the baseline
    assert all(not r.startswith("/") and not r.endswith("/vdl") for r in runs), runs
    assert any("notebook baseline" in r for r in runs) and any("dash trial 1: lr=" in r for r in runs)
    assert all(r in text for r in runs) and page.errors == []


@needs_browser
def test_hparams_table_shows_every_value(dashboard, page):
    base, _ = dashboard
    indicators, runs = _api(base, "hparams/indicators"), _api(base, "hparams/list")
    names = [i["name"] for i in indicators["hparams"]] + [i["name"] for i in indicators["metrics"]]
    assert [i["name"] for i in indicators["metrics"]] == ["best_val"]  # no test score where runs are chosen
    page.goto(f"{base}/app/hyper-parameter", wait_until="load")
    page.wait_for_selector("div.table[role=table] .tbody [role=row] [role=cell]", timeout=BOUND_S * 1000)
    headers = page.eval_on_selector_all("div.table[role=table] .thead .th", "els => els.map(e => e.innerText.trim())")
    rows = page.eval_on_selector_all("div.table[role=table] .tbody [role=row]", """rows => rows.map(r =>
        Array.from(r.querySelectorAll('[role=cell]')).map(c => c.innerText.trim()))""")
    page.screenshot(path=str(SHOTS / "hparams_table.png"), full_page=True)
    assert headers[1:] == names and len(rows) == len(runs) == 6  # best-so-far logs no hparams
    by_id = {r["name"]: r for r in runs}
    bad = []
    for row in rows:
        trial, cells = row[0], dict(zip(headers[1:], row[1:]))
        assert trial.startswith("vdl/") and not trial.endswith("/vdl"), trial
        values = {**by_id[trial]["hparams"], **by_id[trial]["metrics"]}
        bad += [f"{trial}: {n}={cells.get(n)!r} (API {values.get(n)!r})" for n in names
                if cells.get(n) in (None, "", "undefined", "NaN") or not _same(cells[n], values.get(n))]
    assert bad == [] and any("notebook baseline" in r[0] for r in rows) and page.errors == []


@needs_browser
def test_parallel_coordinates_and_scatter_matrix_render_within_a_bound(dashboard, page):
    base, _ = dashboard
    indicators, runs = _api(base, "hparams/indicators"), _api(base, "hparams/list")
    n_h, n_m = len(indicators["hparams"]), len(indicators["metrics"])
    page.goto(f"{base}/app/hyper-parameter", wait_until="load")
    page.wait_for_selector("a:text-is('Parallel Coordinates View')", timeout=BOUND_S * 1000)
    page.click("a:text-is('Parallel Coordinates View')", no_wait_after=True)
    start = time.monotonic()
    # Waits up to 4x the bound, so a slow draw is measured and fails the bound below (a wait that gave
    # up at the bound itself left that assertion nothing to catch).
    page.wait_for_function("([a, l]) => document.querySelectorAll('.graph svg g.grid').length === a && "
                           "document.querySelectorAll('.graph svg path.line').length === l",
                           arg=[n_h + n_m, len(runs)], timeout=4 * BOUND_S * 1000, polling=100)
    drawn_s = time.monotonic() - start
    assert drawn_s < BOUND_S, f"the parallel coordinates took {drawn_s:.1f} s to draw (bound {BOUND_S} s)"
    page.screenshot(path=str(SHOTS / "hparams_parallel.png"), full_page=True)
    page.click("a:text-is('Scatter Plot Matrix View')")
    page.wait_for_function("n => document.querySelectorAll('div.cell svg').length === n", arg=n_h * n_m,
                           timeout=BOUND_S * 1000)
    dots = page.locator("div.cell svg g.dots circle").count()
    page.screenshot(path=str(SHOTS / "hparams_scatter.png"), full_page=True)
    assert dots == n_h * n_m * len(runs) and page.errors == []


def _best_epochs(output_dir: Path) -> dict[str, int]:
    """Each run's and trial's best epoch, from its own metrics.json, by its name in the dashboard."""
    records = {p.parent.name: json.loads(p.read_text()) for p in (output_dir / "runs").glob("*/metrics.json")}
    epochs = {f"runs/{name}": r["best_epoch"] for name, r in records.items() if r["status"] == "completed"}
    for p in (output_dir / "sweeps" / "dash").glob("trial_*/metrics.json"):
        epochs[f"dash trial {p.parent.name.split('_')[1]}:"] = json.loads(p.read_text())["best_epoch"]
    return epochs


def _check_curves(page, base: str, output_dir: Path, route: str, requested: list[str]) -> None:
    """PR or ROC: the one tag's chart, fed by every run's curve of its best epoch (the step the view
    names beside each run), each curve with points running from 0 to 1."""
    kind = route.split("-")[0]
    epochs = _best_epochs(output_dir)
    assert len(epochs) == 4, epochs  # 2 runs and 2 trials; the baseline and best-so-far have no curves
    runs = _api(base, f"{route}/tags")["runs"]
    assert len(runs) == 4 and all(any(r.startswith(name) for r in runs) for name in epochs), runs
    text = " ".join(page.inner_text("body").split())
    for name, epoch in epochs.items():
        run = next(r for r in runs if r.startswith(name))
        assert f"{run} Step {epoch}" in text, (run, epoch, text[:800])
        tag = urllib.parse.quote(f"test/{kind}_positive", safe="")
        assert f"{route}/list?run={urllib.parse.quote(run, safe='')}&tag={tag}" in requested, (run, requested)
        (step,) = _api(base, f"{route}/list?run={urllib.parse.quote(run, safe='')}&tag={tag}")
        assert step[1] == epoch and len(step[2]) >= 3, step[:2]  # [wall time, step, points, ...]
    assert page.locator(".echarts canvas").count() == 1


def _check_histograms(page, base: str, output_dir: Path, route: str, requested: list[str]) -> None:
    """Two groups (weights, grad_norm) of 3 parameter groups x 5 runs (the pruned run's first epoch
    too); the open group draws all 15."""
    text = " ".join(page.inner_text("body").split())
    assert "grad_norm 15" in text and "weights 15" in text, text[:400]
    page.wait_for_function("n => document.querySelectorAll('.echarts canvas').length === n", arg=15,
                           timeout=BOUND_S * 1000)
    asked = {u.split("histogram/list?", 1)[1] for u in requested if "histogram/list?" in u}
    assert len(asked) == 15 and all("grad_norm" in u for u in asked), sorted(asked)


def _check_projector(page, base: str, output_dir: Path, route: str, requested: list[str]) -> None:
    """The projector shows as many points as the run recorded words, and its PCA has run."""
    from visualdl import LogReader

    text = " ".join(page.inner_text("body").split())
    shown = text.split("Data Path: vdl/", 1)[1].split("/embedding/words", 1)[0]  # e.g. "runs h16"
    (path,) = sorted((output_dir / "vdl" / shown).glob("vdlrecords*"))
    (record,) = LogReader(file_path=str(path)).get_data("embeddings", "embedding/words")
    n_words = len(record.embeddings.embeddings)
    assert n_words >= 10 and f"Points: {n_words}" in text, (n_words, text[:600])
    variance = float(text.split("Total variance described: ", 1)[1].split("%", 1)[0])
    assert 0 < variance <= 100, text[:600]


def _wait_ready(page, ready: str, bound: float) -> None:
    """A CSS/text selector, or a JS predicate over the page."""
    if ready.startswith("() =>"):
        page.wait_for_function(ready, timeout=bound * 1000)
    else:
        page.wait_for_selector(ready, timeout=bound * 1000)


@needs_browser
@pytest.mark.parametrize("route,ready,shot,check", [
    ("pr-curve", "text=Step", "pr_curve.png", _check_curves),
    ("roc-curve", "text=Step", "roc_curve.png", _check_curves),
    ("sample/text", "text=confidence", "text_samples.png", None),
    ("histogram", ".echarts canvas", "histograms.png", _check_histograms),
    ("high-dimensional", PROJECTED, "embeddings.png", _check_projector),
], ids=["pr-curve", "roc-curve", "text", "histogram", "projector"])
def test_the_extra_views_render(dashboard, page, route, ready, shot, check):
    base, output_dir = dashboard
    requested: list[str] = []
    page.on("response", lambda r: "/api/" in r.url and r.status == 200 and requested.append(r.url.split("/api/", 1)[1]))
    page.goto(f"{base}/app/{route}", wait_until="load")
    bound = PROJECTOR_BOUND_S if route == "high-dimensional" else BOUND_S
    try:
        try:
            _wait_ready(page, ready, bound)
        except Exception:
            if route != "high-dimensional":
                raise
            # VisualDL 2.5.3's projector now and then stays at "Parsing data..." with every request
            # answered (seen in 1 of 3 CI runs, page errors []); a user reloads: so does the test, once
            page.reload(wait_until="load")
            _wait_ready(page, ready, bound)
        if route in ("pr-curve", "roc-curve"):  # every run's curve answered, not only the first
            page.wait_for_function("n => (document.body.innerText.match(/Step \\d+/g) || []).length >= n", arg=4,
                                   timeout=bound * 1000)
    except Exception as exc:
        page.screenshot(path=str(SHOTS / f"FAILED_{shot}"), full_page=True)
        text = " ".join(page.inner_text("body").split())[:600]
        raise AssertionError(f"{route}: {ready!r} not drawn within {bound} s; page errors {page.errors}; the page "
                             f"reads: {text}") from exc
    time.sleep(1.5)  # let the chart animate in before the screenshot
    page.screenshot(path=str(SHOTS / shot), full_page=True)
    if check:
        check(page, base, output_dir, route, requested)
    assert page.errors == []
