// Real-browser test of sharing with a recipient outside: Chromium (the
// Debian package) driven by playwright-core; cmd/bodycam/console_share_test.go
// runs it against a real server with two recordings the real ffmpeg made,
// linked to a case. A supervisor shares one of them from the case page; a
// recipient, in a fresh browser context with no account and no cookie,
// opens the link, is refused a wrong code, opens it with the right one,
// sees only what was shared, downloads it and gets a signed receipt whose
// SHA-256 is the file's and whose signature openssl verifies; the share's
// session reaches nothing else; once the supervisor revokes it, the page
// says so and the download is refused; a share that expired is refused too.

import { mkdtempSync, mkdirSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { ARGS, checks, deadline, env as envOf, signIn, tid, watch as watchPage } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const env = (name, fallback) => envOf(name, fallback, 'cmd/bodycam/console_share_test.go');
const URL_ = env('BODYCAM_URL');
const USER = env('BODYCAM_USER'); // a supervisor who may change the case
const PASSWORD = env('BODYCAM_PASSWORD');
const CASE = env('BODYCAM_CASE');
const SHARED = env('BODYCAM_SHARED'); // the recording to share
const OTHER = env('BODYCAM_OTHER'); // linked to the case, not shared
const APPROVER = env('BODYCAM_APPROVER_TOKEN'); // another supervisor's API token
const CHROMIUM = env('BODYCAM_CHROMIUM', '/usr/bin/chromium');
const OUT = env('BODYCAM_OUT', join(here, 'out'));
const DEADLINE_MS = Number(env('BODYCAM_TIMEOUT_MS', '150000'));
const SHOTS = process.env.BODYCAM_SCREENSHOTS; // a directory: pictures of the pages, to look at
const shot = async (page, name) => { if (SHOTS) await page.screenshot({ path: join(SHOTS, name), fullPage: true }); };

const { ok, passed } = checks();
const watchdog = deadline(DEADLINE_MS);

const profile = mkdtempSync(join(tmpdir(), 'bodycam-chromium-'));
mkdirSync(OUT, { recursive: true });
let context, browser;
const problems = [];

const watch = (page, who) => watchPage(page, problems, who);

// saved waits for the download a click starts and returns its bytes.
async function saved(page, click, name) {
  const [dl] = await Promise.all([page.waitForEvent('download'), click()]);
  const path = join(OUT, name);
  await dl.saveAs(path);
  return readFileSync(path);
}

async function main() {
  // The supervisor shares one recording of the case from the console.
  context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1440, height: 1000 } });
  const sup = context.pages()[0] || await context.newPage();
  watch(sup, 'supervisor');
  await signIn(sup, URL_, USER, PASSWORD);
  // Sharing lets a copy leave: the supervisor asks for a copy of the case
  // (two uses: two shares), another supervisor grants it.
  const asked = await sup.evaluate(async (kase) => {
    const res = await fetch('/api/v1/copy-requests', { method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-Bodycam-Console': '1' },
      body: JSON.stringify({ kind: 'case', id: kase, reason: 'share with the DA and the defence', uses: 2 }) });
    return { status: res.status, body: await res.json() };
  }, CASE);
  ok(asked.status === 201, 'the supervisor asks for a copy of the case', asked);
  const grant = asked.body.id;
  const decided = await fetch(`${URL_}/api/v1/copy-requests/${encodeURIComponent(grant)}/decision`, { method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${APPROVER}` }, body: JSON.stringify({ approve: true, note: 'for the DA' }) });
  ok(decided.status === 200, 'another supervisor grants it', decided.status);
  await sup.click(tid('tab-cases'));
  await sup.locator(tid('case-item', `[data-case="${CASE}"]`)).locator('button').first().click();
  const form = sup.locator(tid('share-form'));
  await form.waitFor({ state: 'visible' });
  await form.locator(tid('share-name')).fill('A. Prosecutor');
  await form.locator(tid('share-org')).fill("District Attorney's Office");
  await form.locator(tid('share-email')).fill('ap@da.example');
  await form.locator(tid('share-purpose')).fill('charging decision');
  await form.locator(tid('share-max')).fill('2');
  await form.locator(tid('share-recording', `[value="${OTHER}"]`)).uncheck();
  await form.locator(tid('share-grant', ` option[value="${grant}"]`)).waitFor({ state: 'attached' });
  await form.locator(tid('share-grant')).selectOption(grant);
  await form.locator(tid('share-create')).click();
  const made = sup.locator(tid('share-made'));
  await made.waitFor({ state: 'visible' });
  const link = await made.locator(tid('share-link')).textContent();
  const code = (await made.locator(tid('share-code')).textContent()).trim();
  ok(link.startsWith(URL_ + '/share/sh-') && /^[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$/.test(code), 'the console shows the link and the one-time code once', { link, code });
  const shareID = link.split('/').pop();
  const row = sup.locator(tid('case-share', `[data-share="${shareID}"]`));
  await row.waitFor({ state: 'visible' });
  await shot(sup, 'share-made.png');
  ok(await row.getAttribute('data-state') === 'active', 'the case lists the share as active');

  // The recipient: another browser, a fresh context (no cookie, no account).
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
  const rctx = await browser.newContext({ acceptDownloads: true });
  const rec = await rctx.newPage();
  watch(rec, 'recipient');
  await rec.goto(link);
  await rec.locator(tid('share-code-input')).waitFor({ state: 'visible' });
  ok(true, 'the link asks for the one-time code');
  await rec.fill(tid('share-code-input'), 'AAAA-AAAA-AAAA');
  await rec.click(tid('share-open'));
  await rec.locator(tid('share-error')).filter({ hasText: 'wrong code' }).waitFor({ state: 'visible' });
  ok(true, 'a wrong code is refused, saying so');
  await rec.fill(tid('share-code-input'), code.toLowerCase());
  await rec.click(tid('share-open'));
  const content = rec.locator(tid('share-content'));
  await content.waitFor({ state: 'visible' });
  const shown = await rec.locator(tid('share-recording')).evaluateAll((rows) => rows.map((r) => r.dataset.recording));
  ok(shown.length === 1 && shown[0] === SHARED, 'the recipient sees the shared recording, and only it', shown);
  ok((await rec.locator(tid('share-recipient')).textContent()).includes('A. Prosecutor'), 'the page names the recipient');

  // Nothing else is reachable with the share's session.
  const probes = await rec.evaluate(async ({ other, kase, shareID }) => {
    const out = {};
    for (const p of ['/api/v1/recordings', `/api/v1/recordings/${other}`, `/api/v1/recordings/${other}/media`, `/api/v1/cases/${kase}`,
      `/api/v1/cases/${kase}/export`, '/api/v1/session', `/api/v1/shared/${shareID}x`]) {
      out[p] = (await fetch(p, { credentials: 'same-origin' })).status;
    }
    return out;
  }, { other: OTHER, kase: CASE, shareID });
  ok(Object.entries(probes).every(([p, s]) => (p.includes('/shared/') ? s === 404 : s === 401)), 'the share\'s session opens nothing else (401, or 404 for another share)', probes);
  const cookies = await rctx.cookies();
  ok(cookies.length === 1 && cookies[0].name === 'bodycam_share' && cookies[0].path === `/api/v1/shared/${shareID}` && cookies[0].httpOnly,
    'the only cookie is the share\'s, HttpOnly, for its own path', cookies);

  // Download: the file, then its receipt with the file's SHA-256.
  const zip = await saved(rec, () => rec.click(tid('share-download')), 'shared.zip');
  ok(zip.length > 1000 && zip.subarray(0, 2).toString() === 'PK', 'the download is a zip', zip.length);
  const sha = createHash('sha256').update(zip).digest('hex');
  const receipt = rec.locator(tid('share-receipt', '[data-download="1"]'));
  await receipt.waitFor({ state: 'visible', timeout: 30000 });
  await shot(rec, 'share-recipient.png');
  ok(await receipt.getAttribute('data-sha256') === sha, 'the receipt names the SHA-256 of the bytes downloaded', { receipt: await receipt.getAttribute('data-sha256'), file: sha });
  const body = await saved(rec, () => receipt.locator(tid('share-receipt-json')).click(), 'receipt.json');
  await saved(rec, () => receipt.locator(tid('share-receipt-sig')).click(), 'receipt.json.sig');
  await saved(rec, () => receipt.locator(tid('share-receipt-key')).click(), 'key.pem');
  const r = JSON.parse(body.toString());
  ok(r.sha256 === sha && r.size === zip.length && r.share_id === shareID && r.recipient.name === 'A. Prosecutor' && r.download === 1 &&
    r.recordings.length === 1 && r.recordings[0].id === SHARED, 'the receipt says what, to whom, which download', r);
  const verified = execFileSync('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', join(OUT, 'key.pem'), '-rawin',
    '-in', join(OUT, 'receipt.json'), '-sigfile', join(OUT, 'receipt.json.sig')]).toString();
  ok(/Signature Verified Successfully/.test(verified), 'openssl verifies the receipt\'s signature with the server\'s public key', verified);
  const keys = await (await fetch(URL_ + '/api/v1/keys')).json();
  ok(keys.items.some((k) => k.id === r.signing_key_id && k.public_key_pem.trim() === readFileSync(join(OUT, 'key.pem')).toString().trim()),
    'the key that checks it is one the server publishes');
  const forged = Buffer.from(body.toString().replace('A. Prosecutor', 'B. Prosecutor'));
  writeFileSync(join(OUT, 'forged.json'), forged);
  let forgedOK = true;
  try {
    execFileSync('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', join(OUT, 'key.pem'), '-rawin', '-in', join(OUT, 'forged.json'),
      '-sigfile', join(OUT, 'receipt.json.sig')], { stdio: 'pipe' });
  } catch { forgedOK = false; }
  ok(!forgedOK, 'a changed receipt does not verify');

  // Revoked from the console: the recipient's page says so; no download.
  await sup.locator(tid('case-share', `[data-share="${shareID}"]`)).locator(tid('share-revoke')).click();
  await sup.fill(tid('share-revoke-reason'), 'sent to the wrong office');
  await sup.click(tid('share-revoke-confirm'));
  await sup.locator(tid('case-share', `[data-share="${shareID}"][data-state="revoked"]`)).waitFor({ state: 'visible' });
  ok(true, 'the console shows the share revoked');
  await rec.reload();
  const refused = rec.locator(tid('share-refused'));
  await refused.waitFor({ state: 'visible' });
  ok((await refused.textContent()).includes('revoked'), 'the recipient\'s page says the share was revoked', await refused.textContent());
  const after = await rec.evaluate(async (p) => (await fetch(p, { credentials: 'same-origin' })).status, `/api/v1/shared/${shareID}/download`);
  ok(after === 410, 'the download is refused once revoked (410)', after);

  // A share that expires in seconds (made through the API from the
  // supervisor's session): opened before, refused after.
  const exp = await sup.evaluate(async ({ kase, recording, grant }) => {
    const res = await fetch(`/api/v1/cases/${encodeURIComponent(kase)}/shares`, { method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-Bodycam-Console': '1' },
      body: JSON.stringify({ recipient: { name: 'D. Counsel', organisation: 'Public Defender' }, purpose: 'disclosure', recordings: [recording], expires_in: '10s', grant }) });
    return { status: res.status, body: await res.json() };
  }, { kase: CASE, recording: SHARED, grant });
  ok(exp.status === 201, 'a share expiring in 10 s is made', exp);
  const rctx2 = await browser.newContext({ acceptDownloads: true });
  const rec2 = await rctx2.newPage();
  watch(rec2, 'recipient 2');
  await rec2.goto(exp.body.link);
  await rec2.fill(tid('share-code-input'), exp.body.code);
  await rec2.click(tid('share-open'));
  await rec2.locator(tid('share-content')).waitFor({ state: 'visible' });
  ok(true, 'the expiring share opens before it expires');
  const wait = Date.parse(exp.body.expires_at) - Date.now() + 500;
  if (wait > 0) await new Promise((res) => setTimeout(res, wait));
  await rec2.reload();
  const gone = rec2.locator(tid('share-refused'));
  await gone.waitFor({ state: 'visible' });
  ok((await gone.textContent()).includes('expired'), 'once expired, the page says so', await gone.textContent());
  const expiredDL = await rec2.evaluate(async (p) => (await fetch(p, { credentials: 'same-origin' })).status, `/api/v1/shared/${exp.body.id}/download`);
  ok(expiredDL === 410, 'the download of an expired share is refused (410)', expiredDL);

  ok(problems.length === 0, 'no CSP violations or script errors in the pages', problems);
  console.log(`# passed ${passed()} checks`);
}

let code = 0;
try {
  await main();
} catch (err) {
  code = 1;
  console.error(err.message.startsWith('FAIL') ? err.message : `FAIL: ${err.stack || err}`);
  if (problems.length) console.error(`page problems:\n  ${problems.join('\n  ')}`);
  for (const [ctx, name] of [[context, 'failure-share-supervisor.png'], [browser && browser.contexts()[0], 'failure-share-recipient.png']]) {
    const page = ctx && ctx.pages()[0];
    if (page) await page.screenshot({ path: join(OUT, name), fullPage: true }).then(() => console.error(`screenshot: ${join(OUT, name)}`), () => {});
  }
} finally {
  clearTimeout(watchdog);
  if (context) await context.close().catch(() => {});
  if (browser) await browser.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(code);
