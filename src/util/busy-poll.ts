// Busy polling (busy_poll_us): after a socket read, keeps the event loop turning, polling with a
// zero timeout, for a short window instead of letting the process sleep. The reply or the next
// request that comes within the window is then read without a wake-up from sleep, which is most
// of what one more hop costs a lone client. It runs only while few clients are active
// (busy_poll_max_clients): with more, reads follow each other anyway, and spinning would take CPU
// from PostgreSQL and the clients.

import { performance } from 'node:perf_hooks';

/** Active clients are counted over periods of this length. */
const PERIOD_MS = 20;

let windowMs = 0;
let maxClients = 0;
/** performance.now() until which the loop spins. */
let until = 0;
let spinning = false;
/** The current period's number, and the clients counted in it and in the one before. */
let period = 0;
let clientsNow = 0;
let clientsBefore = 0;

/** A client (a session): the period in which it was last counted. */
export interface ClientMark {
  pollPeriod: number;
}

/** Sets the window after each read in microseconds (0 turns polling off) and the most active clients it runs for. */
export function configureBusyPoll(windowUs: number, clients: number): void {
  windowMs = windowUs / 1000;
  maxClients = clients;
  if (windowMs <= 0) until = 0;
}

function spin(): void {
  if (performance.now() < until) setImmediate(spin);
  else spinning = false;
}

/** Moves the count on to period `p`. */
function enter(p: number): void {
  if (p === period) return;
  clientsBefore = p === period + 1 ? clientsNow : 0;
  clientsNow = 0;
  period = p;
}

/** A socket was read: unless too many clients are active, poll without sleeping for the window from now. */
export function touch(): void {
  if (windowMs <= 0) return;
  const now = performance.now();
  enter(Math.floor(now / PERIOD_MS));
  if (clientsNow > maxClients || clientsBefore > maxClients) return;
  until = now + windowMs;
  if (!spinning) {
    spinning = true;
    setImmediate(spin);
  }
}

/** A client's bytes were read: it counts as active in this period. */
export function clientRead(mark: ClientMark): void {
  if (windowMs <= 0) return;
  const p = Math.floor(performance.now() / PERIOD_MS);
  if (mark.pollPeriod === p) return;
  mark.pollPeriod = p;
  enter(p);
  clientsNow++;
}

/** True while the loop spins (for tests). */
export function busyPolling(): boolean {
  return spinning;
}
