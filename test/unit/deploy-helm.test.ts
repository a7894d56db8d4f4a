// deploy/helm/pgrouter rendered by test/unit/deploy-helm-render.ts (the template subset Helm and
// we agree on) for the default values and two other value sets, then validated like the
// kustomize base; plus the renderer's own semantics and its refusal of everything else.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { ROOT, checkPgrouterSet, dockerfileUid, kustomize, parseManifests } from './deploy-check.ts';
import type { Doc, Expectation } from './deploy-check.ts';
import { TemplateError, goNumber, mergeValues, renderChart, renderTemplate } from './deploy-helm-render.ts';
import type { RenderContext } from './deploy-helm-render.ts';

const CHART = path.join(ROOT, 'deploy', 'helm', 'pgrouter');
const UID = dockerfileUid(readFileSync(path.join(ROOT, 'deploy', 'Dockerfile'), 'utf8'));

function ctx(values: unknown): RenderContext {
  return { Values: values, Release: { Name: 'rel', Namespace: 'ns', Service: 'Helm' }, Chart: { Name: 'c', Version: '1.0.0', AppVersion: '2.0' } };
}
const r = (src: string, values: unknown = {}): string => renderTemplate(src, 't.yaml', ctx(values));

function manifests(opts: Parameters<typeof renderChart>[1]): Doc[] {
  return renderChart(CHART, opts)
    .filter((f) => f.file.endsWith('.yaml'))
    .flatMap((f) => parseManifests(f.text, `helm ${f.file}`));
}

// ---- the renderer ---------------------------------------------------------------------------------

test('renderer: substitution, default, quote, toYaml with nindent/indent, as Helm does them', () => {
  assert.equal(r('{{ .Release.Name }}-{{ .Chart.Version }}/{{ .Values.a.b }}', { a: { b: 'x' } }), 'rel-1.0.0/x');
  assert.equal(r('[{{ .Values.missing }}]'), '[]'); // Helm prints a missing value as nothing
  assert.equal(r('{{ .Values.t | default .Chart.AppVersion }}|{{ .Values.t2 | default "d" }}', { t: '', t2: 'v' }), '2.0|v');
  assert.equal(r('{{ .Values.n | default 5 }} {{ .Values.z | default 7 }}', { n: 3, z: 0 }), '3 7'); // 0 is empty for default
  assert.equal(r('{{ .Values.s | quote }} {{ .Values.n | quote }} {{ .Values.b | quote }}', { s: 'a"b\\c\nd', n: 0, b: false }), '"a\\"b\\\\c\\nd" "0" "false"');
  assert.equal(r('x:{{ toYaml .Values.m | nindent 2 }}', { m: { b: [1, 2], a: 'y' } }), 'x:\n  a: y\n  b:\n  - 1\n  - 2');
  assert.equal(r('{{ toYaml .Values.m | indent 4 }}', { m: { k: 'v' } }), '    k: v');
  assert.equal(r('{{ toYaml .Values.missing }}'), 'null');
  // Helm's values are float64: big numbers print in e-notation (so the chart must quote or avoid them).
  assert.equal(goNumber(9719), '9719');
  assert.equal(goNumber(1000000), '1e+06');
  assert.equal(goNumber(0.5), '0.5');
  assert.equal(goNumber(0.00001), '1e-05');
});

