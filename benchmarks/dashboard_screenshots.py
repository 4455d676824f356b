"""Screenshots of gru-exp's VisualDL dashboard, as a person sees it, for docs/dashboard.md.

Starts VisualDL the way ``python -m gru_exp.dashboard`` does (``gru_exp.dashboard.start``: the
outputs folder's ``vdl/`` of readable links, on a free loopback port), opens each view in Debian's
Chromium (``/usr/bin/chromium``, headless, driven by Playwright; no browser download) and saves a
small PNG of each (1200x800 viewport, 1800x800 for the table; 256-colour palette, optimized) into
``--out``:

    scalars.png             Scalars: every run's curves (train/eval loss and accuracy, ...)
    hparams_table.png       HParams, table view: hidden, dropout, lr (--table-columns) and the metrics
    hparams_table_more.png  the same table showing embed, dir, seq_len, epochs, n_train (--more-columns) instead
                            (the other hyperparameters unchecked in VisualDL's side panel; the
                            Trial ID column widened by dragging its border)
    hparams_parallel.png    HParams, parallel coordinates view
    hparams_scatter.png     HParams, scatter plot matrix view
    pr_curve.png            PR curve of the best epoch's test predictions
    roc_curve.png           ROC curve of the same predictions
    text_samples.png        the most confident test mistakes (Text samples)
    confusion.png           each run's test confusion matrix (Samples, image tab)
    histograms.png          the GRU's weight / gradient-norm histograms per epoch
    embeddings.png          the word embeddings in the projector (High Dimensional)

How to run (needs ``pip install playwright`` and ``apt-get install chromium``; records from real
runs, e.g. the commands in docs/dashboard.md):

    export GRU_EXP_HOME=/work/dashhome           # the home whose outputs/ holds the runs
    python benchmarks/dashboard_screenshots.py --out docs/dashboard

Options: ``--outputs DIR`` (default: the composed ``paths.output_dir``, i.e.
``$GRU_EXP_HOME/outputs``), ``--out DIR`` (default ``docs/dashboard``), ``--chromium PATH``
(default ``$GRU_EXP_CHROMIUM`` or ``/usr/bin/chromium``), ``--only NAME ...`` (some of the views
above, without ``.png``), ``--axes a,b,...`` (the parallel coordinates' and scatter matrix's
hyperparameters, kept with VisualDL's side panel). It prints each file's size and what the page said went wrong (JavaScript
errors, failed requests); a view that does not draw within ``--timeout`` seconds is saved as
``FAILED_<name>.png`` and reported, and the script exits 1.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1200, "height": 800}
REPO = Path(__file__).resolve().parents[1]
WIDE = {"width": 1800, "height": 800}  # the table views: more columns side by side
EMBEDDING_SEARCH = "excellent"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def save_small(png: bytes, path: Path) -> int:
    """Write ``png`` as a 256-colour palette PNG (Pillow when installed, else as is); returns bytes."""
    try:
        from PIL import Image
    except ImportError:
        path.write_bytes(png)
        return len(png)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    return path.stat().st_size


# -- the views: each opens its page and waits until it has drawn its data --------------------------------

def scalars(page, base, timeout_ms):
    page.goto(f"{base}/app/scalar", wait_until="load")
    page.wait_for_selector(".echarts canvas", timeout=timeout_ms)
    # The validation curves of every run (the tag search takes a regular expression).
    page.fill("input[placeholder='Search tags in RegExp']", "eval/")
    page.wait_for_function("() => document.querySelectorAll('.echarts canvas').length >= 2", timeout=timeout_ms)
    time.sleep(2)


def _hparams(page, base, timeout_ms):
    page.goto(f"{base}/app/hyper-parameter", wait_until="load")
    page.wait_for_selector("div.table[role=table] .tbody [role=row] [role=cell]", timeout=timeout_ms)


def _widen_trial_column(page, pixels=220):
    """Drag the Trial ID column's border to the right, as a person would, so run names can be read."""
    box = page.locator("div.table[role=table] .thead [role=separator]").first.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for k in range(1, 21):  # small steps: the table follows mouse moves
        page.mouse.move(x + pixels * k / 20, y)
    page.mouse.up()


def _show_only(page, base, keep):
    """Uncheck, in the side panel, every hyperparameter not in ``keep`` (VisualDL's own filter):
    the table has one 200-pixel column per hyperparameter and would scroll sideways otherwise."""
    with urllib.request.urlopen(f"{base}/app/api/hparams/indicators", timeout=30) as answer:
        names = [h["name"] for h in json.loads(answer.read())["data"]["hparams"]]
    for name in names:
        if name not in keep:
            page.click(f"aside label:has(> div:text-is('{name}'))")
    time.sleep(0.5)


TO_TOP = "() => { for (const e of [document.scrollingElement, ...document.querySelectorAll('*')]) e.scrollTop = 0; }"


TABLE_COLUMNS = ["hidden", "dropout", "lr"]  # the hyperparameters each table screenshot keeps (--table-columns)
MORE_COLUMNS = ["embed", "dir", "seq_len", "epochs", "n_train"]  # (--more-columns)
AXES: list[str] = []  # the parallel coordinates' and scatter matrix's hyperparameters (--axes); empty: all


def _table(keep):
    def view(page, base, timeout_ms):
        _hparams(page, base, timeout_ms)
        _show_only(page, base, keep)
        page.evaluate(TO_TOP)  # clicking the side panel scrolled the page
        _widen_trial_column(page)
        page.evaluate("() => window.getSelection().removeAllRanges()")
        time.sleep(1)
    return view


