// pgrouter's own query over a shared connection (pool_mode = transaction): a catalog lookup sent
// as one more pipelined request on a lane of the group, its rows collected as text, so lookups
// open no connection outside transaction_pool_size.

import * as w from '../protocol/writer.ts';
import { RowCollector, type TextRow } from '../backend/query-rows.ts';
import type { Lane, LaneClient } from './lane.ts';
import type { LaneGroup } from './lane-group.ts';

/** Runs `sql` on a lane of `group`; resolves with its rows, rejects with the server's error. */
export function laneRows(group: LaneGroup, sql: string): Promise<TextRow[]> {
  return new Promise((resolve, reject) => {
    const collector = new RowCollector();
    const lost = (): void => reject(new Error('server closed the connection during a catalog query'));
    const client: LaneClient = {
      // The lane's read buffer is reused: the framer must not keep views of it.
      deliver: (bytes) => collector.feed(Buffer.from(bytes)),
      queuedBytes: 0,
      onceDrained: (cb) => cb(),
      requestDone: () =>
        collector.error === undefined ? resolve(collector.rows) : reject(new Error(`catalog query failed: ${collector.error.message}`)),
      laneLost: lost,
      requestLost: lost,
    };
    const send = (lane: Lane | Error): void => {
      if (lane instanceof Error) reject(lane);
      else lane.request(client, [w.query(sql)], 0, null, null);
    };
    const lane = group.forPipeline(client, send);
    if (lane !== null) send(lane);
  });
}
