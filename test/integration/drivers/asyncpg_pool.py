# asyncpg (Debian's python3-asyncpg) with its own pool of 10 connections through one server:
# 30 tasks each take a connection 20 times and read one row, one task sets search_path on a
# connection and gives it back (asyncpg then sends its reset: SELECT pg_advisory_unlock_all();
# CLOSE ALL; UNLISTEN *; RESET ALL;), and the next taker must see the default again. Prints one
# JSON object: the reads by server port, wrong answers, the search_path seen before and after the
# reset, and how many backends of USER the primary has while the pool is open.
# Usage: python3 asyncpg_pool.py HOST PORT USER PASSWORD DBNAME PRIMARY_PORT

import asyncio
import json
import sys

import asyncpg

host, port, user, password, dbname, primary_port = sys.argv[1:7]


async def main():
    pool = await asyncpg.create_pool(host=host, port=int(port), user=user, password=password, database=dbname, min_size=10, max_size=10)
    ports = {}
    wrong = 0

    async def work(i):
        nonlocal wrong
        for k in range(20):
            async with pool.acquire() as c:
                v, p = await c.fetchrow('select $1::int * 2, inet_server_port()', i * 100 + k)
                if v != (i * 100 + k) * 2:
                    wrong += 1
                ports[str(p)] = ports.get(str(p), 0) + 1

    await asyncio.gather(*(work(i) for i in range(30)))
    async with pool.acquire() as c:
        await c.execute('SET search_path = pg_catalog')
        before = await c.fetchval("select current_setting('search_path')")
    # Every connection of the pool, one after the other: none may still have the SET.
    after = []
    conns = [await pool.acquire() for _ in range(10)]
    for c in conns:
        after.append(await c.fetchval("select current_setting('search_path')"))
    for c in conns:
        await pool.release(c)
    direct = await asyncpg.connect(host=host, port=int(primary_port), user=user, password=password, database=dbname)
    backends = await direct.fetchval(
        "select count(*) from pg_stat_activity where usename = $1 and backend_type = 'client backend' and pid <> pg_backend_pid()", user)
    await direct.close()
    await pool.close()
    print(json.dumps({"ports": ports, "wrong": wrong, "before": before, "after": sorted(set(after)), "primary_backends": backends}))


asyncio.run(main())
