"""Web demo start-up: server process start -> first rendered frame in headless Chromium, and idle memory.

    .venv/bin/python Testing/benchmarks/bench_web_startup.py [--runs 5] [--case thoracic] [--no-baseline]

For each run: Chromium is launched first (Testing/web/e2e.js --wait-stdin), then the server process is started
and the clock starts; the driver reports when the first frame (``blob:`` image) arrives and when every view
shows the case. Three settings, side by side:

* ``demo (cached case)``: ``sibspine serve`` with the built teaching case in the cache (a normal start);
* ``demo (cold)``: an empty cache, so the teaching case is built after start-up;
* ``baseline``: the minimal trame-slicer app of the feasibility notes
  (/work/shared/notes/trame_min_app_example.py, or --baseline FILE), copied to a temporary folder at run time.

Idle memory is the server's resident set (VmRSS, and the peak VmHWM) 3 s after the page settled. Needs the
same setup as the e2e test: node, ``npm ci --prefix Testing/web``, Chromium, Mesa EGL.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "Testing" / "web" / "e2e.js"
BASELINE = Path("/work/shared/notes/trame_min_app_example.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid: int):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0])
    return fields


def one_run(server_cmd, env, out: Path, case_ready: bool, settle_s: float = 3.0) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    cmd = ["node", str(DRIVER), "--url", url, "--out", str(out), "--mode", "frame", "--wait-stdin", "1"]
    if case_ready:
        cmd.append("--case-ready")
    driver = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = driver.stdout.readline()
    if "BROWSER-READY" not in line:
        driver.kill()
        raise RuntimeError(f"driver did not start: {line}{driver.stderr.read()}")
    log = open(out / "server.log", "w")
    t0 = time.time()
    server = subprocess.Popen(
        [*server_cmd(port)], cwd=out, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        driver.stdin.write(f"go {int(t0 * 1000)}\n")
        driver.stdin.flush()
        _, err = driver.communicate(timeout=180)
        if driver.returncode != 0:
            raise RuntimeError(f"driver failed ({driver.returncode}): {err[-2000:]}")
        results = json.loads((out / "results.json").read_text())
        time.sleep(settle_s)
        mem = rss_kb(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    timing = [line for line in (out / "server.log").read_text().splitlines() if line.startswith("[timing]")]
    return {
        "first_frame_s": results["first_frame_ms"] / 1000.0,
        "case_frame_s": results.get("case_frame_ms", float("nan")) / 1000.0 if case_ready else None,
        "rss_mb": mem.get("VmRSS", 0) / 1024.0,
        "peak_mb": mem.get("VmHWM", 0) / 1024.0,
        "server_timing": timing,
    }


def summary(values):
    v = [x for x in values if x is not None]
    if not v:
        return "-"
    return f"median {statistics.median(v):5.2f}  min {min(v):5.2f}  max {max(v):5.2f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--case", default="thoracic")
    p.add_argument("--baseline", type=Path, default=BASELINE)
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--no-cold", action="store_true", help="skip the runs with an empty teaching-case cache")
    args = p.parse_args(argv)
    for need, hint in (("node", "install Node.js >= 20"),):
        if shutil.which(need) is None:
            print(f"SETUP: {need} not found: {hint}", file=sys.stderr)
            return 3
    python = sys.executable
    work = Path(tempfile.mkdtemp(prefix="sibspine-bench-web-"))
    env = dict(os.environ, PYTHONPATH=str(REPO / "SIBSpineSBRT"), SIBSPINE_CACHE_DIR=str(work / "cache"))
    env.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

    def demo(port):
        return [python, "-m", "SIBSpineSBRTLib.frontends.web", "--case", args.case, "--port", str(port)]

    # fill the cache once (not timed)
    sys.path.insert(0, str(REPO / "SIBSpineSBRT"))
    from SIBSpineSBRTLib.review.teaching import prepare_teaching_case

    prepare_teaching_case(args.case, "pass", work / "cache")

    settings = [("demo (cached case)", demo, env, True)]
    if not args.no_cold:
        settings.append(("demo (cold: case built after start)", demo, None, True))
    if not args.no_baseline:
        if args.baseline.is_file():
            copy = work / "baseline" / args.baseline.name
            copy.parent.mkdir()
            shutil.copy(args.baseline, copy)

            def baseline(port, copy=copy):
                return [python, str(copy), "--host", "127.0.0.1", "--port", str(port), "--server"]

            settings.append((f"baseline: {args.baseline.name}", baseline, env, False))
        else:
            print(f"(no baseline: {args.baseline} not found)")

    print(
        f"{args.runs} runs each; machine: {os.cpu_count()} cores, load average "
        f"{open('/proc/loadavg').read().split()[:3]}"
    )
    table = {}
    for name, cmd, run_env, case_ready in settings:
        rows = []
        for i in range(args.runs):
            e = run_env
            if e is None:  # cold: a fresh, empty cache every run
                e = dict(env, SIBSPINE_CACHE_DIR=str(work / f"cold-{i}"))
            out = work / f"{name.split()[0]}-{len(table)}-{i}"
            out.mkdir(parents=True)
            r = one_run(cmd, e, out, case_ready)
            rows.append(r)
            case = f"  case shown {r['case_frame_s']:5.2f} s" if r["case_frame_s"] is not None else ""
            print(
                f"  {name:38s} run {i + 1}: first frame {r['first_frame_s']:5.2f} s{case}  "
                f"idle RSS {r['rss_mb']:6.0f} MB (peak {r['peak_mb']:.0f} MB)"
            )
            for t in r["server_timing"]:
                print(f"      {t}")
        table[name] = rows
    print("\nserver process start -> first frame in the browser (s), and idle memory (MB):")
    for name, rows in table.items():
        print(f"  {name:38s} first frame {summary([r['first_frame_s'] for r in rows])}")
        if rows[0]["case_frame_s"] is not None:
            print(f"  {'':38s} case shown  {summary([r['case_frame_s'] for r in rows])}")
        print(f"  {'':38s} idle RSS    {summary([r['rss_mb'] for r in rows])}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
