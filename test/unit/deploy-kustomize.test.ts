// deploy/kubernetes: the base's files and the base and each operator overlay rendered with
// `kubectl kustomize`, validated offline (kubernetes-models schemas, field allow-list) and
// cross-checked against pgrouter (ports, probe paths, /config, env names, the loaded config).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { ROOT, checkKnownFields, checkPgrouterSet, dockerfileUid, kustomize, parseManifests, validateSchema } from './deploy-check.ts';
import type { Doc, Expectation } from './deploy-check.ts';

const KDIR = path.join(ROOT, 'deploy', 'kubernetes');
const UID = dockerfileUid(readFileSync(path.join(ROOT, 'deploy', 'Dockerfile'), 'utf8'));

const COMMON = {
  name: 'pgrouter',
  replicas: 2,
  metricsService: true,
  serviceMonitor: true,
  podDisruptionBudget: true,
  uid: UID,
} as const;

const BASE: Expectation = {
  ...COMMON,
  backends: ['postgres-primary', 'postgres-replica'],
  users: [{ prefix: 'POSTGRES', secret: 'pgrouter-postgres', usernameKey: 'username', passwordKey: 'password' }],
  ssl: false,
  exampleSecret: true,
};

/** Each operator's Services and the Secret of its application user. */
const OVERLAYS: Record<string, Expectation> = {
  'crunchy-pgo': {
    ...COMMON,
    backends: ['hippo-primary', 'hippo-replicas'],
    users: [{ prefix: 'POSTGRES', secret: 'hippo-pguser-hippo', usernameKey: 'user', passwordKey: 'password' }],
    ssl: true,
    exampleSecret: false,
  },
  zalando: {
    ...COMMON,
    backends: ['acid-minimal-cluster', 'acid-minimal-cluster-repl'],
    users: [
      {
        prefix: 'POSTGRES',
        secret: 'zalando.acid-minimal-cluster.credentials.postgresql.acid.zalan.do',
        usernameKey: 'username',
        passwordKey: 'password',
      },
    ],
    ssl: true,
    exampleSecret: false,
  },
  cloudnativepg: {
    ...COMMON,
    backends: ['cluster-example-rw', 'cluster-example-ro'],
    users: [{ prefix: 'POSTGRES', secret: 'cluster-example-app', usernameKey: 'username', passwordKey: 'password' }],
    ssl: false,
    exampleSecret: false,
  },
};

function kustomization(dir: string): Record<string, unknown> {
  return YAML.parse(readFileSync(path.join(dir, 'kustomization.yaml'), 'utf8')) as Record<string, unknown>;
}

function baseDocs(): Doc[] {
  const dir = path.join(KDIR, 'base');
  return (kustomization(dir)['resources'] as string[]).flatMap((f) => parseManifests(readFileSync(path.join(dir, f), 'utf8'), `base/${f}`));
}

test('base: every file is listed in kustomization.yaml, and every listed file exists', () => {
  const dir = path.join(KDIR, 'base');
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort();
  assert.deepEqual([...(kustomization(dir)['resources'] as string[])].sort(), files);
});

test('base: each file validates on its own (schemas, allowed fields)', () => {
  const docs = baseDocs();
  assert.deepEqual(docs.map((d) => d.obj.kind).sort(), ['ConfigMap', 'Deployment', 'PodDisruptionBudget', 'Secret', 'Service', 'Service', 'ServiceMonitor']);
  for (const d of docs) {
    validateSchema(d);
    checkKnownFields(d);
  }
});

test('base: rendered by kubectl kustomize, the same objects, and all cross-checks pass', () => {
  const rendered = parseManifests(kustomize(path.join(KDIR, 'base')), 'kustomize base');
  const key = (d: Doc): string => `${d.obj.kind}/${d.obj.metadata.name}`;
  assert.deepEqual(rendered.map(key).sort(), baseDocs().map(key).sort());
  checkPgrouterSet(rendered, BASE);
});

