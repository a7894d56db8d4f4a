// The HTTP listener of both modes (node:http): /metrics (Prometheus text), /healthz (the process
// is alive), /readyz (ready for traffic), / (the status page), /status.json (its data) and the
// page's bundled assets (uPlot comes from the uplot package, never a CDN).

import http from 'node:http';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type net from 'node:net';
import { fileURLToPath } from 'node:url';
import { METRICS_CONTENT_TYPE, type Scraper } from './scraper.ts';
import { statusData, type StatusData } from './status-data.ts';

/** Readiness: ready, or why not (the text /readyz answers). */
export interface Readiness {
  readonly ready: boolean;
  readonly reason: string;
}

export interface EndpointOptions {
  readonly scraper: Scraper;
  readonly mode: StatusData['mode'];
  /** Path of the metrics (`--web.telemetry-path`), default /metrics. */
  readonly metricsPath?: string;
  readonly readiness: () => Readiness;
  /** Told of a scrape that failed outright (the response is a 500). */
  readonly onError?: (e: Error) => void;
}

const require = createRequire(import.meta.url);

interface Asset {
  readonly body: Buffer;
  readonly type: string;
}

let assets: Map<string, Asset> | undefined;

/** The status page's files, read once. */
function loadAssets(): Map<string, Asset> {
  if (assets) return assets;
  const own = (f: string): Buffer => readFileSync(fileURLToPath(new URL(`./assets/${f}`, import.meta.url)));
  assets = new Map([
    ['/assets/uPlot.iife.min.js', { body: readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js')), type: 'text/javascript; charset=utf-8' }],
    ['/assets/uPlot.min.css', { body: readFileSync(require.resolve('uplot/dist/uPlot.min.css')), type: 'text/css; charset=utf-8' }],
    ['/assets/status.js', { body: own('status.js'), type: 'text/javascript; charset=utf-8' }],
    ['/assets/status.css', { body: own('status.css'), type: 'text/css; charset=utf-8' }],
  ]);
  return assets;
}

function statusPage(mode: StatusData['mode'], metricsPath: string): Buffer {
  const title = mode === 'exporter' ? 'Pgpool-II Exporter (pgrouter)' : 'pgrouter status';
  const html = readFileSync(fileURLToPath(new URL('./assets/status.html', import.meta.url)), 'utf8');
  // The metrics link is relative, so the page also works behind a path prefix.
  return Buffer.from(html.replaceAll('__TITLE__', title).replaceAll('__METRICS__', metricsPath.replace(/^\//, '')));
}

function send(res: http.ServerResponse, head: boolean, status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}): void {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': String(b.length), 'Cache-Control': 'no-store', ...extra });
  res.end(head ? undefined : b);
}

/** The request handler shared by every bound address. */
export function handler(o: EndpointOptions): http.RequestListener {
  const metricsPath = o.metricsPath ?? '/metrics';
  const files = loadAssets();
  const page = statusPage(o.mode, metricsPath);
  return (req, res) => {
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) return send(res, head, 405, 'text/plain; charset=utf-8', 'method not allowed\n', { Allow: 'GET, HEAD' });
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === metricsPath) {
      o.scraper.metrics().then(
        (text) => send(res, head, 200, METRICS_CONTENT_TYPE, text),
        (e: Error) => {
          o.onError?.(e);
          send(res, head, 500, 'text/plain; charset=utf-8', `scrape failed: ${e.message}\n`);
        },
      );
      return;
    }
    switch (path) {
      case '/healthz':
        // Liveness only: never depends on the pool or the backends.
        return send(res, head, 200, 'text/plain; charset=utf-8', 'ok\n');
      case '/readyz': {
        const r = o.readiness();
        return send(res, head, r.ready ? 200 : 503, 'text/plain; charset=utf-8', `${r.reason}\n`);
      }
      case '/':
      case '/index.html':
        return send(res, head, 200, 'text/html; charset=utf-8', page);
      case '/status.json':
        o.scraper.snapshot(1000).then(
          (s) => send(res, head, 200, 'application/json', JSON.stringify(statusData(s, o.mode))),
          (e: Error) => send(res, head, 500, 'text/plain; charset=utf-8', `status failed: ${e.message}\n`),
        );
        return;
      default: {
        const f = files.get(path);
        if (f) return send(res, head, 200, f.type, f.body, { 'Cache-Control': 'max-age=3600' });
        return send(res, head, 404, 'text/plain; charset=utf-8', 'not found\n');
      }
    }
  };
}

/** The listening HTTP servers (one per address). */
export class MetricsServer {
  private constructor(private readonly servers: http.Server[]) {}

  /**
   * Listens on `port` at each address ('*' = every address). Rejects (closing whatever it had
   * bound) when an address cannot be bound.
   */
  static async listen(addresses: readonly string[], port: number, o: EndpointOptions): Promise<MetricsServer> {
    const servers: http.Server[] = [];
    const h = handler(o);
    try {
      for (const a of addresses.length > 0 ? addresses : ['*']) {
        const s = http.createServer(h);
        s.keepAliveTimeout = 65_000; // longer than Prometheus' scrape interval: reuse the connection
        servers.push(s);
        await new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.listen({ port, ...(a === '*' ? {} : { host: a }) }, () => {
            s.off('error', reject);
            resolve();
          });
        });
      }
    } catch (e) {
      for (const s of servers) s.close();
      throw e;
    }
    return new MetricsServer(servers);
  }

  /** The bound addresses. */
  addresses(): net.AddressInfo[] {
    return this.servers.map((s) => s.address()).filter((a): a is net.AddressInfo => typeof a === 'object' && a !== null);
  }

  /** Stops listening and drops open connections. */
  async close(): Promise<void> {
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
  }
}

/** Splits metrics_listen_addresses ('*', or a comma-separated list). */
export function listenAddresses(v: string | readonly string[]): string[] {
  return (typeof v === 'string' ? v.split(',') : [...v]).map((s) => s.trim()).filter((s) => s !== '');
}

/** `:9719`, `0.0.0.0:9719`, `[::1]:9719` → host ('*' for all) and port (--web.listen-address). */
export function parseListenAddress(a: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]*)\]|([^:]*)):(\d+)$/.exec(a.trim());
  if (!m) throw new Error(`--web.listen-address: "${a}" is not [host]:port`);
  const port = Number(m[3]);
  if (port < 0 || port > 65535) throw new Error(`--web.listen-address: port ${port} is out of range`);
  const host = m[1] ?? m[2] ?? '';
  return { host: host === '' ? '*' : host, port };
}
