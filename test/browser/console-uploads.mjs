// Real-browser test of the console's Uploads view and of uploaded
// recordings in Recordings: Chromium (the Debian package) driven by
// playwright-core. cmd/bodycam/console_uploads_test.go runs it against a
// real server after two docks uploaded through the real tus endpoint (a
// stored MP4, a file refused for a wrong SHA-256, a file half sent, and
// another dock's stored file) and the device streamed live.

import { mkdtempSync, mkdirSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) { console.error(`usage: ${name} is required (see cmd/bodycam/console_uploads_test.go)`); process.exit(2); }
  return v;
};
const URL_ = env('BODYCAM_URL');
const TOKEN = env('BODYCAM_TOKEN'); // the bootstrap admin token
const USER = env('BODYCAM_USER'); // an auditor
const PASSWORD = env('BODYCAM_PASSWORD');
const DOCK = env('BODYCAM_DOCK'); // a dock account with a password
const DOCK_PASSWORD = env('BODYCAM_DOCK_PASSWORD');
const DOCK2 = env('BODYCAM_DOCK2');
const DOCK_TOKEN = env('BODYCAM_DOCK_TOKEN'); // DOCK's API token (to send more of the partial upload)
const DEVICE = env('BODYCAM_DEVICE');
const DEVICE2 = env('BODYCAM_DEVICE2');
const STORED_NAME = env('BODYCAM_STORED_NAME');
const DECLARED = env('BODYCAM_DECLARED_SHA256');
const RECEIVED = env('BODYCAM_RECEIVED_SHA256');
const PARTIAL_URL = env('BODYCAM_PARTIAL_URL');
const PARTIAL_REST = env('BODYCAM_PARTIAL_REST'); // the next bytes of the partial upload
const PARTIAL_OFFSET = Number(env('BODYCAM_PARTIAL_OFFSET'));
const PARTIAL_SIZE = Number(env('BODYCAM_PARTIAL_SIZE'));
const CHROMIUM = env('BODYCAM_CHROMIUM', '/usr/bin/chromium');
const OUT = env('BODYCAM_OUT', join(here, 'out'));
const DEADLINE_MS = Number(env('BODYCAM_TIMEOUT_MS', '150000'));

let passed = 0;
function ok(cond, msg, detail) {
  if (!cond) throw new Error(`FAIL: ${msg}${detail !== undefined ? `\n  got: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}` : ''}`);
  passed++;
  console.log(`ok ${passed} - ${msg}`);
}
async function until(what, fn, timeout = 10000, every = 100) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) { last = err.message; }
    if (Date.now() > end) throw new Error(`FAIL: timed out after ${timeout} ms waiting for ${what}${last !== undefined ? `\n  last: ${JSON.stringify(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, every));
  }
}
const tid = (id, extra = '') => `[data-testid="${id}"]${extra}`;

const watchdog = setTimeout(() => {
  console.error(`FAIL: the browser test did not finish within ${DEADLINE_MS} ms`);
  process.exit(1);
}, DEADLINE_MS);

const profile = mkdtempSync(join(tmpdir(), 'bodycam-chromium-'));
mkdirSync(OUT, { recursive: true });
let context;
const problems = [];

async function signIn(page, how) {
  await page.locator(tid('signin')).waitFor({ state: 'visible' });
  if (how.token) {
    await page.click(tid('mode-token'));
    await page.fill(tid('token'), how.token);
  } else {
    await page.click(tid('mode-account'));
    await page.fill(tid('user'), how.user);
    await page.fill(tid('password'), how.password);
  }
  await page.click(tid('signin'));
  await page.locator(tid('console')).waitFor({ state: 'visible' });
}

async function signOut(page) {
  await page.click(tid('signout'));
  await page.locator(tid('signin')).waitFor({ state: 'visible' });
}

// uploadRows reads the Uploads view's rows as the page shows them.
function uploadRows(page) {
  return page.locator(tid('upload')).evaluateAll((rows) => rows.map((r) => ({
    id: r.dataset.upload, state: r.dataset.state, device: r.dataset.device, dock: r.dataset.dock,
    file: r.querySelector('[data-testid="upload-file"]')?.textContent,
    important: !!r.querySelector('[data-testid="upload-important"]'),
    result: r.querySelector('[data-testid="upload-result"]')?.textContent,
    reason: r.querySelector('[data-testid="upload-reason"]')?.getAttribute('title'),
    reasonHashes: [...r.querySelectorAll('[data-testid="upload-reason"] .hash')].map((b) => b.dataset.full),
    recording: r.querySelector('[data-testid="upload-recording"]')?.textContent,
    recordingIsLink: r.querySelector('[data-testid="upload-recording"]')?.tagName === 'BUTTON',
    value: Number(r.querySelector('progress')?.value), max: Number(r.querySelector('progress')?.max),
    rate: r.children[3]?.textContent,
    hashes: [...r.querySelectorAll('.hash')].map((b) => b.dataset.full),
  })));
}

