// Pgpool-II's child slots, emulated for SHOW pool_processes and pool_pools: num_init_children
// slots, each ready client session given the lowest free one, with the number of sessions each
// slot has served and when its last client left.

import type { AdminSession } from './sources.ts';

/** One client slot (a Pgpool-II child process). */
export interface Slot {
  readonly index: number;
  session: AdminSession | null;
  /** Sessions this slot has served (client_connection_count). */
  served: number;
  /** When the last session in this slot ended (client_disconnection_time). */
  lastDisconnect: Date | null;
}

export class SlotTable {
  private readonly slots: Slot[] = [];
  private readonly bySession = new Map<AdminSession, Slot>();

  constructor(private readonly size: () => number) {}

  /**
   * Brings the table in line with the sessions now open: ready ones not yet seated get the
   * lowest free slot, seated ones that are gone free theirs. Returns the slots in order.
   */
  sync(sessions: Iterable<AdminSession>, now = new Date()): readonly Slot[] {
    const ready = new Set<AdminSession>();
    for (const s of sessions) if (s.pid !== 0) ready.add(s);
    for (const s of [...this.bySession.keys()]) if (!ready.has(s)) this.free(s, now);
    for (const s of ready) if (!this.bySession.has(s)) this.seat(s);
    while (this.slots.length < this.size()) this.slots.push(this.empty(this.slots.length));
    return this.slots;
  }

  /** A session ended: free its slot (seating it first if it came and went between two SHOWs). */
  ended(s: AdminSession, now = new Date()): void {
    if (s.pid === 0) return;
    if (!this.bySession.has(s)) this.seat(s);
    this.free(s, now);
  }

  private empty(index: number): Slot {
    return { index, session: null, served: 0, lastDisconnect: null };
  }

  private seat(s: AdminSession): void {
    let slot = this.slots.find((x) => x.session === null);
    if (!slot) {
      slot = this.empty(this.slots.length);
      this.slots.push(slot);
    }
    slot.session = s;
    slot.served++;
    this.bySession.set(s, slot);
  }

  private free(s: AdminSession, now: Date): void {
    const slot = this.bySession.get(s);
    if (!slot) return;
    this.bySession.delete(s);
    slot.session = null;
    slot.lastDisconnect = now;
  }
}
