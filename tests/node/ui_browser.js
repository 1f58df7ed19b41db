// The web UI in a real browser (Debian's Chromium, driven by playwright-core):
// the supply chain as its operators see it. The Rust test `tests/browser.rs`
// starts the registry, prepares accounts and the first build, and runs this
// with its parameters in the environment; a non-zero exit fails the test.
"use strict";
const { chromium } = require("playwright-core");
const { execFileSync } = require("node:child_process");
const path = require("node:path");

const env = (name) => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const BASE = env("UI_BASE");
const SHOTS = env("UI_SCREENSHOTS");
const LABEL = env("UI_LABEL");

function check(cond, what) {
  if (!cond) throw new Error(`${LABEL}: ${what}`);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${LABEL}-${name}.png`), fullPage: true });
}

/** Reloads `url` until `ready(page)` holds, at most `tries` times. */
async function until(page, url, ready, tries, what) {
  for (let i = 0; i < tries; i++) {
    await page.goto(url);
    if (await ready(page)) return;
    await page.waitForTimeout(250);
  }
  throw new Error(`${LABEL}: ${what} did not happen`);
}

async function signIn(page, user, password) {
  await page.goto(`${BASE}/ui/`);
  check(page.url().includes("/ui/login"), `signed out, /ui/ leads to the sign-in form (at ${page.url()})`);
  await page.fill("input[name=username]", user);
  await page.fill("input[name=password]", password);
  await page.click("button[type=submit]");
  await page.waitForSelector("h1:has-text('Repositories')");
}

async function main() {
  const browser = await chromium.launch({
    executablePath: env("CHROMIUM"),
    args: ["--no-sandbox"],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  // A page that breaks its own Content Security Policy logs it here; a
  // script that throws is a page error. (Refused pages log their status,
  // which the checks below expect.)
  const consoleErrors = [];
  page.on("console", (m) => m.type() === "error" && /Content Security Policy|Refused/.test(m.text()) && consoleErrors.push(m.text()));
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  try {
    await signIn(page, "admin", env("ADMIN_PASSWORD"));
    await shot(page, "repositories");

    // Upload the vulnerability database from the browser.
    await page.click("text=Administration");
    await page.setInputFiles("#vulndb-upload input[type=file]", env("VULNDB_FILE"));
    await page.click("#vulndb-upload button[type=submit]");
    const flash = await page.textContent(".flash");
    check(/imported generation \d+: \d+ records/.test(flash), `import reported: ${flash}`);
    check((await page.textContent("#vulndb-status")).includes("Generation"), "the status shows the generation");
    await shot(page, "vulndb");

    // Find the build and see its findings once the new database is matched.
    await page.goto(`${BASE}/ui/`);
    await page.fill("input[name=q]", "build");
    await page.click("form.search button");
    await page.click("a:has-text('acme/build')");
    const repoUrl = page.url();
    await until(
      page,
      repoUrl,
      async (p) => (await p.locator("tr[data-tag='41'] .shield.high").count()) === 1,
      80,
      "build 41 showing its high finding"
    );
    check((await page.locator("#findings-history rect").count()) >= 1, "the findings chart shows today's high finding");
    await shot(page, "repository-build");

    // The layers view: the finding sits in the layer that brought mqtt-packet.
    await page.click("tr[data-tag='41'] a");
    await page.waitForSelector("#layers");
    const layer = page.locator("#layers li", { hasText: "mqtt-packet" });
    check((await layer.count()) === 1, "one layer brought mqtt-packet");
    const layerText = await layer.textContent();
    check(/CVE-2019-5432|NSWG-ECO-500/.test(layerText), `the layer lists the advisory: ${layerText}`);
    check(layerText.includes("6.1.1"), "with the installed version");
    const advisoryLink = await layer.locator("a").first().getAttribute("href");
    check(advisoryLink === "https://github.com/nodejs/security-wg/blob/main/vuln/npm/500.json", `linked to the advisory's reference: ${advisoryLink}`);
    const imageShield = await page.textContent("#scan-shield");
    check(imageShield.includes("1 high"), `the image's shield counts the finding: ${imageShield}`);
    await shot(page, "image-layers");

    // The components view, filtered by severity (app.js submits on change).
    await page.click("nav.tabs >> text=Components");
    await page.selectOption("select[name=severity]", "high");
    await page.waitForURL(/severity=high/);
    const rows = await page.locator("#components tbody tr").allTextContents();
    check(rows.length === 1 && rows[0].includes("mqtt-packet"), `only the vulnerable component: ${rows}`);
    await shot(page, "image-components");

    // A promotion policy made with the form, signed as the CI's identity.
    await page.goto(repoUrl);
    await page.click("text=Promotion policies");
    await page.fill("input[name=target]", "acme/release");
    await page.fill("input[name=tag_template]", "%n");
    await page.fill("input[name=sign_as]", "ci+release");
    await page.selectOption("select[name=field1]", "vulnerability_high");
    await page.selectOption("select[name=operator1]", "lte");
    await page.fill("input[name=values1]", "0");
    await page.selectOption("select[name=field2]", "vulnerability_critical");
    await page.selectOption("select[name=operator2]", "lte");
    await page.fill("input[name=values2]", "0");
    await page.click("#new-policy button[type=submit]");
    const created = await page.textContent(".flash");
    check(/policy \S+ saved/.test(created), `policy created: ${created}`);
    await shot(page, "policies");

    // Why build 41 is not promoted: the dry run names the failing rule and its facts.
    await page.fill("section.policy input[name=tag]", "41");
    await page.click("section.policy button:has-text('Dry run')");
    await page.waitForSelector("#outcome");
    check((await page.textContent("#outcome")).includes("failed"), "41 fails the policy");
    const failing = await page.locator("table.rules tr.fail").allTextContents();
    check(failing.length === 1 && failing[0].includes("vulnerability_high"), `the high rule fails: ${failing}`);
    check(/1/.test(failing[0]), `with the count it saw: ${failing}`);
    await shot(page, "dry-run");

    // CI pushes a clean build; it shows up PROMOTED and SIGNED in the release repository.
    execFileSync("skopeo", JSON.parse(env("PUSH_CLEAN")), { stdio: "pipe", env: { ...process.env, HOME: env("SKOPEO_HOME") } });
    await until(
      page,
      `${BASE}/ui/repository?name=acme%2Frelease`,
      async (p) =>
        (await p.locator("tr[data-tag='42'] .badge.promoted").count()) === 1 &&
        (await p.locator("tr[data-tag='42'] .badge.signed").count()) === 1,
      120,
      "release 42 PROMOTED and SIGNED"
    );
    const release = await page.textContent("tr[data-tag='42']");
    check(release.includes("from acme/build:42"), `provenance shown: ${release}`);
    check(release.includes("by ci+release"), `signer shown: ${release}`);
    check((await page.locator("tr[data-tag='41']").count()) === 0, "41 was never promoted");
    // Its cosign signature tag sits under it, not as a tag of its own.
    const accessory = await page.textContent("tr[data-tag='42'] .accessory");
    check(accessory.startsWith("signature: sha256-"), `the signature tag under 42: ${accessory}`);
    const tagRows = await page.locator("tr[data-tag]").count();
    check(tagRows === 1, `one tag row in the release repository: ${tagRows}`);
    await shot(page, "repository-release");
    // The promoted image lists its signature among its referrers.
    await page.click("tr[data-tag='42'] a");
    await page.waitForSelector("#referrers");
    await shot(page, "image-release");
    check((await page.textContent("#referrers")).includes("signature"), "the signature is a referrer");
    // The policy's page lists the evaluations: 42 promoted as 42.
    await page.goto(repoUrl);
    await page.click("text=Promotion policies");
    const evaluations = await page.locator("table.evaluations tr[data-evaluated='42']").allTextContents();
    check(
      evaluations.some((row) => /promoted/.test(row) && /42\s*$/.test(row.trim())),
      `the evaluation of 42, promoted as 42: ${evaluations}`
    );
    await shot(page, "policy-evaluations");

    // A reader: sees the build, is refused the administration and the release.
    await page.click("button:has-text('Sign out')");
    await page.waitForURL(/\/ui\/login/);
    await signIn(page, "rita", env("READER_PASSWORD"));
    const listed = await page.locator("#repositories tbody a").allTextContents();
    check(JSON.stringify(listed) === JSON.stringify(["acme/build"]), `rita sees only acme/build: ${listed}`);
    let r = await page.goto(`${BASE}/ui/admin/vulndb`);
    check(r.status() === 403, `the administration is refused to a reader (${r.status()})`);
    check((await page.textContent("h1")).includes("Not allowed"), "and says so");
    await shot(page, "forbidden");
    r = await page.goto(`${BASE}/ui/repository?name=acme%2Frelease`);
    check(r.status() === 403, `a repository without a grant is refused (${r.status()})`);
    r = await page.goto(repoUrl);
    check(r.status() === 200, "the granted repository opens");
    check((await page.locator("form[action='/ui/policies']").count()) === 0, "no forms on the tags page");

    check(consoleErrors.length === 0, `no CSP violations or script errors: ${consoleErrors}`);
    console.log(`${LABEL}: all browser checks passed`);
  } catch (e) {
    await shot(page, "failure").catch(() => {});
    throw e;
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
