// pgrouter's own query over a shared connection (pool_mode = transaction): a catalog lookup sent
// as one more pipelined request on a lane of the group, its rows collected as text, so lookups
// open no connection outside transaction_pool_size.

import { Backend } from '../protocol/codes.ts';
import { decodeErrorFields } from '../protocol/error-response.ts';
import { Framer } from '../protocol/framer.ts';
import { decodeDataRow } from '../protocol/read.ts';
import * as w from '../protocol/writer.ts';
import type { TextRow } from '../backend/query-rows.ts';
import type { Lane, LaneClient } from './lane.ts';
import type { LaneGroup } from './lane-group.ts';

/** Runs `sql` on a lane of `group`; resolves with its rows, rejects with the server's error. */
export function laneRows(group: LaneGroup, sql: string): Promise<TextRow[]> {
  return new Promise((resolve, reject) => {
    const framer = new Framer(() => 0x3fffffff);
    const rows: TextRow[] = [];
    let error: string | undefined;
    const client: LaneClient = {
      deliver: (bytes) =>
        framer.feed(Buffer.from(bytes), (type, buf, start, end) => {
          if (type === Backend.DataRow) rows.push(decodeDataRow(buf, start, end));
          else if (type === Backend.ErrorResponse) error ??= decodeErrorFields(buf, start, end).message;
        }),
      queuedBytes: 0,
      onceDrained: (cb) => cb(),
      requestDone: () => (error === undefined ? resolve(rows) : reject(new Error(`catalog query failed: ${error}`))),
      laneLost: () => reject(new Error('server closed the connection during a catalog query')),
      requestLost: () => reject(new Error('server closed the connection during a catalog query')),
    };
    const send = (lane: Lane | Error): void => {
      if (lane instanceof Error) reject(lane);
      else lane.request(client, [w.query(sql)], 0, null, null);
    };
    const lane = group.forPipeline(client, send);
    if (lane !== null) send(lane);
  });
}
