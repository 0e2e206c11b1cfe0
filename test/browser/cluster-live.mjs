// Real-browser check of live viewing across cluster nodes: Chromium (the
// Debian package) opens the console on one node, signs in as a supervisor
// (with their own password) and watches a device that publishes on another
// node; the video element must play.
//
//   BODYCAM_URL=http://node-a:8080 BODYCAM_USER=sup-1 BODYCAM_PASSWORD=... BODYCAM_DEVICE=cam-1 node cluster-live.mjs
//
// cmd/bodycam/cluster_test.go runs it against three real nodes.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const URL_ = process.env.BODYCAM_URL;
const USER = process.env.BODYCAM_USER;
const PASSWORD = process.env.BODYCAM_PASSWORD;
const DEVICE = process.env.BODYCAM_DEVICE;
const CHROMIUM = process.env.BODYCAM_CHROMIUM || '/usr/bin/chromium';
if (!URL_ || !USER || !PASSWORD || !DEVICE) {
  console.error('usage: BODYCAM_URL=... BODYCAM_USER=... BODYCAM_PASSWORD=... BODYCAM_DEVICE=... node cluster-live.mjs');
  process.exit(2);
}

let passed = 0;
function ok(cond, msg, detail) {
  if (!cond) throw new Error(`FAIL: ${msg}${detail !== undefined ? `\n  got: ${JSON.stringify(detail)}` : ''}`);
  passed++;
  console.log(`ok ${passed} - ${msg}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tid = (id, extra = '') => `[data-testid="${id}"]${extra}`;
const watchdog = setTimeout(() => { console.error('FAIL: not finished within 90 s'); process.exit(1); }, 90000);

const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'bodycam-chromium-')), {
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required'],
});
try {
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(20000);
  const problems = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  await page.goto(URL_);
  await page.click(tid('mode-account'));
  await page.fill(tid('user'), USER);
  await page.fill(tid('password'), PASSWORD);
  await page.click(tid('signin'));
  await page.locator(tid('console')).waitFor({ state: 'visible' });
  const item = page.locator(tid('live-item', `[data-device="${DEVICE}"]`));
  await item.waitFor({ state: 'visible' });
  ok(true, `${DEVICE} (on another node) is in this node's live list`);
  await item.locator(tid('watch')).click();
  const video = page.locator(tid('tile', `[data-device="${DEVICE}"]`)).first().locator(tid('live-video'));
  await video.waitFor({ state: 'visible' });
  const frames = () => video.evaluate((v) => v.getVideoPlaybackQuality().totalVideoFrames);
  const end = Date.now() + 20000;
  while (await frames() === 0 && Date.now() < end) await sleep(100);
  const f1 = await frames();
  ok(f1 > 0, 'the video element decodes frames relayed from the other node', f1);
  await sleep(2000);
  const f2 = await frames();
  ok(f2 - f1 >= 10, 'and keeps decoding them (at least 10 more in 2 s)', { f1, f2 });
  ok(await video.evaluate((v) => !v.paused && v.videoWidth > 0), 'the video element plays');
  ok(problems.length === 0, 'no script errors in the page', problems);
} finally {
  clearTimeout(watchdog);
  await context.close();
}
console.log(`# ${passed} checks passed`);
