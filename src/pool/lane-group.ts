// The shared backend connections (lanes) of one node for one user, database and set of startup
// parameters, in pool_mode = transaction. Pipelined requests go to the least-loaded lane that is
// not stuck behind a slow statement; a transaction takes a lane to itself until it ends. Lanes
// are opened on demand, up to transaction_pool_size, and leased from the Pool like any connection.

import type { Logger } from 'pino';
import type { ServerConnection } from '../backend/connection.ts';
import type { BackendNode } from '../backend/node.ts';
import { Lane, type LaneClient, type LaneOwner } from './lane.ts';

/** A lane whose oldest request has had no reply byte for this long is slow: new requests avoid it. */
export const STALL_MS = 50;

export interface LaneLimits {
  /** Most lanes (held ones included, pinned ones not). */
  readonly size: number;
  /** Requests in flight on a lane before another lane is opened. */
  readonly depth: number;
}

/** Open, not held by a transaction or pinned session, and not kept free for one. */
const takesRequests = (l: Lane): boolean => l.holder === null && !l.reserved && !l.closed;

type Waiter = { readonly exclusive: boolean; readonly client: LaneClient; readonly cb: (lane: Lane | Error) => void };

export class LaneGroup implements LaneOwner {
  /** Lanes shared by the group's sessions (some held by a transaction). Pinned lanes leave it. */
  readonly lanes: Lane[] = [];
  private opening = 0;
  private readonly waiters: Waiter[] = [];

  constructor(
    readonly node: BackendNode,
    private readonly open: () => Promise<ServerConnection>,
    private readonly limits: () => LaneLimits,
    private readonly log: Logger,
    /** Gives a connection back to the pool (reset and cached, or closed). */
    private readonly giveBack: (conn: ServerConnection) => void,
  ) {}

  /**
   * The lane for a pipelined request: the busiest one under the depth not held, reserved or slow. Returns
   * null when none can take it now; `cb` then gets one (or the error opening one failed with).
   */
  forPipeline(client: LaneClient, cb: (lane: Lane | Error) => void): Lane | null {
    const { size, depth } = this.limits();
    const now = performance.now();
    // Requests are packed onto the busiest lane that is under `depth`: the more of them go out in
    // one write and are read by one backend process in one go, the less each one costs.
    let fill: Lane | null = null;
    let least: Lane | null = null;
    let anySlow: Lane | null = null;
    for (const l of this.lanes) {
      if (!takesRequests(l)) continue;
      if (l.stalled(now, STALL_MS)) {
        if (anySlow === null || l.inFlight < anySlow.inFlight) anySlow = l;
        continue;
      }
      if (l.inFlight < depth && (fill === null || l.inFlight > fill.inFlight)) fill = l;
      if (least === null || l.inFlight < least.inFlight) least = l;
    }
    if (fill !== null) return fill;
    const room = this.lanes.length + this.opening < size;
    if (least !== null) {
      // Every lane has `depth` requests in flight: use the least loaded, and open another.
      if (room && this.opening === 0) this.openLane();
      return least;
    }
    if (room) {
      this.waiters.push({ exclusive: false, client, cb });
      if (this.opening === 0 || anySlow !== null) this.openLane();
      return null;
    }
    if (anySlow !== null) return anySlow;
    this.waiters.push({ exclusive: false, client, cb });
    return null;
  }

  /**
   * A lane for `client` alone (a transaction, a Flush-ended batch, a session being pinned): one
   * with nothing in flight, else a new one, else the next to drain (reserved for it meanwhile).
   */
  forExclusive(client: LaneClient, cb: (lane: Lane | Error) => void): Lane | null {
    for (const l of this.lanes)
      if (takesRequests(l) && l.inFlight === 0) {
        l.holder = client;
        return l;
      }
    this.waiters.push({ exclusive: true, client, cb });
    if (this.lanes.length + this.opening < this.limits().size) this.openLane();
    else {
      const drain = this.leastLoaded();
      if (drain !== null) drain.reserved = true;
    }
    return null;
  }

  /**
   * A lane whose connection a new session can take its ParameterStatus set and authentication
   * method from (it logs in against pgrouter, not a backend): any open lane, else the first one
   * opened. Concurrent logins wait for that one instead of each opening its own.
   */
  loginLane(): Promise<Lane> {
    for (const l of this.lanes) if (!l.closed) return Promise.resolve(l);
    return new Promise((resolve, reject) => {
      this.loginWaiters.push({ resolve, reject });
      if (this.opening === 0) this.openLane();
    });
  }

