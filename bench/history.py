#!/usr/bin/env python3
"""Print history paging cost: a printer with 10,000 prints, the p50 and
p99 of its first page and of its last page (reached by walking the
cursors), each asked the same number of times over one kept-alive
connection, with the GraphQL query cache off (so every answer is
computed). Keyset cursors should make the two cost the same.

    python3 bench/history.py [BINARY]

BINARY defaults to target/release/printgate. Prints one JSON object.
"""
import datetime, http.client, json, os, sqlite3, statistics, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/printgate")
SECRET = "history-bench-secret-0123456789abcdef"
PRINTS, PAGE, ASKS = 10_000, 20, 400
Q = """query($after: String) { printer(id: "1") { prints(first: %d, after: $after) {
  totalCount pageInfo { hasNextPage endCursor } nodes { id filename state duration startedAt endedAt } } } }""" % PAGE
# The same without totalCount (the count is made only when asked for).
Q_NO_TOTAL = Q.replace("totalCount ", "")


def main():
    tmp = tempfile.mkdtemp()
    db = os.path.join(tmp, "h.db")
    port = 18_000 + os.getpid() % 1000
    env = dict(os.environ, PRINTGATE_JWT_SECRET=SECRET, RUST_LOG="error", PRINTGATE_RATE_LIMIT="0",
               PRINTGATE_GRAPHQL_CACHE_BYTES="0", PRINTGATE_DATABASE_URL=f"sqlite://{db}?mode=rwc",
               PRINTGATE_BIND=f"127.0.0.1:{port}")
    token = subprocess.check_output([BIN, "token", "--sub", "bench", "--ttl", "1h"], env=env, text=True).strip()
    server = subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/readyz", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        conn = http.client.HTTPConnection("127.0.0.1", port)

        def ask(variables, query=Q):
            body = json.dumps({"query": query, "variables": variables})
            t = time.perf_counter()
            conn.request("POST", "/graphql", body, {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
            answer = json.loads(conn.getresponse().read())
            return (time.perf_counter() - t) * 1000, answer

        conn.request("POST", "/graphql", json.dumps({"query": 'mutation { createPrinter(input: {name: "History"}) { id } }'}),
                     {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        conn.getresponse().read()
        # 10,000 prints, as agents leave them (times truncated to microseconds).
        s = sqlite3.connect(db)
        # (In the form sea-orm writes: `2026-01-01T00:00:00.000000+00:00`.)
        start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
        rows = []
        for n in range(PRINTS):
            t = (start + datetime.timedelta(minutes=47 * n)).isoformat(timespec="microseconds")
            rows.append((1, 1_700_000_000 + n, f"part-{n}.gcode", t, t if n % 3 else None, None if n % 3 else t))
        s.executemany("INSERT INTO prints (printer_id, ext_id, filename, started_at, finished_at, cancelled_at)"
                      " VALUES (?,?,?,?,?,?)", rows)
        s.commit()
        s.close()
        # Walk to the last page once.
        after, pages = None, 0
        while True:
            _, a = ask({"after": after})
            p = a["data"]["printer"]["prints"]
            pages += 1
            if not p["pageInfo"]["hasNextPage"]:
                break
            last_after = after
            after = p["pageInfo"]["endCursor"]
        assert p["totalCount"] == PRINTS, p["totalCount"]
        first_ms, last_ms, first_nt, last_nt = [], [], [], []
        for _ in range(ASKS):  # interleaved, so noise falls on all alike
            first_ms.append(ask({"after": None})[0])
            last_ms.append(ask({"after": last_after})[0])
            first_nt.append(ask({"after": None}, Q_NO_TOTAL)[0])
            last_nt.append(ask({"after": last_after}, Q_NO_TOTAL)[0])
        q = lambda xs, f: round(sorted(xs)[int(len(xs) * f)], 2)
        print(json.dumps({
            "prints": PRINTS, "page": PAGE, "pages": pages, "asks_each": ASKS,
            "first_page_p50_ms": q(first_ms, 0.5), "first_page_p99_ms": q(first_ms, 0.99),
            "last_page_p50_ms": q(last_ms, 0.5), "last_page_p99_ms": q(last_ms, 0.99),
            "last_to_first_p50": round(statistics.median(last_ms) / statistics.median(first_ms), 2),
            "without_total_first_page_p50_ms": q(first_nt, 0.5),
            "without_total_last_page_p50_ms": q(last_nt, 0.5),
        }))
    finally:
        server.kill()


if __name__ == "__main__":
    main()