test('renderer: if/else/end, range over lists and sorted maps with variables, $ root, trim markers', () => {
  assert.equal(r('{{ if .Values.on }}yes{{ else }}no{{ end }}', { on: true }), 'yes');
  for (const falsy of [false, 0, '', [], {}, null]) assert.equal(r('{{ if .Values.x }}yes{{ else }}no{{ end }}', { x: falsy }), 'no');
  assert.equal(r('{{ range .Values.l }}<{{ .id }}:{{ $.Release.Name }}>{{ end }}', { l: [{ id: 0 }, { id: 1 }] }), '<0:rel><1:rel>');
  assert.equal(r('{{ range $k, $v := .Values.m }}{{ $k }}={{ $v }};{{ end }}', { m: { b: 2, a: 1 } }), 'a=1;b=2;');
  assert.equal(r('{{ range $i, $v := .Values.l }}{{ $i }}{{ $v }}{{ end }}', { l: ['x', 'y'] }), '0x1y');
  assert.equal(r('{{ range .Values.none }}x{{ end }}'), '');
  assert.equal(r('a:\n  {{- if true }}\n  b: 1\n  {{- end }}\nc: 2'), 'a:\n  b: 1\nc: 2');
  assert.equal(r('x  {{- " y " -}}  z'), 'x y z');
  assert.equal(r('{{/* a comment */}}ok{{- /* trimmed */ -}} !'), 'ok!');
  assert.equal(r('{{ "}}" }}'), '}}');
});

test('renderer: every construct outside the subset is refused', () => {
  const refused: [string, RegExp][] = [
    ['{{ include "x" . }}', /"include" is not in the supported template subset/],
    ['{{ template "x" . }}', /"template" is not in the supported/],
    ['{{ define "x" }}{{ end }}', /"define" is not in the supported/],
    ['{{ with .Values }}{{ end }}', /"with" is not in the supported/],
    ['{{ tpl .Values.x . }}', /"tpl" is not in the supported/],
    ['{{ required "m" .Values.x }}', /"required" is not in the supported/],
    ['{{ .Values.x | upper }}', /function "upper" is not in the supported template subset/],
    ['{{ toYaml (.Values.x) }}', /no parentheses/],
    ['{{ $x := 1 }}', /unexpected ":="/],
    ['{{ if .Values.a }}{{ else if .Values.b }}{{ end }}', /only a plain else/],
    ['{{ if eq .Values.a 1 }}{{ end }}', /function "eq" is not in the supported/],
    ['{{ .Capabilities.KubeVersion }}', /\.Capabilities is not in the supported template subset/],
    ['{{ .Files.Get "x" }}', /"\.Files\.Get" is not a function/],
    ['{{ if .Values.a }}', /not closed with end/],
    ['{{ end }}', /unexpected end/],
    ['{{ .Values.a', /unclosed action/],
    ['{{ quote }}', /quote takes at least 1 argument/],
    ['{{ .Values.a.b }}', /nil pointer evaluating interface \{\}\.b/],
    ['{{ .Values.m }}', /cannot turn a map into a string/],
  ];
  for (const [src, re] of refused) assert.throws(() => r(src, { m: { k: 1 } }), (e: unknown) => e instanceof TemplateError && re.test(e.message), src);
});

test('renderer: values merge like helm -f (maps merge, lists replace, null removes)', () => {
  assert.deepEqual(mergeValues({ a: { b: 1, c: 2 }, l: [1, 2], d: 1 }, { a: { c: 3 }, l: [9], d: null }), { a: { b: 1, c: 3 }, l: [9] });
});

// ---- the chart --------------------------------------------------------------------------------------

const DEFAULTS: Expectation = {
  name: 'pgrouter',
  replicas: 2,
  backends: ['postgres-primary', 'postgres-replica'],
  users: [{ prefix: 'POSTGRES', secret: 'pgrouter-postgres', usernameKey: 'username', passwordKey: 'password' }],
  ssl: false,
  metricsService: true,
  serviceMonitor: false,
  podDisruptionBudget: true,
  exampleSecret: true,
  uid: UID,
};

test('chart: Chart.yaml is a v2 application chart whose appVersion is the package version (the image tag)', () => {
  const chart = YAML.parse(readFileSync(path.join(CHART, 'Chart.yaml'), 'utf8')) as Record<string, unknown>;
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
  assert.equal(chart['apiVersion'], 'v2');
  assert.equal(chart['name'], 'pgrouter');
  assert.equal(chart['type'], 'application');
  assert.match(String(chart['version']), /^\d+\.\d+\.\d+$/);
  assert.equal(chart['appVersion'], pkg.version);
});

