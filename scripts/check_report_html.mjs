// Open a report.html in headless chromium and check what a person sees
// (see check_report_html.sh).
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import path from "node:path";

const [deps, browserPath, page_, shot] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(deps), "node_modules", "x.js"));
const puppeteer = require("puppeteer-core");

const problems = [];
const browser = await puppeteer.launch({
  executablePath: browserPath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--allow-file-access-from-files"],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1500, height: 1000 });
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url().slice(0, 80)}`));
  page.on("request", (r) => {
    const u = r.url();
    if (!u.startsWith("file:") && !u.startsWith("data:")) problems.push(`request outside the page: ${u}`);
  });
  await page.goto(pathToFileURL(path.resolve(page_)).href, { waitUntil: "load" });
  const facts = await page.evaluate(() => {
    const rows = (id) => document.querySelectorAll(`#${id} tr`).length - 1;
    const img = document.getElementById("curves");
    return {
      title: document.title,
      curves: img ? [img.complete, img.naturalWidth, img.naturalHeight, img.getBoundingClientRect().width] : null,
      final: rows("final-metrics"),
      expectations: document.querySelector("table#expectations") ? rows("expectations") : 0,
      steps: rows("steps"),
      pipeline: (document.getElementById("pipeline")?.textContent ?? "").length,
      plan: (document.getElementById("plan")?.textContent ?? "").length,
      status: document.getElementById("status")?.textContent ?? "",
    };
  });
  const c = facts.curves;
  if (!c || !c[0] || c[1] !== 1400 || c[2] < 380 || c[3] < 500)
    problems.push(`the curves image is not shown decoded: ${JSON.stringify(c)}`);
  if (facts.final < 1) problems.push("the final-metrics table has no rows");
  if (facts.steps < 1) problems.push("the steps table has no rows");
  if (facts.pipeline < 10) problems.push("the pipeline is not shown");
  if (facts.plan < 10) problems.push("the plan is not shown");
  await page.screenshot({ path: shot, fullPage: true });
  console.log(JSON.stringify({ ...facts, screenshot: shot }));
} finally {
  await browser.close();
}
if (problems.length) {
  for (const p of problems) console.error(`check_report_html: ${p}`);
  process.exit(1);
}
console.log("check_report_html: OK");
