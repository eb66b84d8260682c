// console.test.js - the web console in headless Chromium (issue 9), run by
// tests/browser/test_console, which starts tender-server (local provider)
// and passes in the environment: TENDER_URL, TENDER_TOKEN (admin),
// TENDER_BUILDDIR (the sample distributions), TENDER_TMP (scratch),
// TENDER_SHOTS (screenshots), TENDER_BROWSER_MODULES (playwright-core),
// CHROMIUM.  Prints TAP; one step after another, as an operator would go:
// a failed step fails, and the steps after it are skipped.
'use strict';

const fs = require('fs');
const path = require('path');

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run this through tests/browser/test_console)`);
  return v;
};
const URL_ = env('TENDER_URL');
const TOKEN = env('TENDER_TOKEN');
const BUILDDIR = env('TENDER_BUILDDIR');
const TMP = env('TENDER_TMP');
const SHOTS = env('TENDER_SHOTS');
const { chromium } = require(path.join(env('TENDER_BROWSER_MODULES'), 'playwright-core'));

// Booting a local node takes a second or two; a rollout batch a few.
const NODE_MS = 60000;
const ROLLOUT_MS = 150000;
const UI_MS = 10000;

// ------------------------------------------------------------ TAP

let count = 0;
let failed = 0;
let stopped = null;
const steps = [];
const step = (name, fn) => steps.push({ name, fn });

function diag(text) {
  for (const line of String(text).split('\n')) console.log(`# ${line}`);
}

// ------------------------------------------------------------ helpers

async function apiCall(method, p, body) {
  const res = await fetch(URL_ + p, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function view(page, name) {
  await page.getByRole('navigation', { name: 'Views' }).getByRole('button', { name }).click();
  await page.locator(`#view-${name.toLowerCase()}`).waitFor({ state: 'visible', timeout: UI_MS });
}

// Waits until fn() (run in the page) is true, with a message on time-out.
async function until(page, what, fn, arg, timeout) {
  try {
    await page.waitForFunction(fn, arg, { timeout: timeout || UI_MS, polling: 100 });
  } catch (e) {
    throw new Error(`timed out waiting for ${what}`);
  }
}

// The target rows of the Targets view, as the page shows them.
async function targetRows(page) {
  return page.$$eval('#clusters tr[data-target]', (rows) => rows.map((r) => ({
    id: r.dataset.target,
    state: r.querySelector('td.state .badge').textContent,
    health: r.querySelector('td.health .badge').textContent,
    version: r.querySelector('td.version').textContent,
  })));
}

async function waitTargets(page, what, pred, timeout) {
  const deadline = Date.now() + (timeout || NODE_MS);
  let rows = [];
  while (Date.now() < deadline) {
    rows = await targetRows(page);
    if (pred(rows)) return rows;
    await page.waitForTimeout(200);
  }
  throw new Error(`timed out waiting for ${what}; the page shows ${JSON.stringify(rows)}`);
}

// ------------------------------------------------------------ the run

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  for (const f of fs.readdirSync(SHOTS)) if (/^failure-\d+\.png$/.test(f)) fs.unlinkSync(path.join(SHOTS, f));
  const browser = await chromium.launch({
    executablePath: env('CHROMIUM'),
    headless: true,
    args: ['--disable-gpu', '--no-first-run'],
  });
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const page = await context.newPage();
  const problems = [];     // console errors, CSP violations, requests elsewhere
  const streamRequests = []; // the event stream's requests and their headers
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (r) => {
    if (!r.url().startsWith(URL_ + '/') && !r.url().startsWith('data:')) problems.push(`request elsewhere: ${r.url()}`);
    if (r.url().endsWith('/api/v1/events/stream')) streamRequests.push(r.headers());
  });
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });

  const ctx = { page, context, problems, streamRequests };
  try {
    for (const s of steps) {
      count++;
      if (stopped) {
        console.log(`ok ${count} - ${s.name} # SKIP after the failure of "${stopped}"`);
        continue;
      }
      const t0 = Date.now();
      try {
        await s.fn(ctx);
        console.log(`ok ${count} - ${s.name}`);
        diag(`${((Date.now() - t0) / 1000).toFixed(1)} s`);
      } catch (e) {
        failed++;
        stopped = s.name;
        console.log(`not ok ${count} - ${s.name}`);
        diag(e.stack || e.message);
        await shot(page, `failure-${count}`).catch(() => {});
        diag(`the page at the failure: ${path.join(SHOTS, `failure-${count}.png`)}`);
      }
    }
  } finally {
    await browser.close().catch(() => {});
  }
  console.log(`1..${count}`);
  return failed ? 1 : 0;
}

