// Child processes for the benchmark: long-running servers (pgpool, pgbouncer, pgrouter) started
// as the rig's server user when we are root, with their output kept; readiness by TCP connect.

import { spawn, type ChildProcess } from 'node:child_process';
import { chown, mkdtemp } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { serverUser } from '../../rig/system.ts';

/** A server process the harness started. */
export interface Daemon {
  readonly name: string;
  readonly proc: ChildProcess;
  /** Last output lines (stdout and stderr), for error messages. */
  readonly output: string[];
  /** True once the process has exited. */
  exited(): boolean;
  /** `signal` (default SIGTERM) to the process group, SIGKILL after `graceMs`; resolves when the process is gone. */
  stop(graceMs?: number, signal?: NodeJS.Signals): Promise<void>;
}

const KEEP_LINES = 200;

/** Every daemon started and not yet exited, so an interrupted run can kill even one still starting. */
export const liveDaemons = new Set<Daemon>();

/** SIGKILLs the process group of every live daemon (synchronous, for signal handlers). */
export function killAllDaemonsSync(): void {
  for (const d of liveDaemons) {
    const pid = d.proc.pid;
    if (pid === undefined) continue;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** A fresh temp dir, owned by the server user when we are root (so a non-root daemon can write it). */
export async function daemonDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  const u = serverUser();
  if (u) await chown(dir, u.uid, u.gid);
  return dir;
}

/** Gives `file` to the server user when we are root. */
export async function giveToServerUser(file: string): Promise<void> {
  const u = serverUser();
  if (u) await chown(file, u.uid, u.gid);
}

/**
 * Spawns `file args` in its own process group; as the server user (`postgres`) when we are root
 * and `asServerUser` is set. Spawning with uid/gid (not runuser/su) keeps our fd limit.
 */
export function startDaemon(name: string, file: string, args: string[], o: { cwd: string; asServerUser: boolean; env?: NodeJS.ProcessEnv }): Daemon {
  const u = o.asServerUser ? serverUser() : undefined;
  const proc = spawn(file, args, {
    cwd: o.cwd,
    env: o.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    ...(u ? { uid: u.uid, gid: u.gid } : {}),
  });
  const output: string[] = [];
  for (const s of [proc.stdout, proc.stderr]) {
    let partial = '';
    s?.setEncoding('utf8').on('data', (d: string) => {
      const parts = (partial + d).split('\n');
      partial = parts.pop() ?? '';
      output.push(...parts);
      if (output.length > KEEP_LINES) output.splice(0, output.length - KEEP_LINES);
    });
  }
  let gone = false;
  let self: Daemon | undefined;
  const exit = new Promise<void>((resolve) => {
    proc.once('exit', () => {
      gone = true;
      if (self) liveDaemons.delete(self);
      resolve();
    });
    proc.once('error', (e) => {
      output.push(`spawn error: ${e.message}`);
      gone = true;
      if (self) liveDaemons.delete(self);
      resolve();
    });
  });
  self = {
    name,
    proc,
    output,
    exited: () => gone,
    async stop(graceMs = 10_000, signal: NodeJS.Signals = 'SIGTERM') {
      if (gone || proc.pid === undefined) return;
      // The whole group: pgpool forks children that must go with it.
      try {
        process.kill(-proc.pid, signal);
      } catch {
        proc.kill(signal);
      }
      const t = setTimeout(() => {
        try {
          process.kill(-proc.pid!, 'SIGKILL');
        } catch {
          // already gone
        }
      }, graceMs);
      await exit;
      clearTimeout(t);
    },
  };
  if (!gone) liveDaemons.add(self);
  return self;
}

/** True if 127.0.0.1:port accepts a TCP connection now. */
export function canConnect(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Waits until the daemon listens on `port`; throws with its output if it exits or times out. */
export async function waitListening(d: Daemon, port: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (d.exited()) throw new Error(`${d.name} exited before listening:\n${d.output.slice(-30).join('\n')}`);
    if (await canConnect(port)) return;
    if (Date.now() > deadline) {
      await d.stop(1000);
      throw new Error(`${d.name} did not listen on port ${port} within ${timeoutMs} ms:\n${d.output.slice(-30).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs a command to completion; resolves with exit code, stdout and stderr (never rejects on exit code). */
export function runCommand(file: string, args: string[], o?: { env?: NodeJS.ProcessEnv; cwd?: string }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(file, args, { env: o?.env ?? process.env, cwd: o?.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    p.once('error', (e) => resolve({ code: null, stdout, stderr: stderr + e.message }));
    p.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}
