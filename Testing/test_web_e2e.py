"""The residents' web demo end to end: the server as a user starts it, headless Chromium driven by Playwright
(Testing/web/e2e.js: the system's Chromium through playwright-core, no browser download).

The driver waits for the first rendered frame, clicks Build and Evaluate, hovers a row, plays the quiz, downloads
the PDF report and plays the two what-ifs, and saves screenshots. Checked here: the panel's statuses and values
equal ``metrics.json`` of ``sibspine demo`` (the same case), the what-if statuses equal the library's what-ifs, the
report holds the same values, the views show image content (pixels of the screenshots, not a blank or loading
screen), Build adds the derived outlines, nothing is loaded from outside the machine. Setup (``make test`` does
it): node >= 20, ``npm ci --prefix Testing/web``, Chromium (``apt-get install -y chromium``) and Mesa EGL; a
missing piece FAILS the test, naming the step.
"""

import ctypes.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO

pytestmark = pytest.mark.mrml

WEB = REPO / "Testing" / "web"
DRIVER = WEB / "e2e.js"
VIEWS = ("SBRTFusion", "Red", "Yellow")
PTV_EVAL_RGB = (255, 115, 191)  # the protocol's PTV_Eval colour (1.0, 0.45, 0.75)


def setup_problems():
    """The setup steps that are missing, as sentences naming the fix."""
    problems = []
    node = shutil.which("node")
    if node is None:
        problems.append(
            "Node.js >= 20 is not installed (Debian 12's nodejs is 18, too old for playwright-core: install "
            "nodejs 20 from NodeSource or a newer Debian)."
        )
    else:
        version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
        if int(version.lstrip("v").split(".")[0] or 0) < 20:
            problems.append(f"Node.js {version} is too old: playwright-core needs Node.js >= 20.")
    if not (WEB / "node_modules" / "playwright-core" / "package.json").is_file():
        problems.append("playwright-core is not installed: run `npm ci --prefix Testing/web`.")
    if not (os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")):
        problems.append("Chromium is not installed: `apt-get install -y chromium` (or set CHROMIUM_PATH).")
    if ctypes.util.find_library("EGL") is None:
        problems.append(
            "Mesa EGL (offscreen rendering) is missing: `apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri`."
        )
    return problems


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = (line.partition(":") for line in f)
        return {k: int(v.split()[0]) / 1024.0 for k, _, v in fields if k in ("VmRSS", "VmHWM")}


@pytest.fixture(scope="module")
def metrics(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    exe = Path(sys.executable).with_name("sibspine")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "SIBSpineSBRTLib"]
    proc = subprocess.run([*cmd, "demo", "--out", str(out), "--no-report"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """One run of the driver against a fresh server (empty case cache: the case is built as on a first start)."""
    problems = setup_problems()
    if problems:
        pytest.fail("The web e2e test needs its setup: " + " ".join(problems), pytrace=False)
    out = tmp_path_factory.mktemp("web")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(REPO / "SIBSpineSBRT"), os.environ.get("PYTHONPATH", "")]),
        SIBSPINE_CACHE_DIR=str(out / "cache"),
    )
    driver = subprocess.Popen(
        ["node", str(DRIVER), "--url", url, "--out", str(out), "--wait-stdin", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready = driver.stdout.readline()
    if "BROWSER-READY" not in ready:
        driver.kill()
        pytest.fail(f"The Playwright driver did not start Chromium: {ready}{driver.stderr.read()}", pytrace=False)
    log = open(out / "server.log", "w")
    t0 = time.time()
    server = subprocess.Popen(
        [sys.executable, "-m", "SIBSpineSBRTLib.frontends.web", "--case", "thoracic", "--variant", "pass"]
        + ["--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        driver.stdin.write(f"go {int(t0 * 1000)}\n")
        driver.stdin.flush()
        stdout, stderr = driver.communicate(timeout=400)
        time.sleep(2.0)  # idle: no page interaction, the last frames sent
        memory = rss_mb(server.pid) if server.poll() is None else {}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    server_log = (out / "server.log").read_text()
    assert driver.returncode == 0, f"driver failed:\n{stdout}\n{stderr}\nserver log:\n{server_log[-3000:]}"
    results = json.loads((out / "results.json").read_text())
    return {"results": results, "out": out, "log": server_log, "memory": memory, "driver_log": stdout}


def shown(row):
    """A metrics.json row's value as every front end shows it: rounded to its precision, with its unit."""
    from SIBSpineSBRTLib.protocol.model import precision_decimals

    v = f"{row['judged_value']:.{precision_decimals(row['precision'])}f}"
    return f"{v}%" if row["unit"] == "%" else f"{v} {row['unit']}"


def panel_order(rows):
    """The panel shows the protocol rows, then the advisory (unconfirmed) ones in their own block."""
    return [r for r in rows if r["confirmed"]] + [r for r in rows if not r["confirmed"]]


def screenshot(web, name):
    from PIL import Image

    return np.asarray(Image.open(web["out"] / name).convert("RGB")).astype(int)


def crop(img, rect):
    x, y, w, h = (int(round(rect[k])) for k in ("x", "y", "width", "height"))
    return img[y + 2 : y + h - 2, x + 2 : x + w - 2]


def near(img, rgb, tol=40):
    return int((np.abs(img - np.asarray(rgb)).max(axis=-1) <= tol).sum())


def test_timings_and_memory_are_reported(web, capsys):
    r = web["results"]
    timing = [line for line in web["log"].splitlines() if line.startswith("[timing]")]
    rss, peak = web["memory"].get("VmRSS", float("nan")), web["memory"].get("VmHWM", float("nan"))
    with capsys.disabled():
        print(
            f"\n[web e2e] server start -> first frame {r['first_frame_ms'] / 1000:.2f} s, -> case in every view "
            f"{r['case_frame_ms'] / 1000:.2f} s (empty case cache); idle RSS after the session {rss:.0f} MB "
            f"(peak {peak:.0f} MB)"
        )
        for line in timing:
            print(f"[web e2e] server {line}")
        for s in r["steps"]:
            print(f"[web e2e]   {s['at_ms'] / 1000:6.2f} s  {s['name']}")
    assert r["first_frame_ms"] < 30000  # a sanity bound; bench_web_startup.py measures the real figure
    assert web["memory"].get("VmRSS", 0) > 100  # the server was alive and idle at the end


def test_panel_statuses_equal_metrics_json(web, metrics):
    ev = web["results"]["evaluated"]
    got = [(r["key"], r["status"], r["value"]) for r in ev["rows"]]
    want = [(f"{r['structure']} {r['metric']}", r["status"], shown(r)) for r in panel_order(metrics["rows"])]
    assert got == want
    assert ev["verdict"] == metrics["verdict"] == "pass"
    assert ev["verdict_text"].startswith("Verdict: PASS")


def test_views_show_image_content(web):
    r = web["results"]
    img = screenshot(web, "03_evaluated.png")
    for tag in VIEWS:
        assert r["loaded"]["views"][tag]["content"] > 0.05, tag  # in the frame itself (page canvas)
        view = crop(img, r["evaluated"]["views"][tag]["rect"])
        lit = (view.max(axis=-1) > 40).mean()
        assert lit > 0.05 and view.std() > 25, (tag, lit, view.std())  # anatomy, not a blank or uniform screen
        assert len(np.unique(view.reshape(-1, 3) // 16, axis=0)) > 20, tag  # many colours: an image, not text
    # the dose colour-wash: strongly coloured pixels in the dose views, far more than in the fusion view
    coloured = {t: r["evaluated"]["views"][t]["coloured"] for t in VIEWS}
    assert coloured["Red"] > 0.05 and coloured["Yellow"] > 0.05
    assert coloured["SBRTFusion"] < 0.5 * coloured["Red"]
    # no loading overlay left over the views
    assert "Loading the case" not in json.dumps(r["loaded"])


def test_mr_fused_and_segments(web, thoracic_case):
    loaded = web["results"]["loaded"]
    assert loaded["fusion_note"] == ""  # the case has an MR, registered: no "no MR" note
    assert loaded["segments"] == list(thoracic_case.segments)
    assert loaded["title"].startswith("thoracic (pass)")


def test_build_adds_the_derived_outlines(web):
    r = web["results"]
    assert r["built"]["derived"] == 3
    assert r["built"]["segments"][-3:] == ["PTV", "PTV_Eval", "SpinalCord_PRV02"]
    rect = r["loaded"]["views"]["SBRTFusion"]["rect"]
    before = near(crop(screenshot(web, "01_loaded.png"), rect), PTV_EVAL_RGB)
    after = near(crop(screenshot(web, "02_built.png"), rect), PTV_EVAL_RGB)
    assert before < 20 and after > 100, (before, after)  # the PTV_Eval outline appeared


def test_evaluate_draws_the_dvh(web):
    dvh = web["results"]["evaluated"]["dvh"]
    assert dvh["width"] > 300 and dvh["height"] > 150
    area = crop(screenshot(web, "03_evaluated.png"), dvh["rect"])
    assert (area.min(axis=-1) < 200).mean() > 0.01  # axes, curves and markers on the white figure


def test_rows_explain_themselves_on_hover(web, metrics):
    from SIBSpineSBRTLib.mrml.scene import new_scene
    from SIBSpineSBRTLib.review import teaching
    from SIBSpineSBRTLib.review.demo import run_demo_review

    ctx = new_scene()
    try:
        result, _ = run_demo_review(ctx.scene)
    finally:
        ctx.scene.Clear(1)
    hover = web["results"]["hover"]
    row = next(r for r in result.rows if f"{r.structure} {r.metric}" == hover["key"])
    lines = teaching.explain_row(row, result.protocol, result)
    shown = [line.strip() for line in hover["text"].splitlines() if line.strip()]
    assert shown == lines
    assert "Where the limit comes from: Mitsuyoshi et al. 2025, Table 1." in hover["text"]
    # the what-ifs in the browser are the library's what-ifs
    for key, mode, factor in (("whatif_whole", teaching.WHOLE, 1.1), ("whatif_boost", teaching.BOOST, 1.2)):
        expected = teaching.scaled_review(result, mode, factor).result
        got = web["results"][key]
        ordered = expected.protocol_rows + expected.advisory_rows
        assert [(r["key"], r["status"]) for r in got["rows"]] == [
            (f"{r.structure} {r.metric}", r.status) for r in ordered
        ], key
        assert [r["value"] for r in got["rows"]] == [r.value_text for r in ordered], key
        assert got["verdict"] == expected.verdict, key
    assert web["results"]["whatif_whole"]["verdict"] == "fail"  # x1.10 breaks PTV_Eval D90% and the D2% limits


def test_quiz_hides_the_verdict_until_judged(web, metrics):
    quiz = web["results"]["quiz"]
    assert quiz["hidden"]["verdict"] == "hidden"
    assert {r["status"] for r in quiz["hidden"]["rows"]} == {"hidden"}
    assert {r["label"] for r in quiz["hidden"]["rows"]} == {"?"}
    assert [r["value"] for r in quiz["hidden"]["rows"]] == [shown(r) for r in panel_order(metrics["rows"])]
    assert [r["status"] for r in quiz["answered"]["rows"]] == [r["status"] for r in panel_order(metrics["rows"])]
    assert quiz["feedback"].startswith("Correct. The plan PASSES")
    assert quiz["report_disabled"] is True  # the report would give the answer away


def test_report_pdf_downloads_with_the_panel_values(web, metrics):
    import io

    from pypdf import PdfReader

    assert web["results"]["report"] == {"filename": "sibspine_review.pdf", "failure": None}
    reader = PdfReader(io.BytesIO((web["out"] / "report.pdf").read_bytes()))
    text = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
    assert f"Verdict: {metrics['verdict'].upper()}" in text
    for r in metrics["rows"]:
        assert f"{r['structure']} {r['metric']} {shown(r)}" in text
    assert len([im for page in reader.pages for im in page.images]) == 7  # + trial ranges and 2 hot-spot slices


def test_nothing_loaded_from_outside_and_no_errors(web):
    r = web["results"]
    assert r["requests"]["external"] == []
    # trame's client probes POST /paraview/ once (405): harmless; nothing else may fail
    assert [f for f in r["requests"]["failed"] if not f.startswith("405 POST") or "/paraview/" not in f] == []
    assert not [c for c in r["console"] if c.startswith("pageerror")]
    assert "Traceback" not in web["log"]
