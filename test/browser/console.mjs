// Real-browser test of the bodycam operations console: Chromium (the
// Debian package, never a downloaded browser) driven by playwright-core.
//
//   BODYCAM_URL=http://127.0.0.1:8080 BODYCAM_TOKEN=... BODYCAM_DEVICE=cam-1 node console.mjs
//
// (or --url, --device, --token, --publisher-pid, --out, --chromium). With a
// publisher pid the script finally stops that publisher and expects the
// open live view to say the stream ended. cmd/bodycam/console_test.go runs
// it against a real server and a real ffmpeg publisher.

import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));

function option(name, env, fallback) {
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === `--${name}`) return argv[i + 1];
    if (argv[i].startsWith(`--${name}=`)) return argv[i].slice(name.length + 3);
  }
  return process.env[env] || fallback;
}

const URL_ = option('url', 'BODYCAM_URL');
const TOKEN = option('token', 'BODYCAM_TOKEN');
// A supervisor (or auditor) account watches live; without one the admin
// token does everything (servers without user accounts).
const USER = option('user', 'BODYCAM_USER');
const PASSWORD = option('password', 'BODYCAM_PASSWORD');
const DEVICE = option('device', 'BODYCAM_DEVICE');
// An officer a supervisor may put in charge of a case (the Cases checks run
// with USER and OFFICER).
const OFFICER = option('officer', 'BODYCAM_OFFICER');
const PUBLISHER_PID = Number(option('publisher-pid', 'BODYCAM_PUBLISHER_PID', '0'));
const OUT = option('out', 'BODYCAM_OUT', join(here, 'out'));
const CHROMIUM = option('chromium', 'BODYCAM_CHROMIUM', '/usr/bin/chromium');
const DEADLINE_MS = Number(option('timeout-ms', 'BODYCAM_TIMEOUT_MS', '150000'));

if (!URL_ || !TOKEN || !DEVICE) {
  console.error('usage: BODYCAM_URL=... BODYCAM_TOKEN=... BODYCAM_DEVICE=... node console.mjs');
  process.exit(2);
}

let passed = 0;
function ok(cond, msg, detail) {
  if (!cond) throw new Error(`FAIL: ${msg}${detail !== undefined ? `\n  got: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}` : ''}`);
  passed++;
  console.log(`ok ${passed} - ${msg}`);
}
function note(msg) { console.log(`# ${msg}`); }

// until polls fn (async, in Node) until it returns a truthy value.
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

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tid = (id, extra = '') => `[data-testid="${id}"]${extra}`;

const watchdog = setTimeout(() => {
  console.error(`FAIL: the browser test did not finish within ${DEADLINE_MS} ms`);
  process.exit(1);
}, DEADLINE_MS);

const profile = mkdtempSync(join(tmpdir(), 'bodycam-chromium-'));
mkdirSync(OUT, { recursive: true });
let context;
const problems = []; // CSP violations and script errors in the page

