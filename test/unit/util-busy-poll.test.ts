// Busy polling (busy_poll_us) and the container CPU limit that turns it off: a read starts the
// spin, it stops when the window has passed, it does not start while more clients than the limit
// are active, and the cgroup v1/v2 quota files are read as Kubernetes writes them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { busyPolling, clientRead, configureBusyPoll, touch } from '../../src/util/busy-poll.ts';
import { cgroupCpuLimit } from '../../src/util/cgroup-cpu.ts';

/** Waits until the spin has ended (at most `ms`). */
async function spinEnds(ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (busyPolling() && Date.now() < end) await sleep(1);
  return !busyPolling();
}

test('busy polling: a read spins the loop for the window, then the process may sleep again', async () => {
  // A long window, so that a loaded machine's late timer still lands inside it.
  configureBusyPoll(300_000, 2);
  try {
    touch();
    assert.equal(busyPolling(), true, 'a read starts the spin');
    await sleep(5);
    assert.equal(busyPolling(), true, 'still spinning within the 300 ms window');
    assert.equal(await spinEnds(3000), true, 'the spin ends once the window has passed');
  } finally {
    configureBusyPoll(0, 2);
  }
});

test('busy polling: off with a window of 0', () => {
  configureBusyPoll(0, 2);
  touch();
  assert.equal(busyPolling(), false);
});

test('busy polling: does not start while more clients than busy_poll_max_clients are active', async () => {
  // Limit one, four clients: even if a 20 ms period ends between the reads, one of the two
  // periods the gate looks at holds more than one client.
  configureBusyPoll(20_000, 1);
  try {
    assert.equal(await spinEnds(500), true);
    const clients = [{ pollPeriod: -1 }, { pollPeriod: -1 }, { pollPeriod: -1 }, { pollPeriod: -1 }];
    for (const c of clients) clientRead(c);
    touch();
    assert.equal(busyPolling(), false, 'four active clients, limit one: no spin');
    // Two periods later (40 ms or more) with one client left, it spins again.
    await sleep(50);
    clientRead(clients[0]!);
    touch();
    assert.equal(busyPolling(), true, 'one active client: spins');
  } finally {
    configureBusyPoll(0, 2);
    await spinEnds(3000);
  }
});

test('container CPU limit: cgroup v2 cpu.max and v1 CFS quota', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'pgrouter-cgroup-'));
  try {
    assert.equal(cgroupCpuLimit(root), undefined, 'no files: no limit');
    writeFileSync(path.join(root, 'cpu.max'), 'max 100000\n');
    assert.equal(cgroupCpuLimit(root), undefined, 'v2 "max": no limit');
    writeFileSync(path.join(root, 'cpu.max'), '50000 100000\n');
    assert.equal(cgroupCpuLimit(root), 0.5, 'v2 500m');
    rmSync(path.join(root, 'cpu.max'));
    mkdirSync(path.join(root, 'cpu'));
    writeFileSync(path.join(root, 'cpu', 'cpu.cfs_quota_us'), '-1\n');
    writeFileSync(path.join(root, 'cpu', 'cpu.cfs_period_us'), '100000\n');
    assert.equal(cgroupCpuLimit(root), undefined, 'v1 quota -1: no limit');
    writeFileSync(path.join(root, 'cpu', 'cpu.cfs_quota_us'), '250000\n');
    assert.equal(cgroupCpuLimit(root), 2.5, 'v1 2500m');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