// ------------------------------------------------------------ the steps

step('the console and its files are served with their types and security headers', async () => {
  let res = await fetch(URL_ + '/');
  assert(res.status === 200, `GET / answered ${res.status}`);
  assert(res.headers.get('content-type') === 'text/html; charset=utf-8', `GET /: ${res.headers.get('content-type')}`);
  assert(res.headers.get('cache-control') === 'no-cache', `GET /: Cache-Control ${res.headers.get('cache-control')}`);
  assert(res.headers.get('x-content-type-options') === 'nosniff', 'GET /: no nosniff');
  const csp = res.headers.get('content-security-policy') || '';
  assert(csp.includes("default-src 'none'") && csp.includes("script-src 'self'"), `GET /: CSP ${csp}`);
  const html = await res.text();
  for (const src of html.matchAll(/(?:src|href)="([^"]+)"/g)) {
    assert(src[1].startsWith('/ui/'), `index.html loads ${src[1]}, not one of the server's files`);
  }
  res = await fetch(URL_ + '/ui/app.js');
  assert(res.status === 200 && res.headers.get('content-type') === 'text/javascript; charset=utf-8',
    `GET /ui/app.js: ${res.status} ${res.headers.get('content-type')}`);
  const etag = res.headers.get('etag');
  assert(/^"[0-9a-f]{64}"$/.test(etag || ''), `GET /ui/app.js: ETag ${etag}`);
  res = await fetch(URL_ + '/ui/app.js', { headers: { 'If-None-Match': etag } });
  assert(res.status === 304, `GET /ui/app.js with its ETag: ${res.status}, not 304`);
  res = await fetch(URL_ + '/ui/app.css');
  assert(res.headers.get('content-type') === 'text/css; charset=utf-8', `app.css: ${res.headers.get('content-type')}`);
  // a path that tries to leave /ui is refused as such (400); a name that is
  // not a console file is not found (404)
  res = await fetch(URL_ + '/ui/..%2Fapp.js');
  assert(res.status === 400, `GET /ui/..%2Fapp.js: ${res.status}, not 400`);
  for (const bad of ['/ui/.hidden.js', '/ui/app.sh', '/ui/nope.js']) {
    res = await fetch(URL_ + bad);
    assert(res.status === 404, `GET ${bad}: ${res.status}, not 404`);
  }
});

step('the console asks for a token, refuses a wrong one with the server\'s words, and keeps a good one for the session', async ({ page }) => {
  await page.goto(URL_ + '/');
  await page.getByRole('textbox', { name: 'API token' }).waitFor({ timeout: UI_MS });
  assert(!(await page.locator('#nav').isVisible()), 'the views are shown before a token is given');
  await shot(page, 'login');
  await page.getByRole('textbox', { name: 'API token' }).fill('tn_not-a-real-token');
  await page.getByRole('button', { name: 'Use this token' }).click();
  await until(page, 'the refusal', () => /refused the token/.test(document.querySelector('#login-error').textContent));
  const msg = await page.textContent('#login-error');
  assert(/token/i.test(msg), `the refusal says: ${msg}`);
  // Typed as a person would, then Enter submits.
  await page.getByRole('textbox', { name: 'API token' }).fill(TOKEN);
  await page.getByRole('textbox', { name: 'API token' }).press('Enter');
  await page.locator('#nav').waitFor({ state: 'visible', timeout: UI_MS });
  const kept = await page.evaluate(() => sessionStorage.getItem('tender.token'));
  assert(kept === TOKEN, 'the token is not in sessionStorage');
  const local = await page.evaluate(() => Object.keys(localStorage).length);
  assert(local === 0, 'something was written to localStorage');
  await page.reload();
  await page.locator('#nav').waitFor({ state: 'visible', timeout: UI_MS });
  assert(!(await page.locator('#login').isVisible()), 'a reload asks for the token again');
  await until(page, 'the live event stream', () => document.querySelector('#live').textContent === 'live');
  // From here on, a reload would show up as this mark missing.
  await page.evaluate(() => { window.__noReload = true; });
});