for (const [overlay, ex] of Object.entries(OVERLAYS)) {
  test(`overlay ${overlay}: renders, validates, and points at the operator's Services and Secret`, () => {
    const dir = path.join(KDIR, 'overlays', overlay);
    const k = kustomization(dir);
    // Only what kustomize v2.0 (Debian's kubectl 1.20) and v5 both understand.
    assert.deepEqual(Object.keys(k).sort(), ['apiVersion', 'bases', 'kind', 'patchesStrategicMerge']);
    for (const f of k['patchesStrategicMerge'] as string[]) YAML.parse(readFileSync(path.join(dir, f), 'utf8'));
    const config = checkPgrouterSet(parseManifests(kustomize(dir), `kustomize ${overlay}`), ex);
    assert.equal(config.settings.load_balance_mode, true);
    assert.equal(config.settings.connection_cache, true);
    assert.equal(config.settings.failover_on_backend_error, false);
  });
}

test("base: pgrouter's own check-config accepts the ConfigMap's pgpool.conf with the Deployment's environment", () => {
  const docs = baseDocs();
  const cm = docs.find((d) => d.obj.kind === 'ConfigMap')?.obj as unknown as { data: Record<string, string> };
  const dep = docs.find((d) => d.obj.kind === 'Deployment')?.obj as unknown as {
    spec: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } };
  };
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '' };
  for (const e of dep.spec.template.spec.containers[0]?.env ?? []) env[e.name] = e.value ?? 'from-a-secret';
  const dir = mkdtempSync(path.join(tmpdir(), 'pgrouter-deploy-'));
  try {
    writeFileSync(path.join(dir, 'pgpool.conf'), cm.data['pgpool.conf'] ?? '');
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'pgrouter.mjs'), 'check-config', '-f', path.join(dir, 'pgpool.conf')], { env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^configuration OK: .*pgpool\.conf, 2 backend\(s\)$/m);
    assert.doesNotMatch(r.stdout, /warning/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the checks catch mistakes: a misspelled field, a wrong type, an unknown env name, a wrong probe path', () => {
  const fresh = (): Doc[] => parseManifests(kustomize(path.join(KDIR, 'base')), 'kustomize base');
  const deployment = (docs: Doc[]) =>
    docs.find((d) => d.obj.kind === 'Deployment')?.obj as unknown as {
      spec: { template: { spec: { containers: Record<string, unknown>[] } } };
    };
  const container = (docs: Doc[]) => deployment(docs).spec.template.spec.containers[0] as Record<string, unknown>;

  let docs = fresh();
  const c1 = container(docs);
  c1['readinesProbe'] = c1['readinessProbe'];
  delete c1['readinessProbe'];
  assert.throws(() => checkPgrouterSet(docs, BASE), /readinesProbe: unknown or unexpected field/);

  docs = fresh();
  (container(docs)['ports'] as { containerPort: unknown }[])[0]!.containerPort = '9999';
  assert.throws(() => checkPgrouterSet(docs, BASE), /schema validation failed.*containerPort must be integer/s);

  docs = fresh();
  (container(docs)['env'] as { name: string }[]).push({ name: 'PGPOOL_PARAMS_BACKEND_HOSTNAMES0' });
  assert.throws(() => checkPgrouterSet(docs, BASE), /PGPOOL_PARAMS_BACKEND_HOSTNAMES0: not a pgrouter parameter/);

  docs = fresh();
  (container(docs)['env'] as { name: string; value: string }[]).push({ name: 'DATABASE_URL', value: 'x' });
  assert.throws(() => checkPgrouterSet(docs, BASE), /DATABASE_URL: neither PGPOOL_PARAMS_<NAME> nor/);

  docs = fresh();
  ((container(docs)['livenessProbe'] as { httpGet: { path: string } }).httpGet).path = '/health';
  assert.throws(() => checkPgrouterSet(docs, BASE), /liveness probe path/);

  docs = fresh();
  deployment(docs).spec.template.spec['terminationGracePeriodSeconds' as never] = 30 as never;
  assert.throws(() => checkPgrouterSet(docs, BASE), /terminationGracePeriodSeconds 30 >= preStop 5 \+ drain_timeout 30/);
});