async function main() {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required'],
    viewport: { width: 1440, height: 900 },
    deviceScaleFactor: 1,
  });
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(15000);
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    const text = msg.text();
    if (/Content.Security.Policy|Refused to/i.test(text)) problems.push(`CSP: ${text}`);
    else if (msg.type() === 'error' && !/Failed to load resource/.test(text)) problems.push(`console error: ${text}`);
  });

  // Sign-in with the admin token: a wrong one is refused.
  await page.goto(URL_);
  await page.locator(tid('signin')).waitFor({ state: 'visible' });
  ok(true, 'the console opens on the sign-in screen without a session');
  await page.screenshot({ path: join(OUT, 'signin.png') });
  await page.click(tid('mode-token'));
  await page.fill(tid('token'), 'not-the-token');
  await page.click(tid('signin'));
  const err = page.locator(tid('signin-error'));
  await err.waitFor({ state: 'visible' });
  const errText = await err.innerText();
  ok(/wrong token/i.test(errText), 'a wrong token shows an error', errText);
  ok(await page.locator(tid('console')).isHidden(), 'a wrong token does not open the console');
  await page.fill(tid('token'), TOKEN);
  await page.click(tid('signin'));
  await page.locator(tid('console')).waitFor({ state: 'visible' });
  ok(/admin/.test(await page.locator(tid('who')).innerText()), 'the right token opens the console, signed in as admin');
  const item = page.locator(tid('live-item', `[data-device="${DEVICE}"]`));
  if (USER) {
    // The admin sees who is live but does not watch (separation of duties).
    await item.waitFor({ state: 'visible', timeout: 10000 });
    ok(await item.locator(tid('watch')).count() === 0 && await page.locator(tid('live-note')).isVisible(),
      'the admin sees the device live, with no Watch button and a note why');
    ok(await page.locator(tid('tab-live')).isHidden(), 'the admin has no live wall');
    await page.keyboard.press('4');
    await page.locator(tid('cases-note')).waitFor({ state: 'visible' });
    ok(await page.locator(tid('case-new')).isHidden() && await page.locator(tid('cases-list')).isHidden(),
      'the admin has no access to cases: a note says so');
    await page.click(tid('signout'));
    await page.locator(tid('signin')).waitFor({ state: 'visible' });

    // Sign-in with an account: a wrong password is refused.
    await page.click(tid('mode-account'));
    await page.fill(tid('user'), USER);
    await page.fill(tid('password'), 'not the password at all');
    await page.click(tid('signin'));
    await until('the sign-in error', async () => /wrong user or password/i.test(await err.innerText()), 5000);
    ok(await page.locator(tid('console')).isHidden(), 'a wrong password shows an error and no console');
    await page.fill(tid('password'), PASSWORD);
    await page.click(tid('signin'));
    // The admin set this password, so it must be replaced before anything
    // else; the form says who set it.
    await page.locator(tid('password-form')).waitFor({ state: 'visible' });
    const notice = await page.locator(tid('password-notice')).innerText();
    ok(/set by the administrator admin/.test(notice), 'a password an admin set opens the new-password form, saying who set it', notice);
    ok(await page.locator(tid('console')).isHidden(), 'no console before a new password');
    const pending = await page.evaluate(async () => {
      const r = await fetch('/api/v1/recordings');
      return `${r.status} ${(await r.json()).error}`;
    });
    ok(/^403 set a new password first/.test(pending), 'the session may do nothing else meanwhile', pending);
    const NEW_PASSWORD = `${PASSWORD} of my own`;
    await page.fill(tid('current-password'), 'not the password at all');
    await page.fill(tid('new-password'), NEW_PASSWORD);
    await page.fill(tid('repeat-password'), NEW_PASSWORD);
    await page.click(tid('password-submit'));
    const pwErr = page.locator(tid('password-error'));
    await until('the new-password error', async () => /current password is wrong/i.test(await pwErr.innerText()), 5000);
    ok(await page.locator(tid('console')).isHidden(), 'a wrong current password is refused');
    await page.fill(tid('current-password'), PASSWORD);
    await page.click(tid('password-submit'));
    await page.locator(tid('console')).waitFor({ state: 'visible' });
    const who = await page.locator(tid('who')).innerText();
    ok(who.includes(USER), `with a password of their own ${USER} gets the console`, who);
    const title = await page.locator(tid('who')).getAttribute('title');
    ok(/last set by the administrator admin/.test(title), 'the console still says who last set the password', title);
    const status = await page.evaluate(async () => (await fetch('/api/v1/recordings')).status);
    ok(status === 200, 'the renewed session reads what the user may', status);
  }
  await page.reload();
  await page.locator(tid('console')).waitFor({ state: 'visible' });
  ok(await page.locator(tid('signin')).isHidden(), 'a reload keeps the session (no second sign-in)');

  // Live now.
  await item.waitFor({ state: 'visible', timeout: 10000 });
  const itemText = await item.innerText();
  ok(/H264/.test(itemText) && /since/.test(itemText), `${DEVICE} is in the live list with its codecs and since when`, itemText);

  // Watch: measure click to first decoded frame in the page itself.
  await page.evaluate(() => {
    window.__probe = { click: null, firstFrame: null };
    document.addEventListener('click', (e) => {
      if (e.target.closest('[data-testid="watch"]') && window.__probe.click == null) window.__probe.click = performance.now();
    }, true);
    const mo = new MutationObserver(() => {
      const v = document.querySelector('[data-testid="tile"] video');
      if (!v) return;
      mo.disconnect();
      v.requestVideoFrameCallback(() => { window.__probe.firstFrame = performance.now(); });
    });
    mo.observe(document.body, { subtree: true, childList: true });
  });
  await item.locator(tid('watch')).click();
  const tile1 = page.locator(tid('tile', `[data-device="${DEVICE}"]`)).first();
  await tile1.waitFor({ state: 'visible' });
  const probe = await until('the first decoded frame of the live view',
    () => page.evaluate(() => window.__probe.firstFrame != null && window.__probe), 15000, 50);
  const firstFrameMs = Math.round(probe.firstFrame - probe.click);
  note(`click to first decoded frame: ${firstFrameMs} ms`);
  ok(firstFrameMs > 0 && firstFrameMs < 5000, `the first frame is decoded within 5 s of clicking watch (${firstFrameMs} ms)`, firstFrameMs);

  const video = tile1.locator(tid('live-video'));
  const frames = () => video.evaluate((v) => v.getVideoPlaybackQuality().totalVideoFrames);
  const f1 = await frames();
  await sleep(2000);
  const f2 = await frames();
  note(`decoded frames: ${f1} then ${f2} two seconds later (${((f2 - f1) / 2).toFixed(1)} fps)`);
  ok(f2 - f1 >= 20, 'the live video keeps decoding frames (at least 20 more in 2 s)', { f1, f2 });
  const size = await video.evaluate((v) => `${v.videoWidth}x${v.videoHeight}`);
  ok(size === '640x360', 'the live video is 640x360', size);
  ok(await video.evaluate((v) => !v.paused && v.muted), 'the live video plays, muted by default');
  const audio = await until('inbound audio RTP packets in the tile\'s RTCPeerConnection', () => tile1.evaluate(async (el) => {
    let n = 0;
    (await el.pc.getStats()).forEach((r) => { if (r.type === 'inbound-rtp' && r.kind === 'audio') n = r.packetsReceived; });
    return n > 0 && n;
  }), 5000);
  ok(audio > 0, `audio RTP arrives (${audio} packets received)`);
  const tracks = await video.evaluate((v) => v.srcObject && v.srcObject.getAudioTracks().map((t) => t.readyState));
  ok(tracks && tracks.length === 1 && tracks[0] === 'live', 'the video element\'s stream has a live audio track', tracks);
  const codecs = await tile1.locator(tid('tile-codecs')).innerText();
  ok(/H264/.test(codecs) && /PCMU/.test(codecs), 'the tile shows what it receives (from X-Bodycam-Video/Audio)', codecs);
  ok(await tile1.locator(tid('tile-badge')).innerText() === 'LIVE', 'the tile shows a LIVE badge');
  ok(await tile1.getAttribute('data-state') === 'live', 'the tile\'s connection state is live',
    await tile1.getAttribute('data-state'));
  const stateText = await tile1.locator(tid('tile-state')).innerText();
  ok(/connected/.test(stateText), 'the tile shows its connection state', stateText);

  // Unmute and mute again.
  await tile1.locator(tid('unmute')).click();
  ok(await video.evaluate((v) => !v.muted) && await tile1.locator(tid('unmute')).getAttribute('aria-pressed') === 'true',
    'the unmute toggle unmutes the view');
  await tile1.locator(tid('unmute')).click();
  ok(await video.evaluate((v) => v.muted), 'the toggle mutes it again');

  // A second view of the same device: the wall holds two tiles.
  const viewers = () => page.evaluate(async () => (await (await fetch('/api/v1/live/viewers')).json()).items.length);
  await item.locator(tid('watch')).click();
  const tiles = page.locator(tid('tile'));
  await until('two tiles on the wall', async () => (await tiles.count()) === 2);
  const tile2 = tiles.nth(1);
  await until('frames in the second view', () => tile2.locator(tid('live-video')).evaluate((v) => v.getVideoPlaybackQuality().totalVideoFrames > 10), 15000);
  ok(true, 'a second view of the same device plays beside the first');
  await until('the live list to show 2 open views', async () => /2 open/i.test(await item.innerText()), 5000);
  await until('two sessions in GET /api/v1/live/viewers', async () => (await viewers()) === 2, 5000);
  ok(true, 'the server lists two viewing sessions');
  await sleep(1200); // let the tiles' stats (fps, bit rate) fill in for the picture
  await page.screenshot({ path: join(OUT, 'wall.png') });
  note(`screenshot: ${join(OUT, 'wall.png')}`);

  // Close the first: the tile goes and the server's session list shrinks.
  await tile1.locator(tid('close-tile')).click();
  await until('one tile left on the wall', async () => (await tiles.count()) === 1, 5000);
  ok(true, 'closing a view removes its tile');
  await until('GET /api/v1/live/viewers to list one session', async () => (await viewers()) === 1, 5000);
  ok(true, 'closing a view hangs up its session (the viewers list shrinks to 1)');

  // Leaving the page hangs up the views still open (pagehide, keepalive).
  await page.reload();
  await page.locator(tid('console')).waitFor({ state: 'visible' });
  await until('GET /api/v1/live/viewers to be empty after leaving the page', async () => (await viewers()) === 0, 5000);
  ok(true, 'leaving the page hangs up its open views');

  // Recordings: the device's live recording, its segments, Verify.
  await page.click(tid('tab-recordings'));
  await page.selectOption(tid('rec-device'), DEVICE);
  const rec = page.locator(tid('rec-item', '[data-state="live"]')).first();
  await rec.waitFor({ state: 'visible' });
  const recID = await rec.getAttribute('data-recording');
  ok(!!recID, `the device's live recording is listed (${recID})`);
  await rec.locator(tid('open-recording')).click();
  const detail = page.locator(tid('rec-detail'));
  await detail.waitFor({ state: 'visible' });
  await detail.locator(tid('segments')).waitFor({ state: 'visible' });
  const segs = await detail.locator(tid('segment')).evaluateAll((rows) => rows.map((r) => ({
    sha: r.querySelector('[data-testid="sha256"] .hash')?.dataset.full,
    shaShown: r.querySelector('[data-testid="sha256"] .hash')?.textContent,
    chain: r.querySelector('[data-testid="chain-hash"] .hash')?.dataset.full,
  })));
  ok(segs.length >= 2, `the recording's segments are listed (${segs.length})`, segs.length);
  ok(segs.every((s) => /^[0-9a-f]{64}$/.test(s.sha) && /^[0-9a-f]{64}$/.test(s.chain)),
    'every segment shows its SHA-256 and chain hash (full value kept for hover and copy)', segs[0]);
  ok(segs.every((s) => s.shaShown.length < 20 && s.sha.startsWith(s.shaShown.slice(0, 8))), 'hashes are shown shortened', segs[0].shaShown);
  ok(await detail.locator(tid('gaps')).isVisible(), 'the gaps section is shown');
  const recVideo = detail.locator(tid('rec-video'));
  ok((await recVideo.getAttribute('src')) === `/api/v1/recordings/${recID}/media`, 'the player plays /api/v1/recordings/{id}/media');
  const media = await until('the recording\'s media to load in the player', () => recVideo.evaluate((v) =>
    v.error ? { error: v.error.code, message: v.error.message } : (v.readyState >= 1 && { w: v.videoWidth, h: v.videoHeight, d: v.duration })), 10000);
  ok(!media.error && media.w === 640 && media.h === 360, 'the recording loads in the player (640x360)', media);
  await recVideo.evaluate((v) => { v.muted = true; return v.play(); });
  await sleep(1500);
  const played = await recVideo.evaluate((v) => ({ t: v.currentTime, audio: v.webkitAudioDecodedByteCount, video: v.webkitVideoDecodedByteCount,
    error: v.error && v.error.message }));
  ok(!played.error && played.t > 0.5 && played.video > 0 && played.audio > 0, 'the recording plays, video and audio decoded', played);
  await recVideo.evaluate((v) => v.pause());

  // Bookmarks (a supervisor may set them): mark the paused position, see it
  // listed, and a click on it seeks the player there.
  if (USER) {
    const pos = await recVideo.evaluate((v) => v.currentTime);
    await detail.locator(tid('bookmark-note-input')).fill('console test: a moment');
    await detail.locator(tid('bookmark-add')).click();
    const bm = detail.locator(tid('bookmark')).filter({ hasText: 'console test: a moment' });
    await bm.waitFor({ state: 'visible', timeout: 5000 });
    ok(true, `a bookmark set at the player's position (${pos.toFixed(2)} s) is listed`);
    // Where each seek landed (the player plays on from there, so a busy
    // machine's late look at currentTime would be past it).
    await recVideo.evaluate((v) => {
      v.currentTime = 0;
      v.seekedAt = [];
      v.addEventListener('seeked', () => v.seekedAt.push(v.currentTime));
    });
    await bm.locator('button.link').click();
    const at = await until('the player to seek to the bookmark', () => recVideo.evaluate((v, p) =>
      v.seekedAt.find((t) => Math.abs(t - p) < 0.6), pos), 15000);
    await recVideo.evaluate((v) => v.pause());
    ok(Math.abs(at - pos) < 0.6, 'a click on the bookmark seeks the player to it', { at, pos });

    // Retention: no category yet (the unlinked period, from its end); the
    // supervisor gives it two with a reason; a permanent one keeps it for good.
    const retention = detail.locator(tid('rec-retention'));
    await retention.waitFor({ state: 'visible' });
    ok(await retention.locator(tid('rec-no-category')).isVisible() && /still recording/.test(await retention.locator(tid('rec-retain-until')).innerText()) &&
      /no category/.test(await retention.locator(tid('rec-retention-rule')).innerText()), 'the recording shows no category and its retention rule',
      await retention.innerText());
    await detail.locator(tid('category-edit')).click();
    await detail.locator(tid('category-choice', '[data-category="arrest"]')).check();
    await detail.locator(tid('category-choice', '[data-category="complaint"]')).check();
    await detail.locator(tid('category-reason')).fill('console test: complaint filed');
    await detail.locator(tid('category-save')).click();
    await until('the categories to be shown', async () => (await retention.locator(tid('rec-category')).count()) === 2, 5000);
    const kept = await retention.locator(tid('rec-retain-until')).innerText();
    const apiCats = await page.evaluate(async (id) => (await (await fetch(`/api/v1/recordings/${id}`)).json()).categories, recID);
    ok(kept === 'permanent' && JSON.stringify(apiCats) === '["arrest","complaint"]', 'categories set in the console are kept (permanent: complaint)',
      { kept, apiCats });
  }
  const live = await page.evaluate(async (id) => (await (await fetch(`/api/v1/recordings/${id}/verify`, {
    method: 'POST', headers: { 'X-Bodycam-Console': '1' } })).json()), recID);
  note(`the API's verdict on the live recording: ${JSON.stringify({ ok: live.ok, manifest: live.manifest, reason: live.reason })}`);
  await detail.locator(tid('verify')).click();
  const result = detail.locator(tid('verify-result'));
  await until('a verification result', async () => ['true', 'false'].includes(await result.getAttribute('data-ok')), 30000);
  const verdict = await result.innerText();
  if (live.ok) {
    ok(await result.getAttribute('data-ok') === 'true' && /Verified/.test(verdict) && verdict.includes(live.manifest),
      'Verify shows the live recording intact and that its manifest is not yet written', verdict);
  } else {
    ok(await result.getAttribute('data-ok') === 'false' && verdict.includes(live.reason), 'Verify shows the failure and its reason', verdict);
  }
  await page.screenshot({ path: join(OUT, 'recordings.png'), fullPage: false });

  // The viewing audit lists the sessions just held.
  await page.click(tid('tab-audit'));
  await until('the viewing audit', async () => (await page.locator(`${tid('views')} tr`).count()) >= 2, 8000);
  ok(true, 'the viewing audit lists the sessions');

  // Cases: file one, link the live recording, move it a step, read custody.
  if (USER && OFFICER) {
    const CASE = 'C-CONSOLE';
    await page.keyboard.press('4');
    const cases = page.locator(tid('cases'));
    await cases.waitFor({ state: 'visible' });
    ok(true, 'the 4 key opens the Cases section');
    await page.click(tid('case-new'));
    await page.fill(tid('case-id'), CASE);
    await page.fill(tid('case-title'), 'Console test case');
    await page.click(tid('case-create'));
    const newErr = page.locator(tid('case-new-error'));
    await newErr.waitFor({ state: 'visible' });
    ok(/officer/i.test(await newErr.innerText()), 'a supervisor must name the officer in charge', await newErr.innerText());
    const offered = await page.locator(`${tid('case-officers')} option`).evaluateAll((os) => os.map((o) => `${o.value} (${o.label})`));
    ok(offered.some((o) => o.startsWith(`${OFFICER} (`) && o.includes('Ofc. Console')), 'the officers the supervisor may name are offered', offered.join(', '));
    await page.fill(tid('case-officer'), OFFICER);
    await page.click(tid('case-create'));
    const caseItem = page.locator(tid('case-item', `[data-case="${CASE}"]`));
    await caseItem.waitFor({ state: 'visible' });
    ok(await caseItem.getAttribute('data-state') === 'filed', `case ${CASE} is filed and listed`);
    const caseDetail = page.locator(tid('case-detail'));
    await until('the case detail', async () => (await caseDetail.locator(tid('case-state')).getAttribute('data-state')) === 'filed', 5000);
    ok(/investigating/.test(await caseDetail.locator(tid('case-next')).innerText()), 'the next step offered is investigating');

    await caseDetail.locator(tid('case-link-recording')).fill(recID);
    await caseDetail.locator(tid('case-link')).click();
    const evItem = caseDetail.locator(tid('case-evidence-item', `[data-recording="${recID}"]`));
    await evItem.waitFor({ state: 'visible' });
    ok(await evItem.getAttribute('data-active') === 'true', 'the live recording is linked to the case');

    await caseDetail.locator(tid('case-move')).click();
    ok(/why/i.test(await caseDetail.locator(tid('case-move-error')).innerText()), 'moving a case without a reason is refused in the page');
    await caseDetail.locator(tid('case-reason')).fill('footage under review by the console test');
    await caseDetail.locator(tid('case-move')).click();
    await until('the case to be investigating', async () => (await caseDetail.locator(tid('case-state')).getAttribute('data-state')) === 'investigating', 5000);
    const steps = await caseDetail.locator(tid('case-step')).evaluateAll((els) => els.map((e) => [e.dataset.state, e.dataset.status, e.textContent]));
    const inv = steps.find((s) => s[0] === 'investigating');
    ok(steps.length === 6 && steps[0][1] === 'done' && inv[1] === 'current' && inv[2].includes(USER) && inv[2].includes('console test'),
      'the stepper shows filed done and investigating current, with who and why', steps);
    ok(await evItem.getAttribute('data-active') === 'true' && await caseItem.getAttribute('data-state') === 'investigating',
      'the evidence list and the case list follow the step');

    await caseDetail.locator(tid('case-custody')).click();
    const events = caseDetail.locator(tid('custody-event'));
    await until('custody events', async () => (await events.count()) >= 3, 8000);
    const actions = await events.evaluateAll((els) => els.map((e) => e.dataset.action));
    ok(['case_create', 'link', 'case_transition'].every((a) => actions.includes(a)), 'Custody lists case_create, link and case_transition', actions);
    const href = await caseDetail.locator(tid('case-export')).getAttribute('href');
    ok(href === `/api/v1/cases/${CASE}/export` && await caseDetail.locator(tid('case-export')).getAttribute('download') !== null,
      'Export is a download link to /api/v1/cases/{id}/export', href);
    const auditHref = await caseDetail.locator(tid('case-audit')).getAttribute('href');
    const audit = await page.evaluate(async (u) => {
      const r = await fetch(u);
      const b = new Uint8Array(await r.arrayBuffer());
      return { status: r.status, type: r.headers.get('content-type'), head: String.fromCharCode(...b.slice(0, 5)), sig: r.headers.get('bodycam-signature') };
    }, auditHref);
    ok(auditHref === `/api/v1/cases/${CASE}/audit?format=pdf` && audit.status === 200 && audit.type === 'application/pdf' && audit.head === '%PDF-' && !!audit.sig,
      'Audit report is the case\'s signed PDF', { auditHref, ...audit });
    await page.locator(tid('cases')).evaluate((el) => el.closest('.main').scrollTo(0, 0));
    await page.screenshot({ path: join(OUT, 'cases.png') });
    note(`screenshot: ${join(OUT, 'cases.png')}`);
  }

  // Back on the wall, the publisher stops: the view says so.
  await page.keyboard.press('1');
  await page.locator(tid('view-live')).waitFor({ state: 'visible' });
  ok(true, 'the 1 key returns to the live wall');
  if (PUBLISHER_PID) {
    await item.locator(tid('watch')).click();
    const remaining = tiles.first();
    await until('the view to play again', async () => (await remaining.getAttribute('data-state')) === 'live', 15000);
    process.kill(PUBLISHER_PID, 'SIGKILL');
    await until('the view to say the stream ended', async () => (await remaining.getAttribute('data-state')) === 'ended', 15000);
    const msg = await remaining.locator(tid('tile-message')).innerText();
    ok(/stream ended/i.test(msg), 'when the publisher stops the view says the stream ended', msg);
    await until(`${DEVICE} to leave the live list`, async () => (await item.count()) === 0, 5000);
    ok(true, 'the device leaves the live list');
    await page.screenshot({ path: join(OUT, 'ended.png') });
  }

  // Sign out: back to the sign-in screen; the cookie no longer works.
  await page.click(tid('signout'));
  await page.locator(tid('signin')).waitFor({ state: 'visible' });
  const status = await page.evaluate(async () => (await fetch('/api/v1/session')).status);
  ok(status === 401, 'signing out ends the session', status);

  ok(problems.length === 0, 'no CSP violations or script errors in the page', problems);
  console.log(`# passed ${passed} checks; click to first frame ${firstFrameMs} ms`);
  console.log(`RESULT first_frame_ms=${firstFrameMs}`);
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
    if (page) await page.screenshot({ path: join(OUT, 'failure.png') }).then(() => console.error(`screenshot: ${join(OUT, 'failure.png')}`), () => {});
  }
} finally {
  clearTimeout(watchdog);
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(code);
