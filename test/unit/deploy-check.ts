// Offline checks shared by the deploy-*.test.ts files: YAML parsing, kubernetes-models schema
// validation per apiVersion/kind, an allow-list of the fields our manifests may use (the schemas
// accept misspelled fields), and cross-checks against what pgrouter reads and serves.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import type { IService } from 'kubernetes-models/v1/Service';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IContainer } from 'kubernetes-models/v1/Container';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/load.ts';
import { resolveName } from '../../src/config/settings.ts';
import { scanEnvUsers } from '../../src/auth/env-users.ts';
import { HbaFile } from '../../src/client/hba.ts';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** One Kubernetes object from a manifest, with where it came from. */
export interface K8sObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly labels?: Record<string, string>; readonly annotations?: Record<string, string> };
  readonly [field: string]: unknown;
}

/** A parsed object plus its source, for messages. */
export interface Doc {
  readonly obj: K8sObject;
  readonly source: string;
}

/** Every non-empty YAML document of `text`; YAML errors and warnings fail. */
export function parseManifests(text: string, source: string): Doc[] {
  const docs: Doc[] = [];
  for (const d of YAML.parseAllDocuments(text)) {
    if (d.errors.length > 0) throw new Error(`${source}: ${d.errors.map((e) => e.message).join('; ')}`);
    if (d.warnings.length > 0) throw new Error(`${source}: ${d.warnings.map((e) => e.message).join('; ')}`);
    const obj = d.toJS() as unknown;
    if (obj === null || obj === undefined) continue;
    // kustomize v2.0 (Debian's kubectl 1.20) renders an object removed by `$patch: delete` as {}.
    if (typeof obj === 'object' && !Array.isArray(obj) && Object.keys(obj).length === 0) continue;
    assert.ok(typeof obj === 'object' && !Array.isArray(obj), `${source}: a document is not a mapping`);
    const o = obj as K8sObject;
    assert.equal(typeof o.apiVersion, 'string', `${source}: apiVersion missing`);
    assert.equal(typeof o.kind, 'string', `${source}: kind missing`);
    assert.equal(typeof o.metadata?.name, 'string', `${source}: metadata.name missing`);
    docs.push({ obj: o, source: `${source} (${o.kind} ${o.metadata.name})` });
  }
  return docs;
}

// ---- schema validation ----------------------------------------------------------------------

type ModelClass = new (data: never) => { validate(): void };
const MODELS: Record<string, ModelClass> = {
  'v1/ConfigMap': ConfigMap as unknown as ModelClass,
  'v1/Secret': Secret as unknown as ModelClass,
  'v1/Service': Service as unknown as ModelClass,
  'apps/v1/Deployment': Deployment as unknown as ModelClass,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget as unknown as ModelClass,
};

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DURATION = /^(0|(\d+(ms|s|m|h))+)$/;

/** Validates one object against its schema (ServiceMonitor: its required fields, by hand). */
export function validateSchema(doc: Doc): void {
  const { obj, source } = doc;
  assert.ok(obj.metadata.name.length <= 253 && DNS1123_SUBDOMAIN.test(obj.metadata.name), `${source}: metadata.name is not a DNS-1123 subdomain`);
  if (obj.kind === 'Service') assert.ok(obj.metadata.name.length <= 63 && DNS1035_LABEL.test(obj.metadata.name), `${source}: a Service name must be a DNS-1035 label`);
  if (obj.apiVersion === 'monitoring.coreos.com/v1' && obj.kind === 'ServiceMonitor') {
    validateServiceMonitor(doc);
    return;
  }
  const Model = MODELS[`${obj.apiVersion}/${obj.kind}`];
  assert.ok(Model, `${source}: no schema for ${obj.apiVersion} ${obj.kind}: add it to the test's MODELS table`);
  try {
    new Model(structuredClone(obj) as never).validate();
  } catch (e) {
    assert.fail(`${source}: schema validation failed: ${(e as Error).message}`);
  }
}