test('chart, default values: the same objects as the kustomize base (ServiceMonitor off), all checks pass', () => {
  const docs = manifests({});
  const config = checkPgrouterSet(docs, DEFAULTS);
  const base = parseManifests(kustomize(path.join(ROOT, 'deploy', 'kubernetes', 'base')), 'kustomize base');
  const kinds = (ds: Doc[]): string[] => ds.map((d) => d.obj.kind).filter((k) => k !== 'ServiceMonitor').sort();
  assert.deepEqual(kinds(docs), kinds(base));
  // The pod is the base's pod: same probes, ports, hooks, resources, security, mounts.
  type Pod = { terminationGracePeriodSeconds: number; securityContext: unknown; containers: Record<string, unknown>[] };
  const pod = (ds: Doc[]): Pod => (ds.find((d) => d.obj.kind === 'Deployment')?.obj as unknown as { spec: { template: { spec: Pod } } }).spec.template.spec;
  const [p, b] = [pod(docs), pod(base)];
  assert.equal(p.terminationGracePeriodSeconds, b.terminationGracePeriodSeconds);
  assert.deepEqual(p.securityContext, b.securityContext);
  for (const f of ['image', 'ports', 'readinessProbe', 'livenessProbe', 'lifecycle', 'resources', 'securityContext', 'volumeMounts']) {
    assert.deepEqual(p.containers[0]?.[f], b.containers[0]?.[f], `container ${f}`);
  }
  // And pgrouter loads the same settings from both (paths aside: they point into temp dirs).
  const baseConfig = checkPgrouterSet(base, { ...DEFAULTS, serviceMonitor: true });
  const plain = (c: typeof config): Record<string, unknown> =>
    Object.fromEntries(Object.entries(c.settings).filter(([k]) => !['pool_hba_file', 'pool_passwd', 'ssl_cert', 'ssl_key', 'ssl_ca_cert', 'ssl_ca_cert_dir', 'ssl_crl_file', 'ssl_dh_params_file'].includes(k)));
  assert.deepEqual(plain(config), plain(baseConfig));
  assert.deepEqual(config.backends, baseConfig.backends);
});

test('chart, CloudNativePG values: operator Secrets for two users, TLS, ServiceMonitor, more params', () => {
  const values = {
    replicaCount: 3,
    image: { repository: 'registry.example/pgrouter', tag: '0.1.0-test' },
    backends: [
      { id: 0, host: 'cluster-example-rw', port: 5432, weight: 0, flag: 'ALWAYS_PRIMARY|DISALLOW_TO_FAILOVER' },
      { id: 1, host: 'cluster-example-ro', weight: 3, flag: 'DISALLOW_TO_FAILOVER' },
    ],
    users: [
      { envPrefix: 'POSTGRES', secretName: 'cluster-example-app' },
      { envPrefix: 'APP_RO', secretName: 'reporting-user', usernameKey: 'user', passwordKey: 'pass' },
    ],
    exampleSecret: { create: false },
    params: { NUM_INIT_CHILDREN: 64, STATEMENT_LEVEL_LOAD_BALANCE: 'on', APP_NAME_REDIRECT_PREFERENCE_LIST: 'psql:primary,batch.*:1(0.5)' },
    tls: { enabled: true, secretName: 'pgrouter-tls-cert' },
    metrics: { serviceMonitor: { enabled: true, interval: '15s', labels: { release: 'prometheus' } } },
    resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '1Gi' } },
    drainTimeout: 60,
    terminationGracePeriodSeconds: 75,
    podAnnotations: { 'example.com/team': 'db' },
  };
  const docs = manifests({ release: 'pgrouter', values });
  const config = checkPgrouterSet(docs, {
    ...DEFAULTS,
    replicas: 3,
    backends: ['cluster-example-rw', 'cluster-example-ro'],
    users: [
      { prefix: 'APP_RO', secret: 'reporting-user', usernameKey: 'user', passwordKey: 'pass' },
      { prefix: 'POSTGRES', secret: 'cluster-example-app', usernameKey: 'username', passwordKey: 'password' },
    ],
    ssl: true,
    serviceMonitor: true,
    exampleSecret: false,
  });
  assert.deepEqual(config.backends.map((b) => [b.weight, b.port]), [[0, 5432], [3, 5432]]);
  assert.equal(config.settings.num_init_children, 64);
  assert.equal(config.settings.statement_level_load_balance, true);
  assert.equal(config.settings.drain_timeout, 60);
  assert.equal(config.settings.app_name_redirect_preference_list, 'psql:primary,batch.*:1(0.5)');
  const dep = docs.find((d) => d.obj.kind === 'Deployment')?.obj as unknown as { spec: { template: { spec: { containers: { image: string }[] } } } };
  assert.equal(dep.spec.template.spec.containers[0]?.image, 'registry.example/pgrouter:0.1.0-test');
  const sm = docs.find((d) => d.obj.kind === 'ServiceMonitor');
  assert.equal(sm?.obj.metadata.labels?.['release'], 'prometheus');
});

