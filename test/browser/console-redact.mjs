// Real-browser test of the console's review tools on a stored recording:
// Chromium (the Debian package) driven by playwright-core.
// cmd/bodycam/console_redact_test.go runs it against a real server after
// the real ffmpeg published the recording and its review proxy was made.
// A supervisor signs in, opens the recording, plays the review proxy,
// draws a box on the paused picture (solid), submits the redaction, waits
// for the copy and plays it in the recording's player: inside the box the
// picture is black, outside it is not.

import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) { console.error(`usage: ${name} is required (see cmd/bodycam/console_redact_test.go)`); process.exit(2); }
  return v;
};
const URL_ = env('BODYCAM_URL');
const USER = env('BODYCAM_USER'); // a supervisor
const PASSWORD = env('BODYCAM_PASSWORD');
const DEVICE = env('BODYCAM_DEVICE');
const RECORDING = env('BODYCAM_RECORDING');
const CASE = env('BODYCAM_CASE'); // a case with two cameras' recordings of one incident
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

// loaded waits until the player has a picture of src, and returns its size.
async function loaded(video, src) {
  return until(`the player to load ${src}`, () => video.evaluate((v, want) => {
    if (v.error) return { error: v.error.code, message: v.error.message };
    return v.currentSrc.includes(want) && v.readyState >= 2 && { w: v.videoWidth, h: v.videoHeight, src: v.currentSrc };
  }, src), 15000);
}

// brightness seeks the player to t and returns the mean brightness of the
// picture inside and outside a box (fractions of the picture).
async function brightness(video, t, box) {
  return video.evaluate(async (v, { t, box }) => {
    await new Promise((resolve) => {
      v.addEventListener('seeked', resolve, { once: true });
      v.currentTime = t;
    });
    const c = document.createElement('canvas');
    c.width = v.videoWidth;
    c.height = v.videoHeight;
    const g = c.getContext('2d');
    g.drawImage(v, 0, 0);
    const px = g.getImageData(0, 0, c.width, c.height).data;
    let inSum = 0; let inN = 0; let outSum = 0; let outN = 0;
    for (let y = 0; y < c.height; y += 2) {
      for (let x = 0; x < c.width; x += 2) {
        const i = (y * c.width + x) * 4;
        const l = (px[i] + px[i + 1] + px[i + 2]) / 3;
        const fx = x / c.width; const fy = y / c.height;
        // Inside, away from the edges (the encoder blurs them); outside,
        // away from the box and from the mark at the bottom.
        if (fx > box.x + 0.02 && fx < box.x + box.w - 0.02 && fy > box.y + 0.02 && fy < box.y + box.h - 0.02) { inSum += l; inN++; }
        else if ((fx > box.x + box.w + 0.05 || fy > box.y + box.h + 0.05) && fy < 0.85) { outSum += l; outN++; }
      }
    }
    return { inside: inSum / inN, outside: outSum / outN, t: v.currentTime };
  }, { t, box });
}