/** The ServiceMonitor CRD (prometheus-operator) has no schema in kubernetes-models. */
function validateServiceMonitor({ obj, source }: Doc): void {
  const spec = obj['spec'] as Record<string, unknown> | undefined;
  assert.ok(spec && typeof spec === 'object', `${source}: spec is required`);
  const selector = spec['selector'] as Record<string, unknown> | undefined;
  assert.ok(selector && typeof selector === 'object', `${source}: spec.selector is required`);
  const ml = selector['matchLabels'];
  assert.ok(ml && typeof ml === 'object' && Object.values(ml).every((v) => typeof v === 'string'), `${source}: spec.selector.matchLabels must map strings to strings`);
  const eps = spec['endpoints'];
  assert.ok(Array.isArray(eps) && eps.length > 0, `${source}: spec.endpoints must list at least one endpoint`);
  for (const ep of eps as Record<string, unknown>[]) {
    assert.ok(typeof ep['port'] === 'string' && DNS1035_LABEL.test(ep['port']), `${source}: endpoint.port must be a Service port name`);
    assert.ok(typeof ep['path'] === 'string' && ep['path'].startsWith('/'), `${source}: endpoint.path must be an absolute path`);
    if (ep['interval'] !== undefined) assert.ok(typeof ep['interval'] === 'string' && DURATION.test(ep['interval']), `${source}: endpoint.interval must be a duration like 30s`);
  }
}

// ---- unknown fields ---------------------------------------------------------------------------

/** 'leaf': a scalar; 'map': string keys to scalars; 'any': not checked; [s]: a list of s; {...}: those fields only. */
type Shape = 'leaf' | 'map' | 'any' | readonly [Shape] | { readonly [field: string]: Shape };

const META: Shape = { name: 'leaf', labels: 'map', annotations: 'map' };
const SELECTOR: Shape = { matchLabels: 'map' };
const PROBE: Shape = {
  httpGet: { path: 'leaf', port: 'leaf' },
  initialDelaySeconds: 'leaf',
  periodSeconds: 'leaf',
  timeoutSeconds: 'leaf',
  failureThreshold: 'leaf',
};
const CONTAINER: Shape = {
  name: 'leaf',
  image: 'leaf',
  imagePullPolicy: 'leaf',
  ports: [{ name: 'leaf', containerPort: 'leaf', protocol: 'leaf' }],
  env: [{ name: 'leaf', value: 'leaf', valueFrom: { secretKeyRef: { name: 'leaf', key: 'leaf' } } }],
  readinessProbe: PROBE,
  livenessProbe: PROBE,
  lifecycle: { preStop: { exec: { command: ['leaf'] } } },
  resources: { requests: 'map', limits: 'map' },
  securityContext: { allowPrivilegeEscalation: 'leaf', readOnlyRootFilesystem: 'leaf', capabilities: { drop: ['leaf'] } },
  volumeMounts: [{ name: 'leaf', mountPath: 'leaf', readOnly: 'leaf' }],
};
const POD_SPEC: Shape = {
  terminationGracePeriodSeconds: 'leaf',
  enableServiceLinks: 'leaf',
  securityContext: { runAsNonRoot: 'leaf', runAsUser: 'leaf', runAsGroup: 'leaf', fsGroup: 'leaf', seccompProfile: { type: 'leaf' } },
  topologySpreadConstraints: [{ maxSkew: 'leaf', topologyKey: 'leaf', whenUnsatisfiable: 'leaf', labelSelector: SELECTOR }],
  nodeSelector: 'map',
  tolerations: [{ key: 'leaf', operator: 'leaf', value: 'leaf', effect: 'leaf', tolerationSeconds: 'leaf' }],
  // Given whole by the chart's user (toYaml); its schema is still checked by kubernetes-models.
  affinity: 'any',
  containers: [CONTAINER],
  volumes: [
    {
      name: 'leaf',
      projected: {
        defaultMode: 'leaf',
        sources: [
          {
            configMap: { name: 'leaf' },
            secret: { name: 'leaf', optional: 'leaf', items: [{ key: 'leaf', path: 'leaf' }] },
          },
        ],
      },
      emptyDir: { sizeLimit: 'leaf' },
    },
  ],
};
/** The fields each kind of ours may use; anything else (a misspelling, an unplanned field) fails. */
const ALLOWED: Record<string, Shape> = {
  ConfigMap: { apiVersion: 'leaf', kind: 'leaf', metadata: META, data: 'map' },
  Secret: { apiVersion: 'leaf', kind: 'leaf', metadata: META, type: 'leaf', stringData: 'map' },
  Service: {
    apiVersion: 'leaf',
    kind: 'leaf',
    metadata: META,
    spec: { type: 'leaf', selector: 'map', ports: [{ name: 'leaf', port: 'leaf', targetPort: 'leaf', protocol: 'leaf' }] },
  },
  ServiceMonitor: {
    apiVersion: 'leaf',
    kind: 'leaf',
    metadata: META,
    spec: { selector: SELECTOR, endpoints: [{ port: 'leaf', path: 'leaf', interval: 'leaf' }] },
  },
  PodDisruptionBudget: { apiVersion: 'leaf', kind: 'leaf', metadata: META, spec: { minAvailable: 'leaf', selector: SELECTOR } },
  Deployment: {
    apiVersion: 'leaf',
    kind: 'leaf',
    metadata: META,
    spec: {
      replicas: 'leaf',
      revisionHistoryLimit: 'leaf',
      strategy: { type: 'leaf', rollingUpdate: { maxUnavailable: 'leaf', maxSurge: 'leaf' } },
      selector: SELECTOR,
      template: { metadata: { labels: 'map', annotations: 'map' }, spec: POD_SPEC },
    },
  },
};

