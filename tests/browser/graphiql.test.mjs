// Headless Chromium against a running `printgate demo`, with the network
// blocked for everything but printgate itself: the GraphiQL page must
// render, run its default query with the demo token, and show a live
// subscription. Saves docs/graphiql.png for the README.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = process.env.PRINTGATE_BIN || path.join(root, 'target/debug/printgate');
const port = 18400 + Math.floor(Math.random() * 500);
let demo;
let pageUrl;
let base;
let browser;

before(async () => {
  demo = spawn(bin, ['demo', '--bind', `127.0.0.1:${port}`, '--printers', '3', '--interval', '500ms'], {
    env: { ...process.env, RUST_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  pageUrl = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`demo did not start: ${out}`)), 60000);
    demo.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/(http:\/\/\S+\/graphql#token=\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
  base = new URL(pageUrl).origin;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  demo?.kill('SIGTERM');
});

/** A fresh page whose requests anywhere but printgate are refused. */
async function isolatedPage() {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const blocked = [];
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(base) || url.startsWith(base.replace('http', 'ws'))) return route.continue();
    blocked.push(url);
    return route.abort();
  });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  return { context, page, blocked, errors };
}

async function run(page) {
  await page.locator('.graphiql-execute-button').click();
}

async function resultText(page) {
  return page.locator('.graphiql-response .CodeMirror').innerText();
}

test('the GraphiQL page renders offline and runs the default query with the demo token', async () => {
  const { context, page, blocked, errors } = await isolatedPage();
  const resp = await page.goto(pageUrl);
  assert.equal(resp.status(), 200);
  assert.match(resp.headers()['content-security-policy'], /script-src 'self'/);
  await page.locator('.graphiql-container').waitFor({ timeout: 30000 });
  await run(page);
  await page.waitForFunction(
    () => (document.querySelector('.graphiql-response .CodeMirror')?.innerText || '').includes('"printers"'),
    null,
    { timeout: 30000 },
  );
  const text = await resultText(page);
  assert.match(text, /Prusa MK4/);
  assert.doesNotMatch(text, /UNAUTHENTICATED/);
  await page.screenshot({ path: path.join(root, 'docs/graphiql.png') });
  assert.deepEqual(blocked, [], 'the page asked for nothing outside printgate');
  assert.deepEqual(errors.filter((e) => !e.includes('favicon')), []);
  await context.close();
});

test('a subscription in GraphiQL shows a simulated printer progressing', async () => {
  const { context, page, blocked } = await isolatedPage();
  const query = 'subscription Live { printerUpdated { name status { progress { completion } } } }';
  await page.goto(`${pageUrl}&query=${encodeURIComponent(query)}`);
  await page.locator('.graphiql-container').waitFor({ timeout: 30000 });
  await run(page);
  const completion = async () => {
    await page.waitForFunction(
      () => /"completion": \d/.test(document.querySelector('.graphiql-response .CodeMirror')?.innerText || ''),
      null,
      { timeout: 30000 },
    );
    return resultText(page);
  };
  const first = await completion();
  let later = first;
  for (let i = 0; i < 40 && later === first; i++) {
    await page.waitForTimeout(250);
    later = await resultText(page);
  }
  assert.notEqual(later, first, 'the subscription result changes as the printer prints');
  assert.deepEqual(blocked, []);
  await context.close();
});

test('GraphiQL shows the demo printer failing: alerted, then paused by printgate', async () => {
  const { context, page, blocked } = await isolatedPage();
  const query = 'subscription Failures { printerEvent(types: ["FAILURE_ALERTED"]) { type class title text printerId } }';
  await page.goto(`${pageUrl}&query=${encodeURIComponent(query)}`);
  await page.locator('.graphiql-container').waitFor({ timeout: 30000 });
  await run(page);
  // The alert (a warning) comes first, then the pause (an error).
  await page.waitForFunction(
    () => /"class": "ERROR"/.test(document.querySelector('.graphiql-response .CodeMirror')?.innerText || ''),
    null,
    { timeout: 90000 },
  );
  const text = await resultText(page);
  assert.match(text, /"type": "FAILURE_ALERTED"/);
  assert.match(text, /was paused/);
  const token = new URL(pageUrl).hash.replace('#token=', '');
  const printerId = text.match(/"printerId": "(\d+)"/)[1];
  let state = '';
  for (let i = 0; i < 40 && state !== 'Paused'; i++) {
    const r = await fetch(`${base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: 'query($id: ID!) { printer(id: $id) { status { state { text } } } }', variables: { id: printerId } }),
    });
    state = (await r.json()).data.printer.status?.state?.text || '';
    if (state !== 'Paused') await new Promise((res) => setTimeout(res, 250));
  }
  assert.equal(state, 'Paused', 'the printer obeyed the automatic pause');
  assert.deepEqual(blocked, []);
  await context.close();
});
