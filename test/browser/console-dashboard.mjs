// Real-browser test of the supervision dashboard: Chromium (the Debian
// package) driven by playwright-core. cmd/bodycam/console_dashboard_test.go
// seeds a week of work for two units and runs it against a real server.
// A supervisor of one unit signs in and opens the Dashboard page: the
// numbers shown are what was seeded for their unit (BODYCAM_EXPECT), the
// other unit's are not shown, a chart of the days is drawn with a bar per
// day whose values are what was recorded, the CSV link gives the same
// officers, and narrowing the period to today shows nothing recorded.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { ARGS, checks, deadline, env as envOf, signIn, tid, watch } from './harness.mjs';

const env = (name, fallback) => envOf(name, fallback, 'cmd/bodycam/console_dashboard_test.go');
const URL_ = env('BODYCAM_URL');
const USER = env('BODYCAM_USER'); // a supervisor of a unit
const PASSWORD = env('BODYCAM_PASSWORD');
const EXPECT = JSON.parse(env('BODYCAM_EXPECT'));
const CHROMIUM = env('BODYCAM_CHROMIUM', '/usr/bin/chromium');
const DEADLINE_MS = Number(env('BODYCAM_TIMEOUT_MS', '90000'));
const SCREENSHOT = process.env.BODYCAM_SCREENSHOT; // a PNG of the page as seeded, to look at

const { ok, passed } = checks();
const watchdog = deadline(DEADLINE_MS);

const profile = mkdtempSync(join(tmpdir(), 'bodycam-chromium-'));
let context;
const problems = [];

async function main() {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1440, height: 1000 },
  });
  const page = context.pages()[0] || await context.newPage();
  watch(page, problems);
  await signIn(page, URL_, USER, PASSWORD);

  await page.click(tid('tab-dashboard'));
  await page.locator(tid('stat-cards')).waitFor({ state: 'visible' });
  const from = await page.inputValue(tid('dash-from'));
  const to = await page.inputValue(tid('dash-to'));
  ok((Date.parse(to) - Date.parse(from)) / 86400000 === 6 && to === new Date().toISOString().slice(0, 10),
    'the period is the last 7 days by default', { from, to });
  ok(await page.locator(tid('dash-unit')).isHidden(), 'a supervisor of a unit is not offered other units');

  // The cards: what was recorded in the unit.
  const cards = {};
  for (const key of Object.keys(EXPECT.cards)) {
    cards[key] = (await page.locator(`${tid(`stat-${key}`)} .stat-value`).textContent()).trim();
  }
  ok(JSON.stringify(cards) === JSON.stringify(EXPECT.cards), 'the numbers shown are the ones seeded for the unit', { shown: cards, want: EXPECT.cards });

  // Tables: the unit's officers only.
  const officers = await page.locator(tid('officer-row')).evaluateAll((rows) => rows.map((r) => r.dataset.officer));
  ok(JSON.stringify(officers) === JSON.stringify(EXPECT.officers), "the officers' table holds the unit's officers only", officers);
  const units = await page.locator(tid('unit-row')).evaluateAll((rows) => rows.map((r) => r.dataset.unit));
  ok(JSON.stringify(units) === JSON.stringify(EXPECT.units), "the units' table holds the supervisor's unit only", units);
  const officerCells = await page.locator(tid('officer-row')).first().locator('td').allTextContents();
  ok(officerCells[2] === EXPECT.cards.recordings && officerCells[3] === EXPECT.cards.hours, "the officer's line has their recordings and hours", officerCells);
  const overdue = await page.locator(tid('overdue-row')).evaluateAll((rows) => rows.map((r) => r.dataset.case));
  ok(JSON.stringify(overdue) === JSON.stringify(EXPECT.overdue), 'the overdue cases are listed', overdue);
  const filed = page.locator(tid('step-row', '[data-state="filed"]'));
  const step = {};
  for (const k of Object.keys(EXPECT.filed)) step[k] = (await filed.locator(tid(`cell-${k}`)).textContent()).trim();
  ok(JSON.stringify(step) === JSON.stringify(EXPECT.filed), 'the filed step: left, mean hours, open, overdue', { shown: step, want: EXPECT.filed });
  const states = {};
  for (const r of await page.locator(tid('state-row')).all()) states[await r.getAttribute('data-state')] = (await r.locator(tid('cell-cases')).textContent()).trim();
  ok(states.filed === '1' && states.investigating === '1' && states.closed === '0', "cases by state: the unit's (C-N1 filed, C-N2 investigating)", states);

  // The day charts: seven bars, each the day's value.
  const dayCharts = page.locator(`${tid('chart-day')} svg${tid('chart')}`);
  ok(await dayCharts.count() === 2, 'two charts of the days are drawn (hours, recordings)');
  const bars = async (i) => dayCharts.nth(i).locator('rect.chart-bar').evaluateAll((rs) => rs.map((r) => ({
    day: r.dataset.label, value: Number(r.dataset.value), height: Number(r.getAttribute('height')), tip: r.querySelector('title').textContent,
  })));
  const hours = await bars(0);
  const counts = await bars(1);
  ok(hours.length === 7 && counts.length === 7, 'one bar per day of the period', hours.length);
  const drawn = {};
  for (const [i, b] of hours.entries()) {
    const day = b.tip.slice(0, 10);
    if (b.value || counts[i].value) drawn[day] = `${counts[i].value}/${b.value}`;
  }
  ok(JSON.stringify(Object.keys(drawn).sort().map((k) => [k, drawn[k]])) === JSON.stringify(Object.keys(EXPECT.days).sort().map((k) => [k, EXPECT.days[k]])),
    'each day drawn has the recordings and hours recorded that day', { drawn, want: EXPECT.days });
  const tallest = hours.reduce((a, b) => (b.value > a.value ? b : a));
  ok(tallest.height > 100 && hours.every((b) => (b.value > 0) === (b.height > 0)), 'the bars have heights: the day with most hours is the tallest, empty days flat', hours);
  ok(await page.locator(`${tid('chart-week')} svg${tid('chart')} rect.chart-bar`).count() >= 1, 'a chart of the weeks is drawn');

  // CSV: the link gives the same table.
  const href = await page.locator(tid('csv-officers')).getAttribute('href');
  const csv = await page.evaluate(async (u) => { const r = await fetch(u); return { status: r.status, type: r.headers.get('Content-Type'), cd: r.headers.get('Content-Disposition'), text: await r.text() }; }, href);
  const lines = csv.text.trim().split('\n');
  ok(csv.status === 200 && /attachment/.test(csv.cd) && lines.length === 3 && lines[1].startsWith(`north,${EXPECT.officers[0]},${EXPECT.cards.recordings},${EXPECT.cards.hours},`) &&
    lines[2].startsWith('total,'), "the officers' CSV holds the same numbers", csv);

  if (SCREENSHOT) await page.screenshot({ path: SCREENSHOT, fullPage: true });

  // Today only: nothing was recorded today.
  await page.fill(tid('dash-from'), to);
  await page.click(tid('dash-refresh'));
  await page.locator(`${tid('stat-recordings')} .stat-value`).filter({ hasText: /^0$/ }).waitFor();
  ok((await page.locator(`${tid('chart-day')} svg${tid('chart')}`).first().locator('rect.chart-bar').count()) === 1, 'a period of one day: one bar');

  ok(problems.length === 0, 'no page errors, console errors or CSP violations', problems);
}

try {
  await main();
  console.log(`# ${passed()} passed`);
} catch (err) {
  console.error(err.message || err);
  process.exitCode = 1;
} finally {
  clearTimeout(watchdog);
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
