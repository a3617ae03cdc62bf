#!/usr/bin/env node
// End-to-end driver of the SIBSpineSBRT web demo: headless Chromium (the system's, through playwright-core;
// no browser download) opens the demo, waits for the first rendered frame, clicks Build and Evaluate, reads
// the panel, hovers a row, plays the quiz, downloads the PDF report, plays the what-ifs, and writes
// screenshots and results.json.
//
//   node e2e.js --url http://127.0.0.1:PORT/ --out DIR [--t0 EPOCH_MS | --wait-stdin 1]
//               [--mode full|frame] [--case-ready] [--readme PNG]
//
// --readme PNG: also save the evaluated page there (the README's screenshot, docs/web_demo.png).
//
// --t0: when the server process was started (ms since the epoch), so that first-frame times count from it.
// --wait-stdin 1: launch Chromium first, print BROWSER-READY, then read "go EPOCH_MS" on stdin (the caller starts
//   the server between the two): the first-frame time then excludes the browser's own start.
// --mode frame: only measure the first frame (and, with --case-ready, the first frame showing the case).
// Exit codes: 0 done (results.json says what was seen), 1 a step failed, 3 a setup step is missing.
"use strict";

const fs = require("fs");
const path = require("path");
const { execSync } = require("child_process");

function parseArgs(argv) {
  const out = { mode: "full", timeout: 90000 };
  for (let i = 0; i < argv.length; i += 1) {
    const key = argv[i].replace(/^--/, "");
    if (key === "case-ready") {
      out.caseReady = true;
    } else {
      out[key.replace(/-(\w)/g, (_, c) => c.toUpperCase())] = argv[i + 1];
      i += 1;
    }
  }
  out.t0 = out.t0 ? Number(out.t0) : null;
  out.timeout = Number(out.timeout);
  return out;
}

function setupError(message) {
  console.error(`SETUP: ${message}`);
  process.exit(3);
}

function findChromium() {
  const candidates = [process.env.CHROMIUM_PATH, "chromium", "chromium-browser"].filter(Boolean);
  for (const c of candidates) {
    if (c.includes("/")) {
      if (fs.existsSync(c)) return c;
      continue;
    }
    try {
      const found = execSync(`command -v ${c}`, { shell: "/bin/sh" }).toString().trim();
      if (found) return found;
    } catch (e) {
      // not on PATH
    }
  }
  return null;
}

let chromium;
try {
  ({ chromium } = require("playwright-core"));
} catch (e) {
  setupError("playwright-core is not installed: run `npm ci --prefix Testing/web`.");
}

