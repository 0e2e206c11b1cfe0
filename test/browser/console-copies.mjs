// Real-browser test of approval before copying in the console: an officer
// asks for a copy of a case's export where the Export link was, a second
// supervisor grants it on the Approvals page (the requester's own
// supervisor role would not let them), and the officer's case then offers
// the export as a link carrying the grant, which downloads once.
//
//   BODYCAM_URL=... BODYCAM_OFFICER=o BODYCAM_OFFICER_PASSWORD=... BODYCAM_SUPERVISOR=s BODYCAM_SUPERVISOR_PASSWORD=... BODYCAM_CASE=C-1 node console-copies.mjs
//
// cmd/bodycam/console_copies_test.go runs it against a real server.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (k) => process.env[k];
const URL_ = env('BODYCAM_URL');
const OFFICER = env('BODYCAM_OFFICER');
const OFFICER_PASSWORD = env('BODYCAM_OFFICER_PASSWORD');
const SUPERVISOR = env('BODYCAM_SUPERVISOR');
const SUPERVISOR_PASSWORD = env('BODYCAM_SUPERVISOR_PASSWORD');
const CASE = env('BODYCAM_CASE');
const CHROMIUM = env('BODYCAM_CHROMIUM') || '/usr/bin/chromium';

let passed = 0;
function ok(cond, msg, detail) {
  if (!cond) throw new Error(`FAIL: ${msg}${detail !== undefined ? `\n  got: ${JSON.stringify(detail)}` : ''}`);
  passed++;
  console.log(`ok ${passed} - ${msg}`);
}
const tid = (id, extra = '') => `[data-testid="${id}"]${extra}`;
async function until(what, fn, timeout = 10000) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try { last = await fn(); if (last) return last; } catch (err) { last = err.message; }
    if (Date.now() > end) throw new Error(`FAIL: timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const watchdog = setTimeout(() => { console.error('FAIL: the browser test did not finish in time'); process.exit(1); }, 90000);
const problems = [];
let context;

async function signIn(page, user, password) {
  await page.goto(URL_);
  await page.locator(tid('signin')).waitFor({ state: 'visible' });
  await page.fill(tid('user'), user);
  await page.fill(tid('password'), password);
  await page.click(tid('signin'));
  await page.locator(tid('console')).waitFor({ state: 'visible' });
}

async function openCase(page) {
  await page.click(tid('tab-cases'));
  const item = page.locator(tid('case-item', `[data-case="${CASE}"]`));
  await item.waitFor({ state: 'visible' });
  await item.click();
  const detail = page.locator(tid('case-detail'));
  await detail.locator(tid('case-state')).waitFor({ state: 'visible' });
  return detail;
}

async function main() {
  context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'bodycam-chromium-')), {
    executablePath: CHROMIUM, headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-sync'],
    viewport: { width: 1440, height: 900 },
  });
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(15000);
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    const text = msg.text();
    if (/Content.Security.Policy|Refused to/i.test(text)) problems.push(`CSP: ${text}`);
  });

  // The officer: no Export link, "Request a copy" instead.
  await signIn(page, OFFICER, OFFICER_PASSWORD);
  ok(await page.locator(tid('tab-approvals')).isHidden(), 'an officer has no Approvals page');
  let detail = await openCase(page);
  ok(await detail.locator(tid('case-export')).count() === 0 && await detail.locator(tid('copy-request')).isVisible(),
    'the case offers "Request a copy" instead of the Export link');
  await detail.locator(tid('copy-request')).click();
  await detail.locator(tid('copy-reason')).fill('prosecutor asked for the file (browser test)');
  await detail.locator(tid('copy-ask')).click();
  await until('the request to be kept', async () => /Copy requested/.test(await page.locator('.toast').last().innerText()));
  ok(true, 'the officer asked for a copy of the export');
  await page.click(tid('signout'));

  // A supervisor grants it on the Approvals page.
  await signIn(page, SUPERVISOR, SUPERVISOR_PASSWORD);
  await page.click(tid('tab-approvals'));
  const row = page.locator(tid('approval-row'));
  await row.first().waitFor({ state: 'visible' });
  const text = await row.first().innerText();
  ok(text.includes(CASE) && text.includes(OFFICER) && text.includes('prosecutor asked'), 'the Approvals page lists the request: what, who, why', text);
  await row.first().locator(tid('approval-note')).fill('granted in the browser test');
  await row.first().locator(tid('approval-grant')).click();
  await until('the request to leave the list', async () => (await page.locator(tid('approval-row')).count()) === 0);
  ok(true, 'granted: the request leaves the pending list');
  await page.click(tid('signout'));

  // The officer downloads with the grant, once.
  await signIn(page, OFFICER, OFFICER_PASSWORD);
  detail = await openCase(page);
  const link = detail.locator(tid('copy-download'));
  await link.waitFor({ state: 'visible' });
  const href = await link.getAttribute('href');
  ok(new RegExp(`^/api/v1/cases/${CASE}/export\\?grant=cr-`).test(href) && await link.getAttribute('download') !== null,
    'the granted request is a download link carrying the grant', href);
  const statuses = await page.evaluate(async (u) => {
    const a = await fetch(u);
    const b = await fetch(u);
    return [a.status, a.headers.get('content-type'), b.status, (await b.json()).error];
  }, href);
  ok(statuses[0] === 200 && statuses[1] === 'application/zip' && statuses[2] === 403 && /used up/.test(statuses[3]),
    'the link downloads the export once; then the grant is used up', statuses);
  ok(problems.length === 0, 'no CSP violation or script error', problems);
}

main().then(async () => {
  await context.close();
  clearTimeout(watchdog);
  console.log(`# ${passed} checks passed`);
}).catch(async (err) => {
  console.error(err.message);
  if (context) await context.close().catch(() => {});
  process.exit(1);
});