def _axes(page, base):
    if AXES:  # the side panel's filter: the chosen axes instead of the columns the first run wrote first
        _show_only(page, base, AXES)
        page.evaluate(TO_TOP)


def hparams_parallel(page, base, timeout_ms):
    _hparams(page, base, timeout_ms)
    _axes(page, base)
    page.click("a:text-is('Parallel Coordinates View')", no_wait_after=True)
    page.wait_for_selector(".graph svg path.line", timeout=timeout_ms)
    time.sleep(1.5)


def hparams_scatter(page, base, timeout_ms):
    _hparams(page, base, timeout_ms)
    _axes(page, base)
    page.click("a:text-is('Scatter Plot Matrix View')", no_wait_after=True)
    page.wait_for_selector("div.cell svg g.dots circle", timeout=timeout_ms)
    time.sleep(1.5)


def _chart(route, tags="", settle_s=2.0):
    def view(page, base, timeout_ms):
        page.goto(f"{base}/app/{route}", wait_until="load")
        page.wait_for_selector(".echarts canvas", timeout=timeout_ms)
        if tags:  # the tag search takes a regular expression
            page.fill("input[placeholder='Search tags in RegExp']", tags)
        time.sleep(settle_s)  # let the charts animate in
    return view


def text_samples(page, base, timeout_ms):
    page.goto(f"{base}/app/sample/text", wait_until="load")
    page.wait_for_selector("text=confidence", timeout=timeout_ms)
    time.sleep(1)


def confusion(page, base, timeout_ms):
    """Samples, image tab: each run's test confusion matrix (``test/confusion``)."""
    page.goto(f"{base}/app/sample/image", wait_until="load")
    page.wait_for_selector("img", timeout=timeout_ms)
    time.sleep(2)


def embeddings(page, base, timeout_ms):
    page.goto(f"{base}/app/high-dimensional", wait_until="load")
    page.wait_for_selector("canvas", timeout=timeout_ms)
    # The projector loads the matrix and its labels, then runs PCA in the page.
    page.wait_for_selector("text=Points:", timeout=timeout_ms)
    time.sleep(3)
    # Search the labels for a word: the matches are listed on the left and highlighted in the cloud.
    page.locator("input").first.fill(EMBEDDING_SEARCH)
    time.sleep(4)


VIEWS = {
    "scalars": scalars,
    "hparams_table": _table(TABLE_COLUMNS),  # and the metrics
    "hparams_table_more": _table(MORE_COLUMNS),
    "hparams_parallel": hparams_parallel,
    "hparams_scatter": hparams_scatter,
    "pr_curve": _chart("pr-curve"),
    "roc_curve": _chart("roc-curve"),
    "text_samples": text_samples,
    "confusion": confusion,
    "histograms": _chart("histogram", "gru", settle_s=8.0),
    "embeddings": embeddings,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", type=Path, help="outputs folder holding vdl/ (default: paths.output_dir)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "dashboard")
    parser.add_argument("--chromium", default=os.environ.get("GRU_EXP_CHROMIUM", "/usr/bin/chromium"))
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a view may take to draw")
    parser.add_argument("--only", nargs="+", choices=sorted(VIEWS), help="only these views")
    parser.add_argument("--table-columns", help=f"hparams_table's columns, comma-separated (default {','.join(TABLE_COLUMNS)})")
    parser.add_argument("--more-columns", help=f"hparams_table_more's (default {','.join(MORE_COLUMNS)})")
    parser.add_argument("--axes", help="hparams_parallel's and hparams_scatter's hyperparameters, comma-separated "
                        "(default: all); they keep the order the first run wrote them in, and a name that is not "
                        "a column is ignored")
    args = parser.parse_args()
    for given, columns in ((args.table_columns, TABLE_COLUMNS), (args.more_columns, MORE_COLUMNS), (args.axes, AXES)):
        if given:
            columns[:] = given.split(",")

    from playwright.sync_api import sync_playwright

    from gru_exp import dashboard
    from gru_exp.config.compose import compose_config

    outputs = args.outputs or Path(compose_config([]).paths.output_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = dashboard.start(outputs, port=port)
    base = f"http://127.0.0.1:{port}"
    print(f"VisualDL over {outputs / 'vdl'} at {base}", file=sys.stderr)
    failed = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            contexts = {"narrow": browser.new_context(viewport=VIEWPORT), "wide": browser.new_context(viewport=WIDE)}
            for name in args.only or VIEWS:
                page = contexts["wide" if name.startswith("hparams_table") else "narrow"].new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e, errors=errors: errors.append(f"pageerror: {e}"))
                page.on("console", lambda m, errors=errors: m.type == "error"
                        and errors.append(f"console: {m.text[:200]}"))
                page.on("response", lambda r, errors=errors: r.status >= 400
                        and errors.append(f"HTTP {r.status} {r.url}"))
                start = time.monotonic()
                try:
                    VIEWS[name](page, base, args.timeout * 1000)
                    target = args.out / f"{name}.png"
                except Exception as exc:  # noqa: BLE001 (report every view, then fail)
                    failed.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                    target = args.out / f"FAILED_{name}.png"
                size = save_small(page.screenshot(), target)
                print(f"{target}  {size / 1024:6.1f} KB  drawn in {time.monotonic() - start:5.1f} s"
                      + "".join(f"\n    {e}" for e in errors))
                page.close()
            for context in contexts.values():
                context.close()
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    for line in failed:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
