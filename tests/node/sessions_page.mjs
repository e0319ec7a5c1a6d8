// Headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core
// through the provider's sessions page. Run by tests/tests/oidc_browser.rs,
// which passes BASE (the provider), USERNAME, PASSWORD, OFFSET_FILE (the
// provider's test clock), SHOTS (where screenshots go) and PROFILE (a fresh
// --user-data-dir). Prints one JSON line of what it saw; exits non-zero on
// any failure. The Rust test checks the SSH side.
import { chromium } from 'playwright-core';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const base = env('BASE');
const shots = env('SHOTS');
const out = { shots: [] };
const shot = async (page, name) => {
  const p = join(shots, `${String(out.shots.length + 1).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: p, fullPage: true });
  out.shots.push(p);
};

const context = await chromium.launchPersistentContext(env('PROFILE'), {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1200, height: 800 },
});
try {
  const page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(15000);

  // Sign in; the banner is on the login page.
  await page.goto(`${base}/login`);
  out.loginBanner = await page.locator('.banner').innerText();
  await shot(page, 'login-with-banner');
  await page.fill('input[name=username]', env('USERNAME'));
  await page.fill('input[name=password]', env('PASSWORD'));
  await page.click('button[type=submit]');
  await page.waitForURL('**/account/sessions');
  out.sessionsBanner = await page.locator('.banner').innerText();
  out.rowsBefore = await page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => ({
    id: r.dataset.session, kind: r.dataset.kind, current: r.classList.contains('current'),
    text: r.innerText,
  })));
  out.currentHasEndButton = await page.locator('tr.current button').count() > 0;
  await shot(page, 'sessions');

  // "End all other sessions" refuses without the box (the browser's
  // required check), then ends them with it ticked.
  await page.click('#end-others button[type=submit]');
  out.stillOnPageWithoutTick = page.url().endsWith('/account/sessions');
  await page.check('#confirm-others');
  await page.click('#end-others button[type=submit]');
  await page.waitForSelector('.notice');
  out.endOthersNotice = await page.locator('.notice').innerText();
  await shot(page, 'ended-other-sessions');

  // Token lifetime: out of bounds is refused with the range, within is set.
  out.range = await page.locator('#lifetime-range').innerText();
  await page.fill('#lifetime-input', '9999h');
  await page.click('#lifetime button[type=submit]');
  await page.waitForSelector('.error');
  out.outOfBoundsError = await page.locator('.error').innerText();
  await shot(page, 'lifetime-out-of-bounds');
  await page.fill('#lifetime-input', env('LIFETIME'));
  await page.click('#lifetime button[type=submit]');
  await page.waitForSelector('.notice');
  out.lifetimeNotice = await page.locator('.notice').innerText();
  out.lifetimeValue = await page.locator('#lifetime-value').innerText();
  await shot(page, 'lifetime-set');

  // The provider's clock moves to just past the warning time; on the next
  // page the dialog shows the end, and "Extend session" moves it.
  writeFileSync(env('OFFSET_FILE'), env('WARN_OFFSET'));
  await page.goto(`${base}/account/sessions`);
  const dialog = page.locator('#curfew-dialog');
  await dialog.waitFor({ state: 'visible' });
  out.dialogText = await dialog.innerText();
  out.deadlineBefore = Number(await dialog.getAttribute('data-deadline'));
  await shot(page, 'session-ends-dialog');
  await page.click('#curfew-extend');
  await dialog.waitFor({ state: 'hidden' });
  await page.waitForFunction(
    (before) => Number(document.getElementById('curfew-dialog').dataset.deadline) > before,
    out.deadlineBefore,
  );
  out.deadlineAfter = Number(await dialog.getAttribute('data-deadline'));
  await shot(page, 'extended');
} finally {
  await context.close();
}
console.log(JSON.stringify(out));
