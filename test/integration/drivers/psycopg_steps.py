# psycopg 3 (Debian's python3-psycopg) run against one server: each step prints one JSON line
# {"step", "ok", "value" | "sqlstate", "error"} so that clients-psycopg.test.ts can compare a run
# through pgrouter with a run directly on the primary. Values are made free of times and server
# ports so that the same steps give the same values on any target.
# Usage: python3 psycopg_steps.py HOST PORT USER PASSWORD DBNAME TABLE

import hashlib
import json
import sys
import threading
import time
import uuid
import decimal
import datetime

import psycopg
from psycopg.types.json import Jsonb

host, port, user, password, dbname, table = sys.argv[1:7]
dsn = f"host={host} port={port} user={user} password={password} dbname={dbname} connect_timeout=10"


def out(obj):
    print(json.dumps(obj, default=str), flush=True)


def step(name, fn):
    try:
        out({"step": name, "ok": True, "value": fn()})
    except psycopg.Error as e:
        out({"step": name, "ok": False, "sqlstate": e.sqlstate, "error": str(e).splitlines()[0] if str(e) else type(e).__name__})
    except Exception as e:  # a bug in the step itself: still one line, never a hang
        out({"step": name, "ok": False, "sqlstate": None, "error": f"{type(e).__name__}: {e}"})


def one(conn, query, params=None, **kw):
    return list(conn.execute(query, params, **kw).fetchone())


with psycopg.connect(dsn) as t:
    # psycopg's default (no autocommit): the read runs in the transaction its BEGIN opened.
    step("reads in a transaction before any write: a standby?", lambda: one(t, "select current_setting('transaction_read_only')"))

with psycopg.connect(dsn) as t:
    # read_only: psycopg opens its transactions with BEGIN READ ONLY, where transaction_read_only
    # is on everywhere; in_hot_standby tells the nodes apart.
    t.read_only = True
    step("a READ ONLY transaction: a standby?", lambda: one(t, "select current_setting('in_hot_standby')"))

with psycopg.connect(dsn, autocommit=True) as c:
    # transaction_read_only is on on a standby; pg_is_in_recovery() would not do: it is volatile,
    # and pgrouter, like Pgpool-II, sends a volatile function to the primary.
    step("reads before any write: a standby?", lambda: one(c, "select current_setting('transaction_read_only')"))
    step("startup parameters", lambda: {k: c.info.parameter_status(k) for k in
         ("server_encoding", "client_encoding", "DateStyle", "integer_datetimes", "standard_conforming_strings")})
    step("parameters (server-side binding)", lambda: one(c, "select %s::int + %s, %s::text", (1, 2, "x")))
    step("types", lambda: one(c, "select %s::uuid, %s::numeric, %s::jsonb, %s::int[], %s::timestamptz, %s::bytea", (
        uuid.UUID(int=5), decimal.Decimal("1.50"), Jsonb({"a": [1, None]}), [1, 2, 3],
        datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc), b"\x00\x01\xff")))
    # psycopg prepares a statement on the server from its 5th run (prepare_threshold).
    step("prepare threshold: 8 runs of one query", lambda: [one(c, "select %s::int * 2", (i,))[0] for i in range(8)])
    step("prepare=True", lambda: [one(c, "select %s::int + 100", (i,), prepare=True)[0] for i in range(3)])
    step("binary results", lambda: list(c.cursor(binary=True).execute("select %s::int, 'abc'::text, 1.5::float8", (5,)).fetchone()))
    step("DDL in one simple query", lambda: c.execute(f"drop table if exists {table}; create table {table}(id int primary key, v text)") and None)
    step("reads after a write: a standby?", lambda: one(c, "select current_setting('transaction_read_only')"))

    def executemany():
        # psycopg 3.1 sends executemany as one pipeline.
        c.cursor().executemany(f"insert into {table} values (%s, %s)", [(i, f"v{i}") for i in range(100)])
        return one(c, f"select count(*) from {table}")
    step("executemany", executemany)

    def pipeline():
        with c.pipeline():
            a = c.execute("select 1")
            b = c.execute("select %s::text", ("two",))
            d = c.execute(f"select count(*) from {table}")
        return [a.fetchone()[0], b.fetchone()[0], d.fetchone()[0]]
    step("pipeline of three", pipeline)

    def pipeline_error():
        code = None
        try:
            with c.pipeline():
                c.execute("select 1")
                c.execute("select 1/0")
                c.execute("select 2")
        except psycopg.Error as e:
            code = e.sqlstate
        return [code, one(c, "select 'after'")[0]]
    step("pipeline with an error in the middle", pipeline_error)

    def copy_in():
        with c.cursor() as cur:
            with cur.copy(f"copy {table} (id, v) from stdin") as cp:
                for i in range(1000, 3000):
                    cp.write_row((i, f"c{i}"))
        return one(c, f"select count(*), sum(id) from {table}")
    step("COPY FROM STDIN, 2000 rows", copy_in)

    def copy_out():
        h = hashlib.sha256()
        with c.cursor() as cur:
            with cur.copy(f"copy (select * from {table} order by id) to stdout") as cp:
                for block in cp:
                    h.update(block)
        return h.hexdigest()
    step("COPY TO STDOUT", copy_out)
    step("an error", lambda: one(c, "select * from no_such_table_here"))
    step("after the error", lambda: one(c, "select 'ok'"))

    def cancel():
        t = threading.Timer(0.5, c.cancel)
        t.start()
        try:
            c.execute("select pg_sleep(10)")
            return "not canceled"
        except psycopg.errors.QueryCanceled as e:
            return e.sqlstate
        finally:
            t.join()
    step("cancel a running query", cancel)
    step("after the cancel", lambda: one(c, "select 'ok'"))
    step("a large result", lambda: sum(len(r[0]) for r in c.execute("select repeat('x', 1000) from generate_series(1, 20000)").fetchall()))

with psycopg.connect(dsn) as c:
    def savepoints():
        with c.transaction():
            c.execute(f"insert into {table} values (9001, 'a')")
            try:
                with c.transaction():
                    c.execute(f"insert into {table} values (9001, 'dup')")
            except psycopg.errors.UniqueViolation:
                pass
            c.execute(f"insert into {table} values (9002, 'b')")
        return one(c, f"select count(*) from {table} where id > 9000")
    step("nested transactions (savepoints)", savepoints)
    c.commit()

    def server_cursor():
        with c.cursor(name="steps_cursor") as cur:
            cur.itersize = 100
            cur.execute(f"select id from {table} order by id")
            n = sum(1 for _ in cur)
        c.commit()
        return n
    step("server-side cursor, 100 rows a fetch", server_cursor)

    def isolation():
        c.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
        r = one(c, "show transaction_isolation")
        c.commit()
        c.isolation_level = None
        return r
    step("serializable transaction", isolation)

with psycopg.connect(dsn, autocommit=True) as listener, psycopg.connect(dsn, autocommit=True) as sender:
    def notify():
        got = []
        listener.add_notify_handler(lambda n: got.append([n.channel, n.payload]))
        listener.execute("listen steps_channel")
        sender.execute("notify steps_channel, 'hello'")
        for _ in range(100):
            if got:
                return got
            listener.execute("select 1")
            time.sleep(0.05)
        return got
    step("LISTEN/NOTIFY", notify)
    step("drop the table", lambda: sender.execute(f"drop table {table}") and None)
