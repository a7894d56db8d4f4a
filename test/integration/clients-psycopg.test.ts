// psycopg 3 (Debian's python3-psycopg, libpq underneath) through pgrouter: the steps of
// drivers/psycopg_steps.py (server-side binding, prepared statements from psycopg's threshold,
// binary results, executemany and pipeline mode, COPY both ways, cancel, savepoints, a named
// cursor, LISTEN/NOTIFY) give the same results as on a direct connection to the primary, in
// session and transaction pooling, with reads balanced onto the standby until the first write
// (in session pooling also inside psycopg's own transactions).

import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { driverTests, runSteps } from './driver-steps.ts';

/** Debian's own Python, where python3-psycopg is installed (not a python3 earlier on PATH). */
const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('./drivers/psycopg_steps.py', import.meta.url));
const TABLE = `psycopg_steps_${process.pid}`;

driverTests({
  run: (c, t) => runSteps(PYTHON, [SCRIPT, t.host, String(t.port), c.users.md5.name, c.users.md5.password, c.database, TABLE]),
  standbyValue: (onStandby) => [onStandby ? 'on' : 'off'],
  checkDirect: (direct) => {
    assert.equal(direct.length, 26, JSON.stringify(direct, null, 1));
    assert.deepEqual(direct.filter((l) => !l.ok).map((l) => [l.step, l.sqlstate]), [['an error', '42P01']]);
    const value = (step: string): unknown => direct.find((l) => l.step === step)?.value;
    assert.deepEqual(value('cancel a running query'), '57014');
    assert.deepEqual(value('pipeline with an error in the middle'), ['22012', 'after']);
    assert.deepEqual(value('LISTEN/NOTIFY'), [['steps_channel', 'hello']]);
    assert.deepEqual(value('COPY FROM STDIN, 2000 rows'), [2100, 4003950]);
  },
});