step('the views are reachable with the keyboard alone', async ({ page }) => {
  await page.locator('#nav button[data-view="targets"]').focus();
  await page.keyboard.press('Tab');
  const focused = await page.evaluate(() => document.activeElement.dataset.view);
  assert(focused === 'distributions', `Tab from Targets went to ${focused}`);
  await page.keyboard.press('Enter');
  await page.locator('#view-distributions').waitFor({ state: 'visible', timeout: UI_MS });
  const ring = await page.evaluate(() => ({ tag: document.activeElement.outerHTML.slice(0, 60),
    fv: document.activeElement.matches(':focus-visible'), style: getComputedStyle(document.activeElement).outlineStyle,
    focus: document.hasFocus() }));
  assert(ring.style !== 'none', `the focused button shows no focus ring: ${JSON.stringify(ring)}`);
  // Every control has a name a screen reader can say.
  const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, input, select')]
    .filter((el) => el.offsetParent !== null)
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
    .map((el) => el.outerHTML.slice(0, 80)));
  assert(!unnamed.length, `controls without a name: ${unnamed.join(', ')}`);
});

step('educa 1.0 and 1.1 are uploaded through the form, with a progress bar, and listed', async ({ page, context }) => {
  await view(page, 'Distributions');
  // A slow link, so that the progress bar has something to show.
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 40 * 1024,
  });
  for (const v of ['1.0', '1.1']) {
    await page.evaluate(() => {
      window.__progress = [];
      const bar = document.querySelector('#upload-progress');
      new MutationObserver(() => window.__progress.push(Number(bar.value)))
        .observe(bar, { attributes: true });
      const status = document.querySelector('#upload-status');
      window.__status = [];
      new MutationObserver(() => window.__status.push(status.textContent))
        .observe(status, { childList: true, characterData: true, subtree: true });
    });
    await page.getByLabel(/Distribution archive/).setInputFiles(path.join(BUILDDIR, 'distributions', `educa-${v}.zip`));
    await page.getByRole('button', { name: 'Upload' }).click();
    await until(page, `educa ${v} uploaded`, (ver) => /Uploaded educa@/.test(document.querySelector('#upload-status').textContent) &&
      document.querySelector(`tr[data-dist="educa@${ver}.0"]`), v, 60000);
    const seen = await page.evaluate(() => ({ progress: window.__progress, status: window.__status }));
    const between = seen.status.filter((s) => /^\d+ % \(/.test(s) && !/^100 %/.test(s));
    assert(between.length > 0, `no progress was shown while educa ${v} went up: ${JSON.stringify(seen.status)}`);
    assert(await page.locator('#upload-progress').evaluate((b) => b.value) === 100, 'the bar is not full at the end');
    diag(`educa ${v}: progress shown ${between.join(' | ')}`);
  }
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  await cdp.detach();
  const row = page.locator('tr[data-dist="educa@1.1.0"]');
  const text = await row.textContent();
  assert(text.includes('org.educa.web@1.1.0') && text.includes('org.educa.worker@1.0.0'), `educa 1.1's bundles: ${text}`);
  assert(!(await page.textContent('#upload-error')), 'an error is shown after good uploads');
});

step('an archive that is not a zip is refused, with the server\'s message next to the form', async ({ page }) => {
  const bad = path.join(TMP, 'educa-2.0.zip');
  fs.writeFileSync(bad, 'this is not a zip archive\n');
  await page.getByLabel(/Distribution archive/).setInputFiles(bad);
  await page.getByRole('button', { name: 'Upload' }).click();
  await until(page, 'the refusal', () => document.querySelector('#upload-error').textContent !== '');
  const msg = await page.textContent('#upload-error');
  assert(/educa-2\.0\.zip: not a valid zip archive/.test(msg), `the form says: ${msg}`);
  // The same message the server gives.
  const res = await fetch(URL_ + '/api/v1/distributions', {
    method: 'POST', headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/zip' },
    body: fs.readFileSync(bad),
  });
  const body = await res.json();
  assert(msg.endsWith(body.error.message), `the page shows "${msg}", the server says "${body.error.message}"`);
  assert(await page.locator('#upload-error').evaluate((e) => e.getAttribute('role')) === 'alert', 'the error is not announced');
  await shot(page, 'distributions');
});

