// The status page as a line operator uses it, in Debian's chromium driven by playwright-core.
// Run by provisioner/tests/status_page_browser.rs, which starts `provisioner serve` with 500
// nodes and passes where it is in the environment. Each step saves a screenshot to
// $ARTIFACTS; a failed step throws, and node exits non-zero.
import assert from "node:assert/strict";
import dgram from "node:dgram";
import fs from "node:fs";
import path from "node:path";
import { env, launch, stepper } from "./browser.mjs";

const base = env("PAGE_URL");
const token = env("ADMIN_TOKEN");
const artifacts = env("ARTIFACTS");
const followed = env("FOLLOWED_SERIAL");
const hostile = env("HOSTILE_SERIAL");
const refusedSerial = env("REFUSED_SERIAL");
// Where the README's picture goes too, when asked (BOOTKIT_UPDATE_SCREENSHOTS=1).
const docsScreenshot = process.env.DOCS_SCREENSHOT;

const { context, page, errors } = await launch();
const { step, timings } = stepper(page);
const rows = page.locator("#nodes tr");

try {
  await step("01-fleet", async () => {
    await page.goto(base + "/#token=" + token);
    await page.locator("#filters .filter-failed b").filter({ hasText: "30" }).waitFor();
    assert.ok(!page.url().includes(token), "the token leaves the address bar");
    const filters = await page.locator("#filters button").allTextContents();
    assert.match(filters[0], /^30 failed$/, "failed first: " + filters);
    for (const [state, count] of [["provisioned", 300], ["provisioning", 40], ["discovered", 30], ["registered", 100], ["all", 500]]) {
      assert.equal(await page.locator(`#filters .filter-${state} b`).textContent(), String(count), state);
    }
    // Failed first in the table too, and one page of rows, not 500.
    assert.equal(await rows.count(), 100);
    assert.equal(await rows.first().locator(".state").textContent(), "failed");
    assert.equal(await page.locator("#range").textContent(), "1–100 of 500");
  });

  await step("02-failed", async () => {
    await page.locator("#filters .filter-failed").click();
    await page.locator("#range").filter({ hasText: "1–30 of 30" }).waitFor();
    assert.deepEqual(new Set(await page.locator("#nodes .state").allTextContents()), new Set(["failed"]));
    // The long failure text appears once per row, cut to its column, and the table still
    // fits the 1400 px window.
    const failure = rows.first().locator("td.failure");
    const fit = await failure.evaluate((td) => ({ cut: td.scrollWidth > td.clientWidth, title: td.title, text: td.textContent }));
    assert.ok(fit.cut, "the failure is cut to its column");
    assert.ok(fit.text.startsWith("image2disk: writing /dev/nvme0n1 failed"), fit.text);
    assert.equal(fit.title, fit.text, "the whole text is in the title");
    const progress = await rows.first().locator("td.progress").textContent();
    assert.ok(!progress.includes("image2disk"), "the failure is not repeated in Progress: " + progress);
    const table = await page.locator("#fleet-table").boundingBox();
    assert.ok(table.width <= 1400, "the table fits the window: " + table.width);
  });

  await step("03-failed-detail", async () => {
    // The picture of the page the README shows: the failed nodes, one of them open.
    await rows.first().click();
    await page.locator("#detail-failure").filter({ hasText: "reprovision the node" }).waitFor();
    const progress = await page.locator("#facts dd").filter({ hasText: /^2\/3: write/ }).textContent();
    assert.equal(progress, "2/3: write (failed)", "the failure is not repeated in Progress");
    // Beside the panel, not under it: the filters stay whole.
    const all = await page.locator("#filters .filter-all").boundingBox();
    const panel = await page.locator("#detail").boundingBox();
    assert.ok(all.x + all.width <= panel.x, "the filters are beside the panel: " + JSON.stringify({ all, panel }));
    // And the table keeps the failure column in sight (the panel holds the other columns).
    const failureHeader = await page.locator("#fleet-table th").last().boundingBox();
    assert.ok(failureHeader && failureHeader.x + failureHeader.width <= panel.x + 1,
      "the Failure column is beside the panel: " + JSON.stringify({ failureHeader, panel }));
    const picture = path.join(artifacts, "status-page.png");
    await page.screenshot({ path: picture });
    if (docsScreenshot) fs.copyFileSync(picture, docsScreenshot);
    await page.locator("#close").click();
    await page.locator("#detail").waitFor({ state: "hidden" });
  });

  await step("04-search", async () => {
    await page.locator("#search").fill(followed);
    await page.locator("#range").filter({ hasText: "1–1 of 1" }).waitFor();
    assert.equal(await rows.first().locator("td").nth(2).textContent(), followed);
  });

  await step("05-detail", async () => {
    await page.evaluate(() => { window.notReloaded = true; });
    await rows.first().click();
    const panel = page.locator("#detail");
    await panel.waitFor({ state: "visible" });
    await page.locator("#detail-failure").filter({ hasText: "reprovision the node" }).waitFor();
    const box = await panel.boundingBox();
    assert.ok(box.x >= 0 && box.y >= 0 && box.x + box.width <= 1400 && box.y < 900 && box.width > 300,
      "the detail opens in the viewport: " + JSON.stringify(box));
    assert.match(page.url(), /#\/node\/[^?]+/, "the detail has its own address");
    const actions = await page.locator("#actions li").allTextContents();
    assert.ok(actions.some((text) => /^wipe SUCCESS \(41\.3 s\)$/.test(text)), actions.join(" | "));
    assert.ok(actions.some((text) => text.startsWith("write FAILED (41.3 s): image2disk")), actions.join(" | "));
    assert.ok((await page.locator("#timeline li").count()) >= 3, "the timeline is shown");
    await page.locator("#logs").filter({ hasText: "unexpected EOF from the image server" }).waitFor();
  });

  await step("06-log-followed", async () => {
    // A new line from the node, through serve's syslog listener as a node sends it.
    const line = "partition: retrying /dev/nvme0n1 after EOF " + Date.now();
    const socket = dgram.createSocket("udp4");
    const message = Buffer.from(`<11>1 ${new Date().toISOString()} rack1 image2disk - - - ${line}`);
    await new Promise((resolve, reject) => socket.send(message, Number(env("SYSLOG_PORT")), "127.0.0.1", (error) => (error ? reject(error) : resolve())));
    socket.close();
    await page.locator("#logs").filter({ hasText: line }).waitFor({ timeout: 15000 });
    assert.equal(await page.evaluate(() => window.notReloaded), true, "the line came without a reload");
  });

  await step("07-hostile", async () => {
    // The detail link works when opened directly, too.
    await page.locator("#close").click();
    await page.locator("#detail").waitFor({ state: "hidden" });
    await page.locator("#filters .filter-all").click();
    await page.locator("#search").fill("HUX<img");
    await page.locator("#nodes td").filter({ hasText: "HUX<img" }).first().waitFor();
    assert.equal(await rows.count(), 1);
    assert.equal(await rows.first().locator("td").nth(2).textContent(), hostile, "markup shown as text");
    assert.equal(await page.locator("#pwn, #nodes img").count(), 0, "no element was made from a serial");
  });

  await step("08-refused", async () => {
    await page.locator("#search").fill("");
    await page.locator("#filters .filter-refused").click();
    const row = page.locator("#refusals tr").filter({ hasText: refusedSerial });
    await row.waitFor();
    assert.ok((await page.locator("#refusals tr").count()) >= 3, "every refused node is listed");
    const reason = await row.locator("td.reason").textContent();
    assert.match(reason, /regist|default profile/i, "the reason is shown: " + reason);
    assert.equal(await page.locator("#filters .filter-refused b").textContent(), String(await page.locator("#refusals tr").count()));
  });

  await step("09-registered", async () => {
    const row = page.locator("#refusals tr").filter({ hasText: refusedSerial });
    await row.locator("button.register").click();
    await row.waitFor({ state: "detached" });
    await page.locator("#updated").filter({ hasText: "registered " + refusedSerial }).waitFor();
    // The fleet now counts it as registered.
    await page.locator("#filters .filter-registered b").filter({ hasText: "101" }).waitFor();
  });
  assert.deepEqual(errors, [], "no script errors or dialogs");
  console.log("status page steps (ms): " + JSON.stringify(timings));
} finally {
  await context.close();
}