function isScalar(v: unknown): boolean {
  return v === null || ['string', 'number', 'boolean'].includes(typeof v);
}

function checkShape(v: unknown, shape: Shape, at: string, problems: string[]): void {
  if (shape === 'any') return;
  if (shape === 'leaf') {
    if (!isScalar(v)) problems.push(`${at}: expected a scalar`);
    return;
  }
  if (shape === 'map') {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) problems.push(`${at}: expected a mapping`);
    else for (const [k, x] of Object.entries(v)) if (!isScalar(x)) problems.push(`${at}.${k}: expected a scalar`);
    return;
  }
  if (Array.isArray(shape)) {
    if (!Array.isArray(v)) {
      problems.push(`${at}: expected a list`);
      return;
    }
    v.forEach((x, i) => checkShape(x, shape[0] as Shape, `${at}[${i}]`, problems));
    return;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    problems.push(`${at}: expected a mapping`);
    return;
  }
  const fields = shape as { readonly [field: string]: Shape };
  for (const [k, x] of Object.entries(v)) {
    const sub = fields[k];
    if (sub === undefined) problems.push(`${at}.${k}: unknown or unexpected field (allowed: ${Object.keys(fields).join(', ')})`);
    else checkShape(x, sub, `${at}.${k}`, problems);
  }
}

/** Fails on any field outside the allow-list of the object's kind. */
export function checkKnownFields({ obj, source }: Doc): void {
  const shape = ALLOWED[obj.kind];
  assert.ok(shape, `${source}: no field allow-list for kind ${obj.kind}`);
  const problems: string[] = [];
  checkShape(obj, shape, obj.kind, problems);
  assert.deepEqual(problems, [], `${source}: fields outside the allow-list`);
}

// ---- cross-checks against pgrouter --------------------------------------------------------------