step('a cluster is created, and + target twice makes two targets that appear and run, live', async ({ page }) => {
  await view(page, 'Targets');
  await page.locator('#new-cluster > summary').click();
  await page.getByLabel('Name', { exact: true }).fill('educa');
  await page.locator('#cluster-dist').selectOption('educa@1.0.0');
  await page.getByRole('button', { name: 'Create cluster' }).click();
  await page.locator('#cluster-educa').waitFor({ timeout: UI_MS });
  const add = page.getByRole('button', { name: 'Add a target to cluster educa' });
  await add.click();
  await waitTargets(page, 'the first target', (rows) => rows.length === 1, UI_MS);
  await add.click();
  const rows = await waitTargets(page, 'two running, healthy targets on educa 1.0',
    (r) => r.length === 2 && r.every((t) => t.state === 'running' && t.health === 'healthy' && t.version === 'educa@1.0.0'));
  diag(`targets: ${rows.map((r) => r.id).join(', ')}`);
  const counts = await page.textContent('#clusters .counts');
  assert(/2 × educa@1\.0\.0/.test(counts), `the cluster's counts say: ${counts}`);
  assert(await page.evaluate(() => window.__noReload === true), 'the page was reloaded');
});

step('copy makes a third target in the same cluster, running the same version', async ({ page }) => {
  const before = await targetRows(page);
  await page.getByRole('button', { name: `Copy target ${before[0].id}` }).click();
  const rows = await waitTargets(page, 'the copy, running',
    (r) => r.length === 3 && r.every((t) => t.state === 'running' && t.version === 'educa@1.0.0'));
  const copy = rows.find((r) => !before.some((b) => b.id === r.id));
  const t = await apiCall('GET', `/api/v1/targets/${copy.id}`);
  assert(t.cluster === 'educa' && t.provider === 'local', `the copy: ${JSON.stringify(t)}`);
});

step('− asks first; cancelled it keeps the target, confirmed it drains and removes it', async ({ page }) => {
  const rows = await targetRows(page);
  const victim = rows[rows.length - 1].id;
  const minus = page.getByRole('button', { name: `Remove target ${victim}` });
  await minus.click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor({ timeout: UI_MS });
  assert((await dialog.textContent()).includes(victim), 'the confirmation does not name the target');
  await shot(page, 'targets-confirm');
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden', timeout: UI_MS });
  await page.waitForTimeout(500);
  assert((await targetRows(page)).some((r) => r.id === victim && r.state === 'running'), 'cancel removed the target');
  await minus.click();
  await dialog.getByRole('button', { name: 'Remove' }).click();
  await waitTargets(page, `${victim} gone from the list`, (r) => r.length === 2 && !r.some((t) => t.id === victim));
  const t = await apiCall('GET', `/api/v1/targets/${victim}`);
  assert(t.state === 'removed', `${victim} is ${t.state}`);
  await page.getByLabel('show removed').check();
  await waitTargets(page, 'the removed target shown on request', (r) => r.some((x) => x.id === victim && x.state === 'removed'), UI_MS);
  await page.getByLabel('show removed').uncheck();
});

step('add an existing machine shows the one command that installs and enrolls an agent', async ({ page }) => {
  await page.getByRole('button', { name: 'Add an existing machine to cluster educa' }).click();
  const code = page.locator('.enroll-box[data-cluster="educa"] code.command');
  await code.waitFor({ timeout: UI_MS });
  const command = await code.textContent();
  const re = new RegExp(`^curl -fsSL ${URL_.replace(/[.]/g, '\\.')}/install\\.sh \\| sh -s -- --token tne_[A-Za-z0-9_-]+$`);
  assert(re.test(command), `the command is: ${command}`);
  // The script it names is the server's, and the token is a real one.
  const script = await (await fetch(URL_ + '/install.sh')).text();
  assert(script.includes('--token TOKEN'), 'install.sh does not take --token');
  await shot(page, 'targets');
  await page.locator('.enroll-box[data-cluster="educa"]').getByRole('button', { name: 'Done' }).click();
});