async function main() {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: { width: 1440, height: 900 },
  });
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(15000);
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    const text = msg.text();
    if (/Content.Security.Policy|Refused to/i.test(text)) problems.push(`CSP: ${text}`);
    else if (msg.type() === 'error' && !/Failed to load resource/.test(text)) problems.push(`console error: ${text}`);
  });
  await page.goto(URL_);

  // The admin (bootstrap token) lists every upload, reads no recording.
  await signIn(page, { token: TOKEN });
  ok(await page.locator(tid('tab-uploads')).isVisible(), 'the admin has an Uploads tab');
  await page.keyboard.press('5');
  await page.locator(tid('view-uploads')).waitFor({ state: 'visible' });
  await until('four uploads for the admin', async () => (await uploadRows(page)).length === 4);
  const adminRows = await uploadRows(page);
  const adminStored = adminRows.find((r) => r.file === STORED_NAME);
  ok(adminStored && adminStored.state === 'stored' && adminStored.recording && !adminStored.recordingIsLink,
    'the admin sees the stored upload with its recording id, not a link (admins read no evidence)', adminStored);
  await signOut(page);

  // An auditor: every workstation, per device, each state.
  await signIn(page, { user: USER, password: PASSWORD });
  await page.click(tid('tab-uploads'));
  await page.locator(tid('view-uploads')).waitFor({ state: 'visible' });
  await until('four uploads for the auditor', async () => (await uploadRows(page)).length === 4);
  const docks = await page.locator(tid('uploads-station')).evaluateAll((els) => els.map((e) => e.dataset.dock));
  ok(docks.length === 2 && docks.includes(DOCK) && docks.includes(DOCK2), 'uploads are grouped per workstation', docks);
  const groups = await page.locator(tid('uploads-station', `[data-dock="${DOCK}"]`)).locator(tid('uploads-device-group')).evaluateAll((els) => els.map((e) => e.dataset.device));
  ok(groups.length === 1 && groups[0] === DEVICE, 'and per device within a workstation', groups);
  const summary = Object.fromEntries(await page.locator(`${tid('uploads-summary')} .summary-chip`).evaluateAll(
    (els) => els.map((e) => [e.dataset.testid.replace('uploads-', ''), Number(e.dataset.n)])));
  ok(summary['in-progress'] === 1 && summary.stored === 2 && summary.refused === 1 && summary.abandoned === 0,
    'the summary counts 1 in progress, 2 stored, 1 refused', summary);
  let rows = await uploadRows(page);
  const stored = rows.find((r) => r.file === STORED_NAME);
  ok(stored && stored.state === 'stored' && stored.important && stored.recordingIsLink && stored.value === stored.max,
    'the stored upload: full bar, important mark, a link to its recording', stored);
  const refused = rows.find((r) => r.state === 'refused');
  ok(refused && refused.file === 'wrong-hash.wav' && refused.reason.includes(DECLARED) && refused.reason.includes(RECEIVED),
    'the refused upload says why: the declared and the received SHA-256', refused);
  ok(refused.reasonHashes.length === 2 && refused.reasonHashes.includes(DECLARED) && refused.reasonHashes.includes(RECEIVED),
    'both hashes in the reason are shortened, to be read and copied in full', refused.reasonHashes);
  const partial = rows.find((r) => r.state === 'receiving');
  ok(partial && partial.value === PARTIAL_OFFSET && partial.max === PARTIAL_SIZE &&
    /1\.0 MiB \/ 4\.0 MiB · 25%/.test(await page.locator(tid('upload', `[data-upload="${partial.id}"]`)).innerText()),
  'the upload in progress shows its offset of its size (1 of 4 MiB, 25%)', partial);
  await page.screenshot({ path: join(OUT, 'uploads.png'), fullPage: true });

  // More bytes arrive: the next poll shows a rate, from two offsets.
  const more = readFileSync(PARTIAL_REST);
  const res = await fetch(PARTIAL_URL, { method: 'PATCH', body: more, headers: { Authorization: `Bearer ${DOCK_TOKEN}`, 'Tus-Resumable': '1.0.0',
    'Upload-Offset': String(PARTIAL_OFFSET), 'Content-Type': 'application/offset+octet-stream' } });
  ok(res.status === 204, 'the dock sends another MiB of the large file', res.status);
  const moved = await until('the rate of the upload in progress', async () => {
    const r = (await uploadRows(page)).find((x) => x.id === partial.id);
    return r && r.value === PARTIAL_OFFSET + more.length && /[KM]iB\/s|\d B\/s/.test(r.rate) ? r : null;
  }, 12000, 50);
  ok(/50%/.test(await page.locator(tid('upload', `[data-upload="${partial.id}"]`)).innerText()),
    'the bar moves to 50% and the rate shows between two polls', moved.rate);

  // Filters: by state, by workstation, by device (server side).
  await page.selectOption(tid('uploads-state'), 'refused');
  await until('only the refused upload', async () => { rows = await uploadRows(page); return rows.length === 1 && rows[0].state === 'refused'; });
  ok(true, 'the state filter lists only refused uploads');
  await page.selectOption(tid('uploads-state'), '');
  await page.selectOption(tid('uploads-dock'), DOCK2);
  await until(`only ${DOCK2}'s upload`, async () => { rows = await uploadRows(page); return rows.length === 1 && rows[0].dock === DOCK2 && rows[0].device === DEVICE2; });
  ok(true, 'the workstation filter lists only that dock\'s uploads');
  await page.selectOption(tid('uploads-dock'), '');
  await page.selectOption(tid('uploads-device'), DEVICE2);
  await until(`only ${DEVICE2}'s upload`, async () => { rows = await uploadRows(page); return rows.length === 1 && rows[0].device === DEVICE2; });
  ok(true, 'the device filter lists only that device\'s uploads');
  await page.selectOption(tid('uploads-state'), 'abandoned');
  await page.locator(tid('uploads-empty')).waitFor({ state: 'visible' });
  ok(/match the filters/.test(await page.locator(tid('uploads-empty')).innerText()), 'a filter that matches nothing says so');
  await page.selectOption(tid('uploads-state'), '');
  await page.selectOption(tid('uploads-device'), '');
  await until('four uploads again', async () => (await uploadRows(page)).length === 4);

  // The stored upload's recording opens in Recordings, marked uploaded.
  await page.locator(tid('upload', `[data-upload="${stored.id}"]`)).locator(tid('upload-recording')).click();
  await page.locator(tid('view-recordings')).waitFor({ state: 'visible' });
  const detail = page.locator(tid('rec-detail'));
  await until('the recording detail', async () => (await detail.locator(tid('rec-id')).innerText()) === stored.recording);
  ok(await detail.locator(tid('rec-detail-uploaded')).isVisible(), 'its recording opens in Recordings, marked as an uploaded file');
  const json = await page.evaluate(async (id) => (await fetch(`/api/v1/recordings/${encodeURIComponent(id)}`)).json(), stored.recording);
  ok(json.kind === 'upload', 'the API says its kind is upload', json.kind);
  const origin = detail.locator(tid('rec-origin'));
  ok(await origin.isVisible() && json.origin, 'the detail has an Origin section, from the recording\'s origin', json.origin);
  ok(await origin.locator(tid('rec-origin-name')).innerText() === STORED_NAME && await origin.locator(tid('rec-origin-dock')).innerText() === DOCK &&
    /yes/.test(await origin.locator(tid('rec-origin-important')).innerText()) && /given by the dock/.test(await origin.locator(tid('rec-origin-time')).innerText()),
  'its origin: file name, dock, important, time given by the dock');
  ok(await detail.locator(tid('rec-original')).getAttribute('href') === `/api/v1/recordings/${stored.recording}/original` &&
    await detail.locator(tid('rec-original')).getAttribute('download') === STORED_NAME,
  'the original downloads as uploaded, under the recorder\'s file name');
  const video = detail.locator(tid('rec-video'));
  const played = await until('the uploaded MP4 to load in the player', async () => {
    const v = await video.evaluate((el) => ({ ready: el.readyState, duration: el.duration, error: el.error && el.error.message }));
    if (v.error) throw new Error(`the player failed: ${v.error}`);
    return v.ready >= 1 && v.duration > 1 ? v : null;
  }, 15000);
  ok(true, `the uploaded MP4 plays from /media (${played.duration.toFixed(1)} s)`);
  // The device streamed the same span: the two are one event.
  const streamID = json.same_event && json.same_event[0];
  const same = detail.locator(tid('rec-same-event'));
  ok(streamID && (await same.innerText()).includes(streamID) && /primary copy/.test(await same.innerText()),
    'it names the streamed recording of the same event, the upload the primary copy', json.same_event);
  await page.screenshot({ path: join(OUT, 'uploaded-recording.png'), fullPage: true });
  await same.locator('button').click();
  await until('the same-event recording to open', async () => (await detail.locator(tid('rec-id')).innerText()) === streamID);
  ok(await detail.locator(tid('rec-detail-uploaded')).count() === 0 && (await detail.locator(tid('rec-same-event')).innerText()).includes(stored.recording),
    'a click opens the streamed recording, which names the upload back');


  // The list: the uploaded recordings are marked; the kind filter.
  await page.keyboard.press('Escape');
  await page.selectOption(tid('rec-device'), '*');
  const recRows = () => page.locator(tid('rec-item')).evaluateAll((els) => els.map((e) => ({ id: e.dataset.recording, kind: e.dataset.kind,
    uploaded: !!e.querySelector('[data-testid="rec-uploaded"]'), important: !!e.querySelector('[data-testid="rec-important"]'),
    file: e.querySelector('[data-testid="rec-origin-file"]')?.textContent.trim() })));
  let recs = await until('the uploaded and the streamed recordings', async () => {
    const r = await recRows();
    return r.some((x) => x.kind === 'upload') && r.some((x) => x.kind === 'stream') ? r : null;
  });
  const mine = recs.find((r) => r.id === stored.recording);
  ok(mine && mine.uploaded && mine.important && mine.file === STORED_NAME,
    'in the list the uploaded recording has an "uploaded" badge, the important mark and its file name', mine);
  ok(recs.filter((r) => r.kind === 'stream').every((r) => !r.uploaded), 'a streamed recording has no such badge');
  const sameMarks = await page.locator(tid('rec-same-mark')).count();
  ok(sameMarks === 2, 'the uploaded and the streamed recording of one event are both marked ⇄ in the list', sameMarks);
  await page.selectOption(tid('rec-kind-filter'), 'upload');
  recs = await until('only uploaded recordings', async () => { const r = await recRows(); return r.length && r.every((x) => x.kind === 'upload') ? r : null; });
  ok(recs.length === 2 && recs.some((r) => r.id === stored.recording), 'the kind filter lists the two uploaded recordings only', recs);
  await page.selectOption(tid('rec-kind-filter'), 'stream');
  recs = await until('only streamed recordings', async () => { const r = await recRows(); return r.length && r.every((x) => x.kind === 'stream') ? r : null; });
  ok(true, 'and "live stream" the streamed one only');
  await signOut(page);

  // A dock signs in: its own uploads, and no other view.
  await signIn(page, { user: DOCK, password: DOCK_PASSWORD });
  await page.locator(tid('view-uploads')).waitFor({ state: 'visible' });
  const tabs = await page.locator('.tab').evaluateAll((els) => els.filter((e) => !e.hidden).map((e) => e.dataset.view));
  ok(tabs.length === 1 && tabs[0] === 'uploads', 'a dock\'s console has the Uploads view only', tabs);
  await until('the dock\'s three uploads', async () => (await uploadRows(page)).length === 3);
  rows = await uploadRows(page);
  ok(rows.every((r) => r.dock === DOCK), 'a dock sees its own uploads only', rows.map((r) => r.dock));
  ok(await page.locator(tid('uploads-dock')).isHidden(), 'and has no workstation filter');
  ok(!rows.find((r) => r.state === 'stored').recordingIsLink, 'its stored file names the recording, without a link (docks read no evidence)');
  await page.screenshot({ path: join(OUT, 'uploads-dock.png'), fullPage: true });
  await signOut(page);

  ok(problems.length === 0, 'no CSP violations or script errors in the page', problems);
  console.log(`# passed ${passed} checks`);
}

let code = 0;
try {
  await main();
} catch (err) {
  code = 1;
  console.error(err.message.startsWith('FAIL') ? err.message : `FAIL: ${err.stack || err}`);
  if (problems.length) console.error(`page problems:\n  ${problems.join('\n  ')}`);
  if (context) {
    const page = context.pages()[0];
    if (page) await page.screenshot({ path: join(OUT, 'failure-uploads.png'), fullPage: true }).then(() => console.error(`screenshot: ${join(OUT, 'failure-uploads.png')}`), () => {});
  }
} finally {
  clearTimeout(watchdog);
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(code);