  private readonly loginWaiters: Array<{ resolve: (l: Lane) => void; reject: (e: Error) => void }> = [];

  /** The holder is done with the lane (its transaction ended): it is shared again. */
  release(lane: Lane): void {
    lane.holder = null;
    if (lane.closed) return;
    if (lane.pinned) {
      lane.pinned = false;
      this.giveBack(lane.conn);
      return;
    }
    this.serveWaiters();
  }

  /** The lane now belongs to its holder for the rest of its session (it no longer counts here). */
  pin(lane: Lane): void {
    lane.pinned = true;
    const i = this.lanes.indexOf(lane);
    if (i >= 0) this.lanes.splice(i, 1);
    this.serveWaiters();
  }

  /**
   * The holder left (or its session broke) while holding the lane: the connection goes back to
   * the pool, which rolls back and resets it; the group opens another when it needs one.
   */
  abandon(lane: Lane): void {
    lane.holder = null;
    const i = this.lanes.indexOf(lane);
    if (i >= 0) this.lanes.splice(i, 1);
    lane.conn.sink = null;
    if (!lane.closed) this.giveBack(lane.conn);
    lane.closed = true;
    this.serveWaiters();
  }

  laneIdle(lane: Lane): void {
    if (lane.reserved || lane.holder === null) this.serveWaiters();
  }

  laneClosed(lane: Lane, err: Error | undefined): void {
    const i = this.lanes.indexOf(lane);
    if (i >= 0) this.lanes.splice(i, 1);
    this.log.warn({ node: this.node.id, server: lane.conn.tag, err: err?.message }, 'shared backend connection closed');
    this.giveBack(lane.conn);
    this.serveWaiters();
  }

  /**
   * Gives waiting requests the lanes that can take them now, and opens lanes for those left while
   * there is room (a pinned or abandoned lane makes room). `openMore` false: after a lane failed
   * to open, so that a node refusing connections is not asked again in a loop.
   */
  private serveWaiters(openMore = true): void {
    while (this.waiters.length > 0) {
      const w = this.waiters[0]!;
      if (w.exclusive) {
        const free = this.lanes.find((l) => l.holder === null && !l.closed && l.inFlight === 0);
        if (!free) break;
        this.waiters.shift();
        // The lane kept free for this request is not needed any more if another one came free.
        const kept = free.reserved ? free : this.lanes.find((l) => l.reserved);
        if (kept) kept.reserved = false;
        free.holder = w.client;
        w.cb(free);
        continue;
      }
      const best = this.leastLoaded();
      if (!best) break;
      this.waiters.shift();
      w.cb(best);
    }
    if (openMore && this.waiters.length > 0) this.openForWaiters();
  }

  /** Opens lanes for the waiting requests: one per request that needs a lane to itself, else one. */
  private openForWaiters(): void {
    let want = 0;
    for (const w of this.waiters) if (w.exclusive) want++;
    if (want === 0) want = 1;
    const { size } = this.limits();
    while (this.opening < want && this.lanes.length + this.opening < size) this.openLane();
  }

  /** The lane taking requests with the fewest in flight. */
  private leastLoaded(): Lane | null {
    let best: Lane | null = null;
    for (const l of this.lanes) if (takesRequests(l) && (best === null || l.inFlight < best.inFlight)) best = l;
    return best;
  }

  private openLane(): void {
    this.opening++;
    this.open().then(
      (conn) => {
        this.opening--;
        const lane = new Lane(conn, this);
        this.lanes.push(lane);
        for (const w of this.loginWaiters.splice(0)) w.resolve(lane);
        this.serveWaiters();
      },
      (err: Error) => {
        this.opening--;
        this.log.warn({ node: this.node.id, err: err.message }, 'could not open a shared backend connection');
        // Requests that cannot be served by another lane get the error.
        if (this.lanes.length === 0 && this.opening === 0) {
          for (const w of this.loginWaiters.splice(0)) w.reject(err);
          const ws = this.waiters.splice(0);
          for (const w of ws) w.cb(err);
        } else this.serveWaiters(false);
      },
    );
  }

  /** Every lane (shutdown). */
  closeAll(): void {
    for (const w of this.waiters.splice(0)) w.cb(new Error('pgrouter is shutting down'));
    for (const w of this.loginWaiters.splice(0)) w.reject(new Error('pgrouter is shutting down'));
    for (const l of this.lanes.splice(0)) l.conn.close();
  }
}