step('a rollout to 1.1 is created with the form, approved, paused at its pause point, resumed, and succeeds, live', async ({ page }) => {
  await view(page, 'Rollouts');
  const form = page.locator('#rollout-form');
  await form.getByLabel('Cluster').selectOption('educa');
  await form.getByLabel('Target version').selectOption('educa@1.1.0');
  await form.getByLabel('Canary %').fill('0');
  await form.getByLabel('Batch size').fill('1');
  await form.getByLabel('Pause after batches').fill('0');
  await form.getByRole('button', { name: 'Create rollout' }).click();
  const card = page.locator('article.rollout');
  await card.waitFor({ timeout: UI_MS });
  const id = await card.getAttribute('data-rollout');
  assert(await card.getAttribute('data-state') === 'pending_approval', 'the new rollout is not pending approval');
  assert((await card.locator('li.batch').count()) === 2, 'not two batches of one');
  await shot(page, 'rollouts-pending');
  await page.getByRole('button', { name: `Approve rollout ${id}` }).click();
  await until(page, 'the pause after batch 0', (rid) => {
    const c = document.querySelector(`article.rollout[data-rollout="${rid}"]`);
    return c && c.dataset.state === 'paused' && c.querySelector('li.batch[data-batch="0"]').dataset.state === 'done';
  }, id, ROLLOUT_MS);
  const waiting = await card.locator('.waiting').textContent();
  assert(/Paused: approval starts batch 1/.test(waiting), `the paused rollout says: ${waiting}`);
  await shot(page, 'rollouts-paused');
  await page.getByRole('button', { name: `Resume rollout ${id}` }).click();
  // It leaves the active list when it ends: succeeded, in the finished list.
  await until(page, 'the rollout succeeded', (rid) => {
    const d = document.querySelector(`details[data-rollout="${rid}"]`);
    return d && d.querySelector('.badge').textContent === 'succeeded';
  }, id, ROLLOUT_MS);
  const r = await apiCall('GET', `/api/v1/rollouts/${id}`);
  assert(r.state === 'succeeded' && r.approvals.length === 2, `the rollout: ${r.state}, ${r.approvals.length} approvals`);
  await page.locator(`details[data-rollout="${id}"] > summary`).click();
  await shot(page, 'rollouts');
  await view(page, 'Targets');
  await waitTargets(page, 'both targets on educa 1.1', (rows) => rows.length === 2 && rows.every((t) => t.version === 'educa@1.1.0'), UI_MS);
  assert(await page.evaluate(() => window.__noReload === true), 'the page was reloaded');
});

