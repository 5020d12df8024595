// The status page at a site of $NODE_COUNT nodes (2,000), in Debian's chromium: the DOM holds
// one page of rows whatever the fleet's size (asserted: that is behaviour), and the times an
// operator waits are measured and printed, never asserted (bench/page.sh reports them).
// Run by provisioner/tests/status_page_browser.rs.
import assert from "node:assert/strict";
import { env, launch, stepper } from "./browser.mjs";

const base = env("PAGE_URL");
const token = env("ADMIN_TOKEN");
const nodes = Number(env("NODE_COUNT"));
const failed = Number(env("FAILED_COUNT"));
const searched = env("SEARCHED_SERIAL");
// The page asks the server for this many rows at a time (app.js's PAGE_SIZE).
const pageSize = 100;

const { context, page, errors } = await launch();
const { step, timings } = stepper(page);
const rows = page.locator("#nodes tr");
const figures = {};

// The rows in the DOM, and every element of the page: both bounded by one page of rows.
async function domSize() {
  return page.evaluate(() => ({ rows: document.querySelectorAll("#nodes tr").length, elements: document.getElementsByTagName("*").length }));
}

try {
  await step("scale-01-first-render", async () => {
    const started = performance.now();
    await page.goto(base + "/#token=" + token);
    await page.locator("#range").filter({ hasText: `1–${pageSize} of ${nodes}` }).waitFor();
    figures.first_render_ms = Math.round(performance.now() - started);
    assert.equal(await page.locator("#filters .filter-all b").textContent(), String(nodes));
    const dom = await domSize();
    assert.equal(dom.rows, pageSize, "one page of rows, not the whole fleet");
    figures.dom_elements = dom.elements;
  });

  await step("scale-02-failed", async () => {
    const started = performance.now();
    await page.locator("#filters .filter-failed").click();
    await page.locator("#range").filter({ hasText: `1–${pageSize} of ${failed}` }).waitFor();
    figures.filter_failed_ms = Math.round(performance.now() - started);
    assert.deepEqual(new Set(await page.locator("#nodes .state").allTextContents()), new Set(["failed"]));
    assert.ok((await domSize()).rows <= pageSize);
  });

  await step("scale-03-next-page", async () => {
    const started = performance.now();
    await page.locator("#next").click();
    await page.locator("#range").filter({ hasText: `${pageSize + 1}–` }).waitFor();
    figures.next_page_ms = Math.round(performance.now() - started);
    assert.ok((await domSize()).rows <= pageSize);
  });

  await step("scale-04-search", async () => {
    await page.locator("#filters .filter-all").click();
    await page.locator("#range").filter({ hasText: `of ${nodes}` }).waitFor();
    const started = performance.now();
    await page.locator("#search").fill(searched);
    await page.locator("#range").filter({ hasText: "1–1 of 1" }).waitFor();
    figures.search_ms = Math.round(performance.now() - started);
    assert.equal(await rows.first().locator("td").nth(2).textContent(), searched);
  });

  // What the page's requests weigh: one page of the fleet, against the whole node list a
  // page without server-side paging would load.
  const sizes = await page.evaluate(async (token) => {
    const headers = { Authorization: "Bearer " + token };
    const bytes = async (url) => (await (await fetch(url, { headers })).arrayBuffer()).byteLength;
    return {
      fleet_page_bytes: await bytes("/api/v1/fleet"),
      fleet_failed_page_bytes: await bytes("/api/v1/fleet?state=failed"),
      all_nodes_bytes: await bytes("/api/v1/nodes"),
    };
  }, token);
  Object.assign(figures, sizes);
  assert.deepEqual(errors, [], "no script errors or dialogs");
  console.log(`status page at ${nodes} nodes: ` + JSON.stringify(figures));
  console.log("status page steps (ms): " + JSON.stringify(timings));
} finally {
  await context.close();
}