/** What a rendered set of manifests should contain. */
export interface Expectation {
  /** Name of the Deployment and the client Service. */
  readonly name: string;
  readonly replicas: number;
  /** backend_hostnameN by N. */
  readonly backends: readonly string[];
  /** The Secret (name, username key, password key) each user pair comes from. */
  readonly users: readonly { readonly prefix: string; readonly secret: string; readonly usernameKey: string; readonly passwordKey: string }[];
  readonly ssl: boolean;
  readonly metricsService: boolean;
  readonly serviceMonitor: boolean;
  readonly podDisruptionBudget: boolean;
  /** Whether the example Secret (pgrouter-postgres) is part of the set. */
  readonly exampleSecret: boolean;
  /** The UID the image runs as (the Dockerfile's USER). */
  readonly uid: number;
}

/** pgrouter's client port and the port of /metrics, /healthz, /readyz: fixed by the task. */
export const CLIENT_PORT = 9999;
export const METRICS_PORT = 9719;
export const CONFIG_DIR = '/config';

function byKind(docs: readonly Doc[], kind: string): Doc[] {
  return docs.filter((d) => d.obj.kind === kind);
}

function subset(sel: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (!sel || Object.keys(sel).length === 0) return false;
  return Object.entries(sel).every(([k, v]) => labels?.[k] === v);
}

function containerPort(c: IContainer, port: unknown): number | undefined {
  if (typeof port === 'number') return c.ports?.some((p) => p.containerPort === port) ? port : undefined;
  return c.ports?.find((p) => p.name === port)?.containerPort;
}

