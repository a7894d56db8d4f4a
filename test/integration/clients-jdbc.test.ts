// pgJDBC (Debian's libpostgresql-jdbc-java on the JDK's java) through pgrouter: the steps of
// drivers/JdbcSteps.java (server-prepared statements from the driver's prepareThreshold, batch
// inserts, CopyManager both ways, Statement.cancel and query timeouts, DatabaseMetaData, a fetch
// size read through a portal in parts, savepoints, read-only and serializable transactions,
// LISTEN/NOTIFY) give the same results as on a direct connection to the primary, in session and
// transaction pooling, with reads balanced onto the standby until the first write. SCRAM login.

import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { driverTests, runSteps } from './driver-steps.ts';

const JAR = '/usr/share/java/postgresql.jar';
const SCRIPT = fileURLToPath(new URL('./drivers/JdbcSteps.java', import.meta.url));
const TABLE = `jdbc_steps_${process.pid}`;

driverTests({
  run: (c, t) => runSteps('java', ['-cp', JAR, SCRIPT, t.host, String(t.port), c.users.scram.name, c.users.scram.password, c.database, TABLE]),
  standbyValue: (onStandby) => (onStandby ? 'on' : 'off'),
  checkDirect: (direct) => {
    assert.equal(direct.length, 25, JSON.stringify(direct, null, 1));
    assert.deepEqual(
      direct.filter((l) => !l.ok).map((l) => [l.step, l.sqlstate]),
      [['an error', '42P01'], ['cancel a running query', '57014'], ['a query timeout', '57014']],
    );
    const value = (step: string): unknown => direct.find((l) => l.step === step)?.value;
    assert.equal(value('LISTEN/NOTIFY'), '1 steps_channel hello');
    assert.equal(value('batch insert of 500 rows'), '500');
    assert.equal(value('read-only transaction'), 'on');
    assert.match(String(value('COPY TO STDOUT')), /^2500 [0-9a-f]{64}$/);
  },
});
