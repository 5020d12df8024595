// What the browser scripts share: their settings from the environment (set by
// provisioner/tests/status_page_browser.rs), Debian's chromium through playwright-core, and
// steps that each leave a screenshot in $ARTIFACTS and their time.
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

export const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through cargo test --test status_page_browser`);
  return value;
};

// A fresh chromium profile at $USER_DATA_DIR, a 1400×900 window, and every script error or
// dialog of the page collected in `errors` (a test ends by asserting there were none).
export async function launch() {
  const userDataDir = env("USER_DATA_DIR");
  fs.rmSync(userDataDir, { recursive: true, force: true });
  fs.mkdirSync(userDataDir, { recursive: true });
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
    viewport: { width: 1400, height: 900 },
  });
  const page = context.pages()[0] || (await context.newPage());
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  page.on("dialog", (dialog) => {
    errors.push("a dialog opened: " + dialog.message());
    dialog.dismiss();
  });
  return { context, page, errors };
}

// `step(name, work)` runs `work`, then saves $ARTIFACTS/NAME.png (failed or not) and records
// the step's time in `timings` (ms).
export function stepper(page) {
  const artifacts = env("ARTIFACTS");
  const timings = {};
  const step = async (name, work) => {
    const started = Date.now();
    try {
      await work();
    } finally {
      timings[name] = Date.now() - started;
      await page.screenshot({ path: path.join(artifacts, name + ".png") });
    }
  };
  return { step, timings };
}