/** Every check of one rendered set; returns the configuration pgrouter would load from it. */
export function checkPgrouterSet(docs: readonly Doc[], ex: Expectation): Config {
  for (const d of docs) {
    validateSchema(d);
    checkKnownFields(d);
  }
  const names = docs.map((d) => `${d.obj.kind}/${d.obj.metadata.name}`);
  assert.equal(new Set(names).size, names.length, `duplicate objects: ${names.join(', ')}`);

  // Deployment and its container.
  const deps = byKind(docs, 'Deployment');
  assert.equal(deps.length, 1, 'exactly one Deployment');
  const dep = (deps[0] as Doc).obj as unknown as IDeployment;
  assert.equal(dep.metadata?.name, ex.name);
  const spec = dep.spec;
  assert.ok(spec);
  assert.equal(spec.replicas, ex.replicas, 'replicas');
  const podLabels = spec.template.metadata?.labels;
  assert.ok(subset(spec.selector.matchLabels, podLabels), 'the Deployment selector matches its pod labels');
  const pod = spec.template.spec;
  assert.ok(pod);
  assert.equal(pod.containers.length, 1);
  const c = pod.containers[0] as IContainer;
  assert.equal(containerPort(c, CLIENT_PORT), CLIENT_PORT, 'container port 9999');
  assert.equal(containerPort(c, METRICS_PORT), METRICS_PORT, 'container port 9719');
  assert.equal(c.readinessProbe?.httpGet?.path, '/readyz', 'readiness probe path');
  assert.equal(c.livenessProbe?.httpGet?.path, '/healthz', 'liveness probe path');
  assert.equal(containerPort(c, c.readinessProbe?.httpGet?.port), METRICS_PORT, 'readiness probe port is 9719');
  assert.equal(containerPort(c, c.livenessProbe?.httpGet?.port), METRICS_PORT, 'liveness probe port is 9719');

  // Security: non-root, the image's UID, read-only root with a writable /tmp.
  assert.equal(pod.securityContext?.runAsNonRoot, true, 'runAsNonRoot');
  assert.equal(pod.securityContext?.runAsUser, ex.uid, "runAsUser is the image's USER");
  assert.equal(c.securityContext?.readOnlyRootFilesystem, true, 'readOnlyRootFilesystem');
  assert.equal(c.securityContext?.allowPrivilegeEscalation, false, 'allowPrivilegeEscalation');
  const tmpMount = c.volumeMounts?.find((m) => m.mountPath === '/tmp');
  assert.ok(tmpMount && pod.volumes?.find((v) => v.name === tmpMount.name)?.emptyDir, '/tmp is an emptyDir (Unix socket)');
  assert.ok(c.resources?.requests?.['cpu'] !== undefined && c.resources.requests['memory'] !== undefined, 'cpu and memory requests');
  assert.ok(c.resources.limits?.['memory'] !== undefined, 'a memory limit');

  // /config: a projected volume with the ConfigMap's pgpool.conf (and TLS files from a Secret).
  const cfgMount = c.volumeMounts?.find((m) => m.mountPath === CONFIG_DIR);
  assert.ok(cfgMount, 'a volume is mounted at /config');
  assert.equal(cfgMount.readOnly, true, '/config is mounted read-only');
  const cfgVol = pod.volumes?.find((v) => v.name === cfgMount.name);
  assert.ok(cfgVol?.projected, '/config is a projected volume');
  const provided = new Map<string, string>(); // path under /config → content ('' when unknown)
  let confText: string | undefined;
  for (const src of cfgVol.projected.sources ?? []) {
    if (src.configMap) {
      const cm = byKind(docs, 'ConfigMap').find((d) => d.obj.metadata.name === src.configMap?.name);
      assert.ok(cm, `the ConfigMap ${src.configMap.name} mounted at /config is part of the set`);
      const data = (cm.obj['data'] ?? {}) as Record<string, string>;
      for (const [k, v] of Object.entries(data)) provided.set(`${CONFIG_DIR}/${k}`, v);
      confText = data['pgpool.conf'];
    }
    if (src.secret) {
      assert.ok(src.secret.items && src.secret.items.length > 0, 'a Secret projected into /config lists its items');
      for (const it of src.secret.items) provided.set(`${CONFIG_DIR}/${it.path}`, '');
    }
  }
  assert.ok(confText !== undefined, '/config/pgpool.conf comes from the ConfigMap');

  // Environment: PGPOOL_PARAMS_<known parameter> or <X>_USERNAME/_PASSWORD, nothing else.
  const env: Record<string, string> = {};
  const secretRefs: { env: string; name: string; key: string }[] = [];
  for (const e of c.env ?? []) {
    assert.ok(!(e.name in env), `env ${e.name} is set twice`);
    if (e.name.startsWith('PGPOOL_PARAMS_')) {
      const r = resolveName(e.name.slice('PGPOOL_PARAMS_'.length).toLowerCase());
      assert.ok(r.def, `env ${e.name}: not a pgrouter parameter`);
      assert.ok(r.alias === undefined, `env ${e.name}: an old name; use ${r.def.name}`);
    } else {
      assert.match(e.name, /^.+_(USERNAME|PASSWORD)$/, `env ${e.name}: neither PGPOOL_PARAMS_<NAME> nor <X>_USERNAME/<X>_PASSWORD`);
    }
    if (e.value !== undefined) env[e.name] = e.value;
    else {
      const ref = e.valueFrom?.secretKeyRef;
      assert.ok(ref?.name && ref.key, `env ${e.name}: a value or a secretKeyRef with name and key`);
      secretRefs.push({ env: e.name, name: ref.name, key: ref.key });
      // What the Secret would hold; the example Secret's own value when it is in the set.
      const sec = byKind(docs, 'Secret').find((d) => d.obj.metadata.name === ref.name);
      const data = (sec?.obj['stringData'] ?? {}) as Record<string, string>;
      if (sec) assert.ok(ref.key in data, `Secret ${ref.name} has the key ${ref.key} that ${e.name} reads`);
      env[e.name] = data[ref.key] ?? `value-of-${ref.name}-${ref.key}`;
    }
  }
  const scan = scanEnvUsers(env);
  assert.deepEqual(scan.notes, [], 'every _USERNAME has its _PASSWORD');
  assert.equal(scan.users.size, ex.users.length, 'users from the environment');
  for (const u of ex.users) {
    assert.deepEqual(
      secretRefs.filter((r) => r.env === `${u.prefix}_USERNAME` || r.env === `${u.prefix}_PASSWORD`).map((r) => [r.env, r.name, r.key]),
      [
        [`${u.prefix}_USERNAME`, u.secret, u.usernameKey],
        [`${u.prefix}_PASSWORD`, u.secret, u.passwordKey],
      ],
      `user ${u.prefix}: the operator's Secret and keys`,
    );
  }
  const secrets = byKind(docs, 'Secret').map((d) => d.obj.metadata.name);
  assert.equal(secrets.includes('pgrouter-postgres'), ex.exampleSecret, 'the example Secret is there only when expected');
  if (!ex.exampleSecret) assert.ok(!secretRefs.some((r) => r.name === 'pgrouter-postgres'), 'nothing refers to the deleted example Secret');

  // The configuration pgrouter would load in that pod: the ConfigMap's file + the environment.
  const dir = mkdtempSync(path.join(tmpdir(), 'pgrouter-deploy-'));
  let config: Config;
  try {
    for (const [p, content] of provided) {
      const local = path.join(dir, p.slice(CONFIG_DIR.length + 1));
      mkdirSync(path.dirname(local), { recursive: true });
      writeFileSync(local, content);
    }
    config = loadConfig({ file: path.join(dir, 'pgpool.conf'), env });
    assert.deepEqual(config.warnings, [], 'no ignored or deprecated parameter is used');
    const s = config.settings;
    // Paths as the pod sees them (relative ones were resolved against our stand-in for /config).
    const inPod = (p: string): string => (p.startsWith(dir + path.sep) ? CONFIG_DIR + p.slice(dir.length) : p);
    const local = (p: string): string => path.join(dir, inPod(p).slice(CONFIG_DIR.length + 1));
    if (s.enable_pool_hba) {
      assert.ok(provided.has(inPod(s.pool_hba_file)), `pool_hba_file ${inPod(s.pool_hba_file)} is provided in /config`);
      HbaFile.load(local(s.pool_hba_file)); // parses, or throws naming the line
    }
    if (s.pool_passwd !== '') assert.ok(provided.has(inPod(s.pool_passwd)), `pool_passwd ${inPod(s.pool_passwd)} is provided in /config`);
    assert.equal(s.ssl, ex.ssl, 'ssl');
    if (s.ssl) {
      assert.ok(provided.has(inPod(s.ssl_cert)), `ssl_cert ${s.ssl_cert} is provided in /config`);
      assert.ok(provided.has(inPod(s.ssl_key)), `ssl_key ${s.ssl_key} is provided in /config`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const s = config.settings;
  assert.equal(s.port, CLIENT_PORT, 'pgrouter listens on the container port 9999');
  assert.equal(s.metrics_port, METRICS_PORT, 'metrics_port is the probe and metrics port');
  assert.ok(s.listen_addresses.includes('*'), "listen_addresses = '*' (a pod is reached on its IP)");
  assert.deepEqual(config.backends.map((b) => b.hostname), ex.backends, 'backend_hostnameN');
  assert.equal(config.backends[0]?.flag.alwaysPrimary, true, 'backend 0 is ALWAYS_PRIMARY');
  for (const b of config.backends) assert.equal(b.flag.disallowToFailover, true, `backend ${b.id} is DISALLOW_TO_FAILOVER`);

  // Shutdown: preStop sleep, then SIGTERM and drain_timeout, all inside the grace period.
  const cmd = c.lifecycle?.preStop?.exec?.command ?? [];
  assert.equal(cmd[0], 'sleep', 'preStop sleeps');
  const sleep = Number(cmd[1]);
  assert.ok(Number.isInteger(sleep) && sleep > 0, 'preStop sleeps a whole number of seconds');
  const grace = pod.terminationGracePeriodSeconds ?? 30;
  assert.ok(grace >= sleep + s.drain_timeout + 5, `terminationGracePeriodSeconds ${grace} >= preStop ${sleep} + drain_timeout ${s.drain_timeout} + 5`);

  // Services.
  const services = byKind(docs, 'Service').map((d) => d.obj as unknown as IService);
  const client = services.find((x) => x.metadata?.name === ex.name);
  assert.ok(client, `Service ${ex.name}`);
  for (const svc of services) {
    assert.ok(subset(svc.spec?.selector, podLabels), `Service ${svc.metadata?.name} selects the pgrouter pods`);
    for (const p of svc.spec?.ports ?? []) assert.ok(containerPort(c, p.targetPort ?? p.port) !== undefined, `Service ${svc.metadata?.name} port ${p.port} targets a container port`);
  }
  const clientPort = client.spec?.ports?.find((p) => containerPort(c, p.targetPort ?? p.port) === CLIENT_PORT);
  assert.ok(clientPort, `Service ${ex.name} forwards to 9999`);
  const metrics = services.find((x) => x.spec?.ports?.some((p) => containerPort(c, p.targetPort ?? p.port) === METRICS_PORT));
  assert.equal(metrics !== undefined, ex.metricsService, 'a metrics Service');
  if (metrics) {
    const port = metrics.spec?.ports?.find((p) => containerPort(c, p.targetPort ?? p.port) === METRICS_PORT);
    assert.equal(port?.port, METRICS_PORT, 'the metrics Service listens on 9719');
    assert.deepEqual(
      {
        scrape: metrics.metadata?.annotations?.['prometheus.io/scrape'],
        port: metrics.metadata?.annotations?.['prometheus.io/port'],
        path: metrics.metadata?.annotations?.['prometheus.io/path'],
      },
      { scrape: 'true', port: String(METRICS_PORT), path: '/metrics' },
      'Prometheus annotations',
    );
  }
  const monitors = byKind(docs, 'ServiceMonitor');
  assert.equal(monitors.length, ex.serviceMonitor ? 1 : 0, 'ServiceMonitor');
  for (const m of monitors) {
    assert.ok(metrics, 'a ServiceMonitor needs the metrics Service');
    const mspec = m.obj['spec'] as { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string }[] };
    assert.ok(subset(mspec.selector.matchLabels, metrics.metadata?.labels as Record<string, string>), 'the ServiceMonitor selects the metrics Service');
    const clientLabels = client.metadata?.labels as Record<string, string> | undefined;
    assert.ok(client === metrics || !subset(mspec.selector.matchLabels, clientLabels), 'the ServiceMonitor does not select the client Service');
    for (const ep of mspec.endpoints) {
      assert.ok(metrics.spec?.ports?.some((p) => p.name === ep.port && p.port === METRICS_PORT), `ServiceMonitor port ${ep.port} is the metrics port`);
      assert.equal(ep.path, '/metrics');
    }
  }
  const pdbs = byKind(docs, 'PodDisruptionBudget');
  assert.equal(pdbs.length, ex.podDisruptionBudget ? 1 : 0, 'PodDisruptionBudget');
  for (const p of pdbs) {
    const pspec = p.obj['spec'] as { minAvailable: number; selector: { matchLabels: Record<string, string> } };
    assert.ok(subset(pspec.selector.matchLabels, podLabels), 'the PodDisruptionBudget selects the pgrouter pods');
    assert.ok(typeof pspec.minAvailable === 'number' && pspec.minAvailable < ex.replicas, 'minAvailable leaves room for one eviction');
  }
  return config;
}

/** `kubectl kustomize DIR`; fails with the install hint when kubectl is missing. */
export function kustomize(dir: string): string {
  const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    assert.fail('kubectl is not installed: install Debian\'s kubernetes-client package (apt-get install -y kubernetes-client) to render the kustomize overlays');
  }
  assert.equal(r.status, 0, `kubectl kustomize ${dir} failed:\n${r.stderr}`);
  return r.stdout;
}

/** The UID the final stage of deploy/Dockerfile runs as. */
export function dockerfileUid(text: string): number {
  const users = [...text.matchAll(/^USER\s+(\d+)(?::\d+)?\s*$/gm)];
  const last = users.at(-1);
  assert.ok(last, 'the Dockerfile sets a numeric USER');
  return Number(last[1]);
}
