// pgrouter's own BackendKeyData: each client session gets a (pid, secret) pair of its own, and
// a CancelRequest carrying that pair is passed on to the backend connections the session is
// using, with their real keys.

import { randomInt32Pooled } from '../util/random-pool.ts';

/** What a session offers to the cancel path. */
export interface Cancellable {
  readonly secret: number;
  /** Settles when every backend it signalled has closed its cancel connection. */
  cancel(): Promise<void>;
}

export class CancelRegistry {
  private readonly sessions = new Map<number, Cancellable>();
  private next = (randomInt32Pooled() & 0x3fffffff) | 1;

  /** A fresh pid-like key for a new session (never 0, never reused while in use). */
  allocate(): { pid: number; secret: number } {
    do this.next = this.next >= 0x7ffffffe ? 1 : this.next + 1;
    while (this.sessions.has(this.next));
    return { pid: this.next, secret: randomInt32Pooled() };
  }

  add(pid: number, s: Cancellable): void {
    this.sessions.set(pid, s);
  }

  remove(pid: number): void {
    this.sessions.delete(pid);
  }

  /**
   * Cancels the session's running statement if the key matches: settles when the backends have
   * taken the cancel (at once when the key matches no session).
   */
  cancel(pid: number, secret: number): Promise<void> {
    const s = this.sessions.get(pid);
    return s && s.secret === secret ? s.cancel() : Promise.resolve();
  }
}
