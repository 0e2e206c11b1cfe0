// What the browser tests share: their settings from the environment, the
// checks they print (TAP-like), Chromium's flags, a page's problems (CSP
// violations, script errors) collected, and the console's sign-in.

export const tid = (id, extra = '') => `[data-testid="${id}"]${extra}`;

// ARGS: Chromium headless on a machine with no network but loopback.
export const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

// env reads a setting; without one and no fallback, it says which Go test
// runs the script, and exits 2.
export function env(name, fallback, runner) {
  const v = process.env[name] ?? fallback;
  if (v === undefined) { console.error(`usage: ${name} is required (see ${runner})`); process.exit(2); }
  return v;
}

// checks returns ok(cond, msg, detail), which prints each check passed and
// throws "FAIL: …" on the first that fails, and passed(), the count so far.
export function checks() {
  let n = 0;
  const ok = (cond, msg, detail) => {
    if (!cond) throw new Error(`FAIL: ${msg}${detail !== undefined ? `\n  got: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}` : ''}`);
    n++;
    console.log(`ok ${n} - ${msg}`);
  };
  return { ok, passed: () => n };
}

// deadline exits 1 if the test is not done within ms; it returns the timer.
export function deadline(ms) {
  return setTimeout(() => {
    console.error(`FAIL: the browser test did not finish within ${ms} ms`);
    process.exit(1);
  }, ms);
}

// watch sets the page's default timeout and collects its problems.
export function watch(page, problems, who = '') {
  const p = who ? `${who}: ` : '';
  page.setDefaultTimeout(15000);
  page.on('pageerror', (err) => problems.push(`${p}page error: ${err.message}`));
  page.on('console', (msg) => {
    const text = msg.text();
    if (/Content.Security.Policy|Refused to/i.test(text)) problems.push(`${p}CSP: ${text}`);
    else if (msg.type() === 'error' && !/Failed to load resource/.test(text)) problems.push(`${p}console error: ${text}`);
  });
}

// signIn signs in to the console at url with a user's password.
export async function signIn(page, url, user, password) {
  await page.goto(url);
  await page.locator(tid('signin')).waitFor({ state: 'visible' });
  await page.click(tid('mode-account'));
  await page.fill(tid('user'), user);
  await page.fill(tid('password'), password);
  await page.click(tid('signin'));
  await page.locator(tid('console')).waitFor({ state: 'visible' });
}