async function waitForServer(url, deadline) {
  for (;;) {
    try {
      const r = await fetch(url);
      if (r.status < 500) return;
    } catch (e) {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`server at ${url} did not answer`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// In the page: how much of each view image is not background (fraction of pixels brighter than 24/255).
function viewContentInPage(tags) {
  const out = {};
  for (const tag of tags) {
    const marker = document.getElementById(`view-${tag}`);
    const img = marker && marker.parentElement ? marker.parentElement.querySelector("img") : null;
    if (!img || !img.src.startsWith("blob:") || !img.complete || img.naturalWidth < 10) {
      out[tag] = { ready: false };
      continue;
    }
    const c = document.createElement("canvas");
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    const ctx = c.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let bright = 0;
    let coloured = 0;
    for (let i = 0; i < d.length; i += 4) {
      const mx = Math.max(d[i], d[i + 1], d[i + 2]);
      const mn = Math.min(d[i], d[i + 1], d[i + 2]);
      if (mx > 24) bright += 1;
      if (mx - mn > 60) coloured += 1;
    }
    const r = img.getBoundingClientRect();
    out[tag] = {
      ready: true,
      src: img.src,
      width: img.naturalWidth,
      height: img.naturalHeight,
      content: bright / (d.length / 4),
      coloured: coloured / (d.length / 4),
      rect: { x: r.x, y: r.y, width: r.width, height: r.height },
    };
  }
  return out;
}

const VIEWS = ["SBRTFusion", "Red", "Yellow"];

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (!args.url || !args.out) setupError("usage: node e2e.js --url URL --out DIR [--t0 MS] [--mode full|frame]");
  const executablePath = findChromium();
  if (!executablePath) setupError("Chromium not found: `apt-get install -y chromium` (or set CHROMIUM_PATH).");
  fs.mkdirSync(args.out, { recursive: true });
  const results = { url: args.url, steps: [], requests: { failed: [], external: [] }, console: [] };
  const launchedAt = Date.now();
  const since = () => Date.now() - (args.t0 === null ? launchedAt : args.t0);
  const step = (name, extra) => {
    const entry = { name, at_ms: since(), ...(extra || {}) };
    results.steps.push(entry);
    console.log(`[e2e] ${(entry.at_ms / 1000).toFixed(2)} s  ${name}`);
    return entry;
  };

  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
  results.browser_launch_ms = Date.now() - launchedAt;
  if (args.waitStdin) {
    console.log("BROWSER-READY");
    const line = await new Promise((resolve) => {
      const rl = require("readline").createInterface({ input: process.stdin });
      rl.once("line", (l) => {
        rl.close();
        resolve(l);
      });
    });
    args.t0 = Number(line.replace(/^go\s+/, ""));
  }
  results.t0 = args.t0;
  const deadline = Date.now() + args.timeout;
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const host = new URL(args.url).host;
    page.on("request", (req) => {
      const u = new URL(req.url());
      if (!["blob:", "data:"].includes(u.protocol) && u.host !== host) results.requests.external.push(req.url());
    });
    page.on("response", (r) => {
      if (r.status() >= 400) results.requests.failed.push(`${r.status()} ${r.request().method()} ${r.url()}`);
    });
    page.on("console", (m) => {
      if (["error", "warning"].includes(m.type())) results.console.push(`${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => results.console.push(`pageerror: ${e.message}`));

    await page.addInitScript(`window.__viewContent = ${viewContentInPage.toString()};`);
    await waitForServer(args.url, deadline);
    step("server answers");
    await page.goto(args.url, { waitUntil: "domcontentloaded", timeout: args.timeout });
    await page.waitForFunction(
      () => [...document.querySelectorAll("img")].some((i) => i.src.startsWith("blob:") && i.naturalWidth > 10),
      null,
      { timeout: Math.max(1000, deadline - Date.now()), polling: 20 },
    );
    results.first_frame_ms = step("first frame").at_ms;

    if (args.mode === "full" || args.caseReady) {
      // every view shows image content (not a blank or loading screen)
      await page.waitForFunction(
        (tags) => {
          const v = window.__viewContent(tags);
          return tags.every((t) => v[t].ready && v[t].content > 0.05);
        },
        VIEWS,
        { timeout: Math.max(1000, deadline - Date.now()), polling: 50 },
      );
      results.case_frame_ms = step("first frame showing the case in every view").at_ms;
    }
    if (args.mode === "frame") {
      results.ok = true;
      return results;
    }

    const views = () => page.evaluate((tags) => window.__viewContent(tags), VIEWS);
    const status = (attr) => page.getAttribute("#app-status", `data-${attr}`);
    const waitStatus = (attr, value) =>
      page.waitForSelector(`#app-status[data-${attr}="${value}"]`, {
        state: "attached",
        timeout: Math.max(1000, deadline - Date.now()),
      });
    const waitNewFrames = async (before) => {
      await page.waitForFunction(
        ([tags, old]) => {
          const v = window.__viewContent(tags);
          return tags.every((t) => v[t].ready && v[t].src !== old[t]);
        },
        [VIEWS, Object.fromEntries(VIEWS.map((t) => [t, before[t].src]))],
        { timeout: Math.max(1000, deadline - Date.now()), polling: 50 },
      );
      await page.waitForTimeout(400);
    };
    const panel = () =>
      page.evaluate(() => ({
        verdict: document.getElementById("verdict") ? document.getElementById("verdict").dataset.verdict : null,
        verdict_text: document.getElementById("verdict") ? document.getElementById("verdict").innerText : null,
        rows: [...document.querySelectorAll("tr.constraint-row")].map((tr) => ({
          key: tr.dataset.key,
          status: tr.dataset.status,
          value: tr.dataset.value,
          label: tr.querySelector(".row-status").innerText,
        })),
      }));

    await waitStatus("phase", "loaded");
    await page.waitForTimeout(500);
    results.loaded = {
      views: await views(),
      segments: await page.$$eval("[data-segment]", (els) => els.map((e) => e.dataset.segment)),
      fusion_note: await page.$eval("#fusion-note", (e) => e.innerText).catch(() => ""),
      title: await page.$eval("#case-title", (e) => e.innerText),
    };
    await page.screenshot({ path: path.join(args.out, "01_loaded.png") });
    step("loaded");

    // Build planning volumes: the derived segments appear (list and outlines)
    let before = await views();
    await page.click("#btn-build");
    await page.waitForFunction(() => Number(document.getElementById("app-status").dataset.derived) > 0, null, {
      timeout: Math.max(1000, deadline - Date.now()),
    });
    await waitNewFrames(before);
    results.built = {
      derived: Number(await status("derived")),
      segments: await page.$$eval("[data-segment]", (els) => els.map((e) => e.dataset.segment)),
      views: await views(),
    };
    await page.screenshot({ path: path.join(args.out, "02_built.png") });
    step("built");

    // Evaluate: the panel and the DVH fill
    await page.click("#btn-evaluate");
    await waitStatus("evaluated", "true");
    await waitStatus("busy", "false");
    await page.waitForFunction(
      () => {
        const i = document.getElementById("dvh");
        return i && i.complete && i.naturalWidth > 100;
      },
      null,
      { timeout: Math.max(1000, deadline - Date.now()) },
    );
    await page.waitForTimeout(500);
    results.evaluated = await panel();
    results.evaluated.dvh = await page.$eval("#dvh", (i) => {
      const r = i.getBoundingClientRect();
      return { width: i.naturalWidth, height: i.naturalHeight, rect: { x: r.x, y: r.y, width: r.width, height: r.height } };
    });
    results.evaluated.views = await views();
    await page.screenshot({ path: path.join(args.out, "03_evaluated.png") });
    if (args.readme) await page.screenshot({ path: args.readme });
    step("evaluated");

    // Teaching aid: a row explains itself on hover
    const hoverKey = "PTV_Eval D90%";
    await page.hover(`tr.constraint-row[data-key="${hoverKey}"]`);
    const help = await page.waitForSelector(".row-help >> visible=true", { timeout: 10000 });
    await page.waitForTimeout(400);
    results.hover = { key: hoverKey, text: await help.innerText() };
    await page.screenshot({ path: path.join(args.out, "04_hover.png") });
    await page.mouse.move(5, 895);
    await page.waitForSelector(".row-help >> visible=true", { state: "detached", timeout: 10000 }).catch(() => {});
    step("hover");

    // Quiz: statuses and verdict hidden until the resident judges the plan
    await page.click("#switch-quiz");
    await waitStatus("quiz", "waiting");
    await page.waitForTimeout(300);
    results.quiz = {
      hidden: await panel(),
      report_disabled: await page.$eval("#btn-report", (b) => b.disabled),
    };
    await page.screenshot({ path: path.join(args.out, "05_quiz.png") });
    await page.click("#quiz-pass");
    await waitStatus("quiz", "answered");
    await page.waitForTimeout(300);
    results.quiz.answered = await panel();
    results.quiz.feedback = await page.$eval("#quiz-feedback", (e) => e.innerText);
    await page.click("#switch-quiz");
    await waitStatus("quiz", "off");
    step("quiz");

    // The PDF report of the evaluated plan, downloaded as a user would
    await page.waitForSelector("#btn-report:not([disabled])", { timeout: 10000 });
    const [download] = await Promise.all([
      page.waitForEvent("download", { timeout: Math.max(1000, deadline - Date.now()) }),
      page.click("#btn-report"),
    ]);
    await download.saveAs(path.join(args.out, "report.pdf"));
    results.report = { filename: download.suggestedFilename(), failure: await download.failure() };
    step("report downloaded");

    // What-if: the whole dose x 1.10 with the keyboard on the slider (step 0.01), re-evaluated live
    const nudge = async (presses) => {
      await page.focus("#whatif-slider .v-slider-thumb");
      for (let i = 0; i < presses; i += 1) await page.keyboard.press("ArrowRight");
      await page.evaluate(() => document.activeElement && document.activeElement.blur());
    };
    before = await views();
    await nudge(10);
    await waitStatus("whatif", "whole:1.10");
    await waitStatus("busy", "false");
    await waitNewFrames(before);
    results.whatif_whole = { factor: 1.1, ...(await panel()), views: await views() };
    await page.screenshot({ path: path.join(args.out, "06_whatif_whole.png") });
    step("what-if whole dose x1.10");

    // What-if: the boost x 1.20 (step 0.05)
    await page.click("#whatif-mode button:nth-child(2)");
    await waitStatus("whatif", "boost:1.00");
    await nudge(4);
    await waitStatus("whatif", "boost:1.20");
    await waitStatus("busy", "false");
    await page.waitForTimeout(500);
    results.whatif_boost = { factor: 1.2, ...(await panel()) };
    await page.screenshot({ path: path.join(args.out, "07_whatif_boost.png") });
    step("what-if boost x1.20");
    results.ok = true;
    return results;
  } finally {
    await browser.close();
  }
}

const outArg = process.argv.indexOf("--out");
main()
  .then((results) => {
    fs.writeFileSync(path.join(results ? process.argv[outArg + 1] : ".", "results.json"), JSON.stringify(results, null, 2));
  })
  .catch((e) => {
    console.error(`[e2e] FAILED: ${e.stack || e}`);
    if (outArg > 0) {
      fs.mkdirSync(process.argv[outArg + 1], { recursive: true });
      fs.writeFileSync(path.join(process.argv[outArg + 1], "error.txt"), String(e.stack || e));
    }
    process.exit(1);
  });
