// The status page in headless Chromium (Debian's chromium, driven by playwright-core): it renders
// the nodes table, its charts update while a workload runs, it loads nothing from outside
// pgrouter, and it fits a phone's width. Screenshots go to .tmp/test-output/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { chromium, type Browser } from 'playwright-core';
import { getCluster } from '../harness/cluster.ts';
import { startProxy, type ProxyHandle } from '../harness/proxy.ts';
import { freePort } from '../../rig/system.ts';
import type { Cluster } from '../../rig/cluster.ts';

const CHROMIUM = '/usr/bin/chromium';
const OUT = fileURLToPath(new URL('../../.tmp/test-output/', import.meta.url));

let c: Cluster;
let p: ProxyHandle;
let port: number;
let browser: Browser;

before(async () => {
  c = await getCluster();
  const su = c.users.superuser.name;
  port = await freePort();
  p = await startProxy(c, {
    conf: {
      metrics_port: port,
      metrics_listen_addresses: '127.0.0.1',
      backend_weight0: 0,
      backend_weight1: 1,
      backend_application_name1: 'replica',
      health_check_period: 1,
      health_check_user: su,
      sr_check_period: 1,
      sr_check_user: su,
    },
  });
  await p.waitForLog(/metrics, probes and status page listening/);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // No sandbox as root; no background traffic towards a network this machine does not have.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  mkdirSync(OUT, { recursive: true });
});

after(async () => {
  await browser?.close();
  await p?.stop();
});

test('the status page shows the nodes and its charts follow a workload', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const requests: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`http://127.0.0.1:${port}/`);
  await page.waitForSelector('#nodes tbody tr[data-node="1"]', { timeout: 10_000 });
  const rows = await page.$$eval('#nodes tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
  assert.equal(rows.length, 2);
  assert.equal(rows[0]![1], `${c.primary.host}:${c.primary.port}`);
  assert.equal(rows[0]![2], 'primary');
  assert.equal(rows[1]![1], `${c.replica.host}:${c.replica.port}`);
  assert.equal(rows[1]![2], 'standby');
  assert.equal(rows[1]![3], 'up');

  // Reads for a few seconds (they all go to the replica): its queries/s series must rise.
  const cl = new pg.Client({ connectionString: p.url(c.users.superuser.name, c.users.superuser.password) });
  cl.on('error', () => undefined); // errors also reject the pending call; an idle client must not throw
  await cl.connect();
  const stopAt = Date.now() + 7000;
  let n = 0;
  const load = (async () => {
    while (Date.now() < stopAt) {
      await cl.query('SELECT 1');
      n++;
    }
  })();
  const seen = await page.waitForFunction(
    () => {
      const s = (window as unknown as { pgrouterStatus?: { samples(): number; qps(): Record<string, Array<number | null>> } }).pgrouterStatus;
      const replica = s?.qps()['1'] ?? [];
      return s && s.samples() >= 3 && replica.some((v) => v !== null && v > 0) ? { samples: s.samples(), max: Math.max(...replica.map((v) => v ?? 0)) } : false;
    },
    undefined,
    { timeout: 15_000, polling: 250 },
  );
  await load;
  await cl.end();
  const got = (await seen.jsonValue()) as { samples: number; max: number };
  console.log(`# status page: ${got.samples} samples, replica peaked at ${got.max.toFixed(0)} queries/s (${n} queries sent)`);
  assert.ok(got.max > 1);
  const samplesBefore = got.samples;
  await page.waitForFunction((k) => Number(document.body.dataset['samples']) > k, samplesBefore, { timeout: 10_000 });
  assert.equal(await page.locator('.uplot canvas').count(), 2, 'two uPlot charts');
  const legend = await page.locator('#qps-chart .u-legend').textContent();
  assert.match(legend ?? '', new RegExp(`node 1 \\(${c.replica.host}:${c.replica.port}\\)`));
  const qpsCell = await page.locator('#nodes tbody tr[data-node="1"] td.qps').textContent();
  assert.notEqual(qpsCell, '–');
  await page.screenshot({ path: path.join(OUT, 'status-page-desktop.png'), fullPage: true });
  console.log(`# screenshot: ${path.join(OUT, 'status-page-desktop.png')}`);

  assert.deepEqual(errors, [], 'no script errors');
  assert.ok(requests.length >= 5);
  for (const u of requests) assert.ok(u.startsWith(`http://127.0.0.1:${port}/`), `loaded from pgrouter only: ${u}`);
  await page.close();
});

test('the status page fits a phone', async () => {
  const page = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, deviceScaleFactor: 2 });
  await page.goto(`http://127.0.0.1:${port}/`);
  await page.waitForSelector('#nodes tbody tr[data-node="1"]', { timeout: 10_000 });
  await page.waitForSelector('#lag-chart .uplot canvas', { timeout: 10_000 });
  const { scroll, inner, chart } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    inner: window.innerWidth,
    chart: document.querySelector('#qps-chart .uplot')!.getBoundingClientRect().width,
  }));
  assert.ok(scroll <= inner + 1, `page ${scroll} px wide in a ${inner} px viewport (the table scrolls inside its box)`);
  assert.ok(chart <= inner && chart >= 260, `chart ${chart} px`);
  await page.screenshot({ path: path.join(OUT, 'status-page-phone.png'), fullPage: true });
  await page.close();
});
