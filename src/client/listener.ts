// The listening sockets: TCP on listen_addresses:port ('*' = every address) and a Unix socket
// `.s.PGSQL.<port>` in each unix_socket_directories entry, as PostgreSQL names it.

import net from 'node:net';
import { existsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { acceptOnUserBuffer } from '../util/user-buffer-socket.ts';

/**
 * Read buffer of a client socket. Clients send requests, which are small: 16 KiB instead of the
 * backends' 64 KiB keeps a short session's off-heap allocation, and so the full garbage
 * collections it triggers, four times smaller (a larger message is read over several reads).
 */
export const CLIENT_READ_BUFFER = 16 * 1024;

export interface ListenSpec {
  /** Pgpool-II's listen_addresses: host names or addresses, '*' for all; empty for none. */
  readonly addresses: readonly string[];
  readonly port: number;
  /** Directories for the Unix socket ('' entries skipped). */
  readonly socketDirs: readonly string[];
  /** listen(2) backlog. */
  readonly backlog: number;
}

/**
 * An accepted connection and whether it came over a Unix socket. The socket reads into a reused
 * buffer (readTargetOf gives where its reads go) unless that could not be set up.
 */
export type OnConnection = (sock: net.Socket, local: boolean) => void;

export class Listeners {
  private readonly servers: net.Server[] = [];
  private readonly socketPaths: string[] = [];

  /** Opens every listener; rejects (closing those already open) if one cannot bind. */
  async open(spec: ListenSpec, onConnection: OnConnection): Promise<void> {
    try {
      const hosts = spec.addresses.map((h) => h.trim()).filter((h) => h !== '');
      for (const h of hosts) {
        const host = h === '*' ? undefined : h;
        await this.listen({ port: spec.port, backlog: spec.backlog, ...(host ? { host } : {}) }, false, onConnection);
      }
      for (const dir of spec.socketDirs) {
        if (dir.trim() === '') continue;
        const path = join(dir, `.s.PGSQL.${spec.port}`);
        // A socket file left by a process that died: PostgreSQL removes it too.
        if (existsSync(path) && !(await inUse(path))) unlinkSync(path);
        await this.listen({ path, backlog: spec.backlog }, true, onConnection);
        this.socketPaths.push(path);
      }
    } catch (e) {
      await this.close();
      throw e;
    }
  }

  private listen(opts: net.ListenOptions, local: boolean, onConnection: OnConnection): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = net.createServer({ noDelay: true, pauseOnConnect: false }, (s) => onConnection(s, local));
      server.once('error', reject);
      server.listen(opts, () => {
        acceptOnUserBuffer(server, (s) => onConnection(s, local));
        server.off('error', reject);
        server.on('error', () => {});
        this.servers.push(server);
        resolve();
      });
    });
  }

  /** The addresses actually bound (port 0 in tests resolves to a real port). */
  addresses(): Array<string | net.AddressInfo | null> {
    return this.servers.map((s) => s.address());
  }

  /**
   * Stops accepting at once; existing connections are left alone. (server.close()'s callback
   * waits for every accepted connection to end, so it is not awaited: the drain needs to run.)
   */
  async close(): Promise<void> {
    for (const s of this.servers.splice(0)) s.close();
    for (const p of this.socketPaths.splice(0)) {
      try {
        unlinkSync(p);
      } catch {
        // already gone
      }
    }
  }
}

function inUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ path });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
