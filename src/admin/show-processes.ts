// SHOW pool_processes and SHOW pool_pools: pgrouter's client slots (see slots.ts) and its
// backend connections in Pgpool-II 4.7's columns. A slot's pool_pid is the session's
// BackendKeyData pid (what libpq's PQbackendPID reports to the client); a free slot shows
// pgrouter's process id. A session's connections sit in pool_id 0 of its slot; cached idle
// connections fill the free cells of free slots first, as Pgpool-II children keep theirs.

import { TxStatus } from '../protocol/codes.ts';
import type { ConnectionInfo } from '../pool/pool.ts';
import { minutesSeconds, timestamp } from './format.ts';
import type { Slot } from './slots.ts';
import type { AdminSession, AdminSources } from './sources.ts';

export const POOL_PROCESSES_COLUMNS = [
  'pool_pid', 'start_time', 'client_connection_count', 'database', 'username', 'backend_connection_time',
  'pool_counter', 'status',
] as const;

export const POOL_POOLS_COLUMNS = [
  'pool_pid', 'start_time', 'client_connection_count', 'pool_id', 'backend_id', 'database', 'username',
  'backend_connection_time', 'client_connection_time', 'client_disconnection_time', 'client_idle_duration',
  'majorversion', 'minorversion', 'pool_counter', 'pool_backendpid', 'pool_connected', 'status',
  'load_balance_node', 'client_host', 'client_port', 'statement',
] as const;

function poolPid(slot: Slot): string {
  return String(slot.session?.pid ?? process.pid);
}

/** The connections each session holds, by session. */
function heldBy(conns: readonly ConnectionInfo[]): Map<unknown, ConnectionInfo[]> {
  const m = new Map<unknown, ConnectionInfo[]>();
  for (const c of conns) {
    if (c.holder === null || c.state !== 'leased') continue;
    let list = m.get(c.holder);
    if (!list) m.set(c.holder, (list = []));
    list.push(c);
  }
  return m;
}

/** The session's connection to the primary (else its first): what pool_processes describes. */
function mainConnection(held: readonly ConnectionInfo[] | undefined, primaryId: number): ConnectionInfo | undefined {
  return held?.find((c) => c.nodeId === primaryId) ?? held?.[0];
}

/** Pgpool-II's child status words. */
function slotStatus(session: AdminSession | null, main: ConnectionInfo | undefined): string {
  if (!session) return 'Wait for connection';
  if (main?.busy) return 'Execute command';
  if ((main && main.txStatus !== TxStatus.Idle) || session.deferredTransaction === true) return 'Idle in transaction';
  return 'Idle';
}

export function poolProcesses(src: AdminSources, slots: readonly Slot[]): string[][] {
  const held = heldBy(src.connections());
  const primaryId = src.cluster().primaryId;
  const start = timestamp(src.startedAt);
  return slots.map((slot) => {
    const s = slot.session;
    const main = s ? mainConnection(held.get(s), primaryId) : undefined;
    return [
      poolPid(slot),
      start,
      String(slot.served),
      s?.database ?? '',
      s?.user ?? '',
      main ? timestamp(main.createdAt) : '',
      main ? String(main.leases) : '',
      slotStatus(s, main),
    ];
  });
}

export function poolPools(src: AdminSources, slots: readonly Slot[], now = Date.now()): string[][] {
  const conns = src.connections();
  const held = heldBy(conns);
  const view = src.cluster();
  const maxPool = Math.max(1, src.config().settings.max_pool);
  const idleLimit = src.config().settings.client_idle_limit;
  const nodeIds = view.nodes.map((n) => n.id);
  // cells[slot][pool_id] maps a backend id to the connection in that cell.
  const cells: Array<Array<Map<number, ConnectionInfo>>> = slots.map(() => Array.from({ length: maxPool }, () => new Map()));
  const placed = new Set<ConnectionInfo>();
  slots.forEach((slot, i) => {
    if (!slot.session) return;
    for (const c of held.get(slot.session) ?? []) {
      const pool = cells[i]!.find((m) => !m.has(c.nodeId));
      if (pool) {
        pool.set(c.nodeId, c);
        placed.add(c);
      }
    }
  });
  // Free slots first, then the other pool_ids of busy slots.
  const order = [...slots.keys()].sort((a, b) => Number(slots[a]!.session !== null) - Number(slots[b]!.session !== null));
  const overflow: ConnectionInfo[] = [];
  for (const c of conns) {
    if (placed.has(c)) continue;
    let done = false;
    for (const i of order) {
      const pool = cells[i]!.find((m) => !m.has(c.nodeId));
      if (pool) {
        pool.set(c.nodeId, c);
        done = true;
        break;
      }
    }
    if (!done) overflow.push(c);
  }
  const start = timestamp(src.startedAt);
  const rows: string[][] = [];
  const row = (slot: Slot | null, poolId: number, nodeId: number, c: ConnectionInfo | undefined): string[] => {
    const s = slot?.session ?? null;
    const connected = c !== undefined && s !== null && c.holder === s;
    const main = s ? mainConnection(held.get(s), view.primaryId) : undefined;
    let idle = '0';
    if (s && !main?.busy) {
      const secs = Math.max(0, Math.floor((now - s.lastActivity) / 1000));
      idle = idleLimit > 0 ? `${secs} (${minutesSeconds(idleLimit - secs)} before client disconnected)` : String(secs);
    }
    return [
      slot ? poolPid(slot) : String(process.pid),
      start,
      String(slot?.served ?? 0),
      String(poolId),
      String(nodeId),
      c?.database ?? '',
      c?.user ?? '',
      c ? timestamp(c.createdAt) : '',
      s ? timestamp(s.startedAt) : '',
      timestamp(slot?.lastDisconnect ?? null),
      idle,
      c ? '3' : '0',
      '0',
      String(c?.leases ?? 0),
      String(c?.pid ?? 0),
      connected ? '1' : '0',
      slotStatus(s, main),
      // A session's connection to a node other than its primary is its load-balance node.
      connected && main !== undefined && c.nodeId !== main.nodeId ? '1' : '0',
      '',
      '0',
      '',
    ];
  };
  slots.forEach((slot, i) => {
    for (let p = 0; p < maxPool; p++) for (const id of nodeIds) rows.push(row(slot, p, id, cells[i]![p]!.get(id)));
  });
  overflow.forEach((c, k) => rows.push(row(null, maxPool + k, c.nodeId, c)));
  return rows;
}