step('the config view builds its form from the bundles\' models; saving makes a config rollout (a second one is refused, the first aborted)', async ({ page }) => {
  await view(page, 'Config');
  const form = page.locator('#config-form');
  const greeting = form.getByLabel('greeting');
  await greeting.waitFor({ timeout: UI_MS });
  assert(await greeting.getAttribute('placeholder') === 'hello from 1.1', 'greeting does not show the distribution\'s value');
  const workers = form.getByLabel('workers');
  assert(await workers.getAttribute('type') === 'number' && await workers.getAttribute('step') === '1', 'workers is not a whole-number field');
  assert(await workers.getAttribute('placeholder') === '4', 'workers does not show the bundle default');
  const help = await page.locator('#' + (await workers.getAttribute('aria-describedby'))).textContent();
  assert(help.includes('request threads'), `workers is described as: ${help}`);
  await greeting.fill('hello from the console');
  await workers.fill('8');
  await shot(page, 'config');
  await form.getByRole('button', { name: 'Save as a config rollout' }).click();
  await until(page, 'the config rollout', () => /Rollout r-/.test(document.querySelector('#config-status').textContent));
  const status = await page.textContent('#config-status');
  const id = /Rollout (r-[a-z0-9]+)/.exec(status)[1];
  const r = await apiCall('GET', `/api/v1/rollouts/${id}`);
  assert(r.state === 'pending_approval' && r.to === 'educa@1.1.0', `the config rollout: ${r.state} to ${r.to}`);
  const layer = r.batches[0].targets[0].to_release.config['org.educa.web'];
  assert(layer.greeting === 'hello from the console' && layer.workers === 8, `the new release's config: ${JSON.stringify(layer)}`);
  // A second one while the first is active: the server's refusal, in the form.
  await form.getByRole('button', { name: 'Save as a config rollout' }).click();
  await until(page, 'the refusal', () => document.querySelector('#config-error').textContent !== '');
  const refusal = await page.textContent('#config-error');
  assert(refusal.includes(id), `the refusal does not name the active rollout: ${refusal}`);
  await view(page, 'Rollouts');
  await page.getByRole('button', { name: `Abort rollout ${id}` }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Abort' }).click();
  await until(page, 'the rollout aborted', (rid) => {
    const d = document.querySelector(`details[data-rollout="${rid}"]`);
    return d && d.querySelector('.badge').textContent === 'aborted';
  }, id, ROLLOUT_MS);
});

step('the events view shows the audit log and new events without a reload; a reconnect resumes from Last-Event-ID', async ({ page, context, streamRequests }) => {
  await view(page, 'Events');
  await page.locator('#events tr[data-event]').first().waitFor({ timeout: UI_MS });
  const top = Number(await page.locator('#events tr[data-event]').first().getAttribute('data-event'));
  const all = await apiCall('GET', '/api/v1/events?limit=1000');
  assert(top === all.items[all.items.length - 1].id, `the newest event shown is ${top}`);
  await apiCall('POST', '/api/v1/clusters', { name: 'spare' });
  await until(page, 'the new event', () => {
    const row = document.querySelector('#events tr[data-event]');
    return row && row.dataset.action === 'cluster.create' && row.textContent.includes('spare');
  });
  await shot(page, 'events');
  // Offline: the stream breaks; an event happens meanwhile; back online,
  // the stream resumes after the last event it had, and nothing is lost.
  const lastSeen = await page.locator('#events tr[data-event]').first().getAttribute('data-event');
  const before = streamRequests.length;
  await context.setOffline(true);
  await until(page, 'the stream noticing', () => document.querySelector('#live').textContent === 'offline');
  await apiCall('DELETE', '/api/v1/clusters/spare');
  await context.setOffline(false);
  await until(page, 'the event made while offline', () => {
    const row = document.querySelector('#events tr[data-event]');
    return row && row.dataset.action === 'cluster.delete';
  }, null, 30000);
  const resumed = streamRequests.slice(before).map((h) => h['last-event-id']).filter(Boolean);
  assert(resumed.includes(lastSeen), `the reconnects sent Last-Event-ID ${JSON.stringify(resumed)}, not ${lastSeen}`);
  const ids = await page.$$eval('#events tr[data-event]', (rows) => rows.map((r) => Number(r.dataset.event)));
  assert(new Set(ids).size === ids.length, 'an event is shown twice');
  assert(await page.evaluate(() => window.__noReload === true), 'the page was reloaded');
});

step('the page loaded nothing from elsewhere and broke no Content-Security-Policy rule', async ({ problems }) => {
  const real = problems.filter((p) => !/Failed to load resource: net::ERR_INTERNET_DISCONNECTED/.test(p) &&
    !/the server responded with a status of (400|401|409)/.test(p));
  assert(!real.length, real.join('\n'));
});

step('"Forget token" signs out', async ({ page }) => {
  await page.getByRole('button', { name: 'Forget token' }).click();
  await page.getByRole('textbox', { name: 'API token' }).waitFor({ timeout: UI_MS });
  assert(await page.evaluate(() => sessionStorage.getItem('tender.token')) === null, 'the token is still kept');
});

step('with a viewer\'s token, a write is refused in plain words next to its button, and the message stays through live refreshes', async ({ page }) => {
  const viewer = await apiCall('POST', '/api/v1/tokens', { name: 'watcher', role: 'viewer' });
  await page.getByRole('textbox', { name: 'API token' }).fill(viewer.token);
  await page.getByRole('button', { name: 'Use this token' }).click();
  await page.locator('#nav').waitFor({ state: 'visible', timeout: UI_MS });
  await view(page, 'Targets');
  const add = page.getByRole('button', { name: 'Add a target to cluster educa' });
  await add.focus();
  await page.keyboard.press('Enter');
  const err = page.locator('#clusters [data-err="cluster:educa"]');
  await until(page, 'the refusal', () => document.querySelector('#clusters [data-err="cluster:educa"]').textContent !== '');
  const msg = await err.textContent();
  assert(/^Not allowed: .*viewer.*needs operator/.test(msg), `the refusal reads: ${msg}`);
  // The refused write is an audit event: the view refreshes, and keeps the
  // message and the keyboard focus.
  await page.waitForTimeout(2500);
  assert(await err.textContent() === msg, 'the message went with a refresh');
  const focused = await page.evaluate(() => document.activeElement.getAttribute('aria-label'));
  assert(focused === 'Add a target to cluster educa', `the focus is on ${focused}`);
  await shot(page, 'targets-refused');
  assert((await targetRows(page)).length === 2, 'a viewer added a target');
});

main().then((code) => process.exit(code), (e) => {
  console.log(`not ok ${count + 1} - the browser run`);
  diag(e.stack || e.message);
  console.log(`1..${count + 1}`);
  process.exit(1);
});