test('chart, three backends with pool_hba and no metrics Service / PDB / spread, another release name', () => {
  const values = {
    replicaCount: 4,
    backends: [
      { id: 0, host: 'acid-main', weight: 1, flag: 'ALWAYS_PRIMARY|DISALLOW_TO_FAILOVER' },
      { id: 1, host: 'acid-main-repl', weight: 2, flag: 'DISALLOW_TO_FAILOVER' },
      { id: 2, host: 'acid-main-repl.other-ns.svc', port: 5433, weight: 1 },
    ],
    users: [{ envPrefix: 'POSTGRES', secretName: 'zalando.acid-main.credentials.postgresql.acid.zalan.do' }],
    exampleSecret: { create: false },
    poolHba: 'local all all trust\nhost all all 0.0.0.0/0 scram-sha-256\n',
    params: { ENABLE_POOL_HBA: 'on' },
    metrics: { service: { enabled: false }, serviceMonitor: { enabled: true } },
    podDisruptionBudget: { enabled: false },
    topologySpread: { enabled: false },
    service: { type: 'LoadBalancer', annotations: { 'service.beta.kubernetes.io/aws-load-balancer-internal': 'true' } },
    nodeSelector: { 'kubernetes.io/os': 'linux' },
    tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'db', effect: 'NoSchedule' }],
    affinity: { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1, preference: { matchExpressions: [{ key: 'pool', operator: 'In', values: ['db'] }] } }] } },
  };
  const docs = manifests({ release: 'db-proxy', namespace: 'prod', values });
  const config = checkPgrouterSet(docs, {
    ...DEFAULTS,
    name: 'db-proxy',
    replicas: 4,
    backends: ['acid-main', 'acid-main-repl', 'acid-main-repl.other-ns.svc'],
    users: [{ prefix: 'POSTGRES', secret: 'zalando.acid-main.credentials.postgresql.acid.zalan.do', usernameKey: 'username', passwordKey: 'password' }],
    metricsService: false,
    serviceMonitor: false, // it needs the metrics Service, so it is left out too
    podDisruptionBudget: false,
    exampleSecret: false,
  });
  assert.equal(config.settings.enable_pool_hba, true);
  assert.equal(config.backends[2]?.port, 5433);
  const cm = docs.find((d) => d.obj.kind === 'ConfigMap');
  assert.equal(cm?.obj.metadata.name, 'db-proxy-config');
  assert.equal((cm?.obj['data'] as Record<string, string>)['pool_hba.conf'], values.poolHba);
});

test('chart: NOTES.txt renders with the same subset', () => {
  const notes = renderChart(CHART, { release: 'pgrouter', namespace: 'db' }).find((f) => f.file === 'templates/NOTES.txt');
  assert.ok(notes);
  assert.match(notes.text, /pgrouter\.db\.svc:9999/);
  assert.match(notes.text, /SHOW pool_nodes/);
});