async function main() {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
    viewport: { width: 1440, height: 1000 },
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
  await page.locator(tid('signin')).waitFor({ state: 'visible' });
  await page.click(tid('mode-account'));
  await page.fill(tid('user'), USER);
  await page.fill(tid('password'), PASSWORD);
  await page.click(tid('signin'));
  await page.locator(tid('console')).waitFor({ state: 'visible' });

  await page.click(tid('tab-recordings'));
  await page.selectOption(tid('rec-device'), DEVICE);
  const item = page.locator(tid('rec-item', `[data-recording="${RECORDING}"]`));
  await item.waitFor({ state: 'visible' });
  await item.locator(tid('open-recording')).click();
  const detail = page.locator(tid('rec-detail'));
  const video = detail.locator(tid('rec-video'));
  const orig = await loaded(video, `/recordings/${RECORDING}/media`);
  ok(orig.w === 640 && orig.h === 360, 'the recording plays in its player (640x360)', orig);

  // The review proxy, then back to the original.
  await detail.locator(tid('rendition-proxy')).check();
  const proxy = await loaded(video, 'rendition=proxy');
  ok(proxy.w === 640 && proxy.h === 360, 'the review proxy plays in the same player', proxy);
  await detail.locator(tid('rendition-original')).check();
  await loaded(video, `/recordings/${RECORDING}/media`);

  // Pause at 1.5 s and draw a box over the top-left part of the picture.
  await video.evaluate(async (v) => {
    v.pause();
    await new Promise((resolve) => { v.addEventListener('seeked', resolve, { once: true }); v.currentTime = 1.5; });
  });
  await detail.locator(tid('redact-draw')).click();
  const overlay = detail.locator(tid('redact-overlay'));
  await video.scrollIntoViewIfNeeded();
  const r = await video.evaluate((v) => {
    const b = v.getBoundingClientRect();
    const s = Math.min(b.width / v.videoWidth, b.height / v.videoHeight);
    const w = v.videoWidth * s; const h = v.videoHeight * s;
    return { x: b.left + (b.width - w) / 2, y: b.top + (b.height - h) / 2, w, h };
  });
  const box = { x: 0.1, y: 0.1, w: 0.4, h: 0.4 };
  await page.mouse.move(r.x + box.x * r.w, r.y + box.y * r.h);
  await page.mouse.down();
  await page.mouse.move(r.x + (box.x + box.w / 2) * r.w, r.y + (box.y + box.h / 2) * r.h, { steps: 4 });
  await page.mouse.move(r.x + (box.x + box.w) * r.w, r.y + (box.y + box.h) * r.h, { steps: 4 });
  await page.mouse.up();
  await detail.locator(tid('redact-box')).first().waitFor({ state: 'visible' });
  ok(await overlay.locator(tid('redact-preview')).count() === 1, 'the box drawn is listed and previewed over the picture');
  await detail.locator(tid('redact-style')).first().selectOption('solid');
  // The box hides from the moment it was drawn: from the start instead.
  await video.evaluate(async (v) => {
    await new Promise((resolve) => { v.addEventListener('seeked', resolve, { once: true }); v.currentTime = 0; });
  });
  await detail.locator(tid('redact-box')).first().locator('button', { hasText: 'From here' }).click();
  ok(/00:00 – end|0:00 – end|0\.0|– end/.test(await detail.locator(tid('redact-box')).first().innerText()), 'the box hides from the start to the end',
    await detail.locator(tid('redact-box')).first().innerText());
  await detail.locator(tid('redact-make')).click();
  const done = detail.locator(tid('redaction', '[data-state="done"]'));
  await done.waitFor({ state: 'visible', timeout: 90000 });
  ok(true, 'the redaction is made and listed');

  await done.locator(tid('redaction-play-here')).click();
  const red = await loaded(video, '/redactions/');
  ok(red.w === 640 && red.h === 360, 'the redacted copy plays in the recording\'s player', red);
  await video.evaluate((v) => { v.muted = true; return v.play(); });
  await until('the redacted copy to play on', () => video.evaluate((v) => v.currentTime > 0.5 && v.currentTime), 10000);
  await video.evaluate((v) => v.pause());
  const seen = await brightness(video, 2, box);
  ok(seen.inside < 30 && seen.outside > 60, 'the redacted copy is black inside the box and not outside it', seen);
  await page.screenshot({ path: join(OUT, 'redaction.png'), fullPage: true });

  // Play together: the case's two cameras on one clock.
  await page.click(tid('tab-cases'));
  await page.locator(tid('case-item', `[data-case="${CASE}"]`)).locator('button').first().click();
  await page.locator(tid('case-sync')).click();
  const view = page.locator(tid('sync-view'));
  await view.waitFor({ state: 'visible' });
  const syncTiles = view.locator(tid('sync-tile'));
  ok(await syncTiles.count() === 2, 'Play together shows the case\'s two cameras', await syncTiles.count());
  await until('both players to have a picture', () => syncTiles.evaluateAll((ts) => ts.every((t) => t.querySelector('video').readyState >= 2)), 15000);
  await view.locator(tid('sync-play')).click();
  // In step: each player's moment (its start plus its position) is the
  // same wall time, within the drift allowed, once both are playing.
  const stepped = await until('both cameras to play in step', () => syncTiles.evaluateAll((ts) => {
    const at = ts.map((t) => ({ wall: Number(t.dataset.start) + t.querySelector('video').currentTime * 1000,
      playing: !t.querySelector('video').paused, idle: t.classList.contains('idle') }));
    const live = at.filter((a) => !a.idle);
    return live.length === 2 && live.every((a) => a.playing) && Math.abs(live[0].wall - live[1].wall) < 500 && at;
  }), 20000, 250);
  ok(true, 'the two cameras play in step by their recorded times', stepped);
  await page.screenshot({ path: join(OUT, 'sync.png') });
  await page.keyboard.press('Escape');
  await view.waitFor({ state: 'detached' });
  ok(true, 'Esc closes the view');

  // Or the recordings a list shows (every device, the time span chosen).
  await page.click(tid('tab-recordings'));
  await page.selectOption(tid('rec-device'), '*');
  await until('both devices\' recordings listed', async () => (await page.locator(tid('rec-item')).count()) >= 2);
  // Narrowed by case: the two recordings of C-SYNC, across devices.
  await page.fill(tid('rec-case'), CASE);
  await until('the list narrowed to the case', async () => {
    const n = await page.locator(tid('rec-item')).count();
    const loading = await page.locator('#rec-list[data-loading]').count();
    return !loading && n === 2;
  }, 10000);
  ok(true, 'the Recordings list narrows to a case\'s recordings across devices');
  await page.click(tid('rec-sync'));
  await view.waitFor({ state: 'visible' });
  ok(await view.locator(tid('sync-tile')).count() === 2, 'Play together from the Recordings list shows what it lists', await view.locator(tid('sync-tile')).count());
  await view.locator(tid('sync-close')).click();
  await view.waitFor({ state: 'detached' });

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
    if (page) await page.screenshot({ path: join(OUT, 'failure-redaction.png'), fullPage: true }).then(() => console.error(`screenshot: ${join(OUT, 'failure-redaction.png')}`), () => {});
  }
} finally {
  clearTimeout(watchdog);
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(code);
