// The pieces behind pgrouter's per-query metrics: BucketCounts (the hot-path histogram), its
// prom-client serialization, and the reason categories routing decisions are counted under.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { BucketCounts } from '../../src/util/bucket-counts.ts';
import { bucketHistogram } from '../../src/metrics/bucket-histogram.ts';
import { reasonCategory, REASON_CATEGORIES } from '../../src/router/reason-category.ts';

test('BucketCounts: a value on a bound counts in that bound (le), past the last in +Inf', () => {
  const b = new BucketCounts([0.001, 0.01, 0.1]);
  for (const v of [0.0005, 0.001, 0.002, 0.01, 0.05, 5]) b.observe(v);
  assert.deepEqual([...b.counts], [2, 2, 1, 1]);
  assert.deepEqual(b.cumulative(), [2, 4, 5, 6]);
  assert.equal(b.count, 6);
  assert.ok(Math.abs(b.sum - 5.0635) < 1e-12);
});

test('bucketHistogram: prom-client serializes the counts as a histogram, read at each scrape', async () => {
  const r = new Registry();
  const a = new BucketCounts([0.001, 0.01]);
  const series = [{ labels: { node: '1' }, counts: a }];
  bucketHistogram(r, 'x_seconds', 'help text', ['node'], () => series);
  a.observe(0.0002);
  a.observe(0.0002);
  a.observe(3);
  let text = await r.metrics();
  assert.match(text, /^# TYPE x_seconds histogram$/m);
  assert.match(text, /^# HELP x_seconds help text$/m);
  assert.match(text, /^x_seconds_bucket\{node="1",le="0.001"\} 2$/m);
  assert.match(text, /^x_seconds_bucket\{node="1",le="0.01"\} 2$/m);
  assert.match(text, /^x_seconds_bucket\{node="1",le="\+Inf"\} 3$/m);
  assert.match(text, /^x_seconds_sum\{node="1"\} 3.0004$/m);
  assert.match(text, /^x_seconds_count\{node="1"\} 3$/m);
  // Later observations show in the next scrape, and merged registries serve it too.
  a.observe(0.005);
  text = await Registry.merge([r, new Registry()]).metrics();
  assert.match(text, /^x_seconds_bucket\{node="1",le="0.01"\} 3$/m);
  assert.match(text, /^x_seconds_count\{node="1"\} 4$/m);
});

test('routing reasons reduce to a bounded set of categories', () => {
  const cases: Array<[string, string]> = [
    ['load_balance_mode is off', 'load_balance_off'],
    ['leading comment (allow_sql_comments is off)', 'sql_comment'],
    ['transaction is READ WRITE or SERIALIZABLE', 'read_write_transaction'],
    ['in writing transaction', 'writing_transaction'],
    ['write function nextval', 'write_function'],
    ['write function public.f', 'write_function'],
    ['system catalog pg_class', 'system_catalog'],
    ['temporary table t', 'temp_table'],
    ['primary_routing_query_pattern_list', 'query_pattern'],
    ['read', 'load_balance'],
    ['read (the load-balance node is the primary)', 'load_balance'],
    ['read (node 2 is not available)', 'node_unavailable'],
    ['read in a transaction the replica did not begin', 'transaction_began_on_primary'],
    ['replica node 1 lag 1200 bytes over threshold', 'replica_lag'],
    ['replica node 3 lag 15 ms over threshold', 'replica_lag'],
    ['something new', 'other'],
  ];
  for (const [reason, category] of cases) {
    assert.equal(reasonCategory(reason), category, reason);
    assert.ok(REASON_CATEGORIES.includes(category), `${category} is documented`);
  }
  // Many distinct reasons (names, figures) never grow the memo without bound.
  for (let i = 0; i < 5000; i++) assert.equal(reasonCategory(`replica node 1 lag ${i} bytes over threshold`), 'replica_lag');
});
