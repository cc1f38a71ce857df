#!/usr/bin/env python3
"""The security review's attacks (issue 11, items 1 to 5), replayed against
a printgate binary, with the figures the review gave: memory (RSS) and the
size of /metrics under label, cache and APQ floods, 429s under junk
credentials, and fresh reads on a second instance right after writes on the
first (PostgreSQL).

    python3 bench/attacks.py [BINARY] [--pg postgres://postgres@127.0.0.1:5432/test]

BINARY defaults to target/release/printgate. Run it against an older build
to get the "before" figures with the same request pattern. Prints one JSON
object.
"""
import json, os, subprocess, sys, tempfile, time, urllib.error, urllib.request, uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
args = [a for a in sys.argv[1:] if not a.startswith("--")]
BIN = args[0] if args else os.path.join(ROOT, "target/release/printgate")
PG = None
if "--pg" in sys.argv:
    PG = sys.argv[sys.argv.index("--pg") + 1]
SECRET = "attack-secret-0123456789abcdef0123456789"
METRICS_TOKEN = "attack-metrics-token"


def start(db_url, port, extra=None):
    env = dict(os.environ, PRINTGATE_JWT_SECRET=SECRET, RUST_LOG="error",
               PRINTGATE_BIND=f"127.0.0.1:{port}", PRINTGATE_DATABASE_URL=db_url,
               PRINTGATE_METRICS_TOKEN=METRICS_TOKEN)
    env.update(extra or {})
    p = subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1)
            return p, url
        except Exception:
            time.sleep(0.1)
    raise SystemExit("printgate did not start")


def rss_mb(p):
    with open(f"/proc/{p.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def req(method, url, body=None, token=None, raw=None, ctype="application/json"):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    r = urllib.request.Request(url, data=data, method=method)
    if token:
        r.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        r.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(r, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def token(sub):
    out = subprocess.run([BIN, "token", "--sub", sub, "--ttl", "2h"], env=dict(os.environ, PRINTGATE_JWT_SECRET=SECRET),
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def metrics_size(url):
    status, body = req("GET", url + "/metrics", token=METRICS_TOKEN)
    return len(body) if status == 200 else None


def limits_and_labels(url, p):
    """Items 1 and 2, with the default rate limits on."""
    out = {}
    # 1. Labels from client input: 300 anonymous POSTs, 900 KB operationName.
    before = rss_mb(p)
    name = "x" * 900_000
    for n in range(300):
        req("POST", url + "/graphql", {"query": "{ me { id } }", "operationName": f"{name}{n}"})
    out["1_labels"] = {"rss_before_mb": before, "rss_after_mb": rss_mb(p), "metrics_bytes": metrics_size(url)}
    # 2. Junk credentials: 1,000 requests, a new `Bearer junk<N>` each.
    codes = [req("POST", url + "/graphql", {"query": "{ me { id } }"}, token=f"junk{n}")[0] for n in range(1000)]
    out["2_junk_credentials"] = {"requests": 1000, "429": codes.count(429)}
    return out


def caches(url, p):
    """Items 3 and 4, rate limiting off (memory is what is measured)."""
    out = {}
    # 3. APQ and parsed-document floods: 300 distinct ~1 MB documents with
    # their hashes (a string literal keeps them large once parsed), then
    # 300 distinct 60 KB ones without.
    import hashlib
    before = rss_mb(p)
    for n in range(300):
        q = '{ printer(id: "' + str(n) + "p" * 1_000_000 + '") { id } }'
        h = hashlib.sha256(q.encode()).hexdigest()
        req("POST", url + "/graphql", {"query": q, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": h}}})
    mid = rss_mb(p)
    for n in range(300):
        q = '{ printer(id: "' + str(n) + "q" * 60_000 + '") { id } }'
        req("POST", url + "/graphql", {"query": q})
    out["3_caches"] = {"rss_before_mb": before, "rss_after_apq_mb": mid, "rss_after_documents_mb": rss_mb(p)}
    # 4. REST read cache: a user with 1,000 printers, 300 GETs with ?junk=N.
    alice = token("alice-" + uuid.uuid4().hex[:6])
    made = 0
    for n in range(1000):
        s, _ = req("POST", url + "/graphql", {"query": "mutation($n: String!) { createPrinter(input: {name: $n}) { id } }",
                                             "variables": {"n": f"printer number {n} of a large farm"}}, token=alice)
        made += s == 200
    status, body = req("GET", url + "/api/v1/printers/", token=alice)
    before = rss_mb(p)
    for n in range(300):
        req("GET", url + f"/api/v1/printers/?junk={n}", token=alice)
    out["4_rest_cache"] = {"list_bytes": len(body), "rss_before_mb": before, "rss_after_mb": rss_mb(p)}
    over = req("POST", url + "/graphql", {"query": "mutation { createPrinter(input: {name: \"one more\"}) { id } }"}, token=alice)
    out["4_printer_cap"] = {"created": made, "1001st": json.loads(over[1]).get("errors", [{}])[0].get("extensions", {}).get("code", "created")}
    return out


def cluster(pg):
    """Item 5: PATCH on A, then at once GET on B, 200 times."""
    name = "attack_" + uuid.uuid4().hex[:8]
    admin = pg
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    base = admin.rsplit("/", 1)[0]
    db = f"{base}/{name}"
    a, ua = start(db, 18181)
    b, ub = start(db, 18182)
    try:
        t = token("carol")
        s, body = req("POST", ua + "/graphql", {"query": "mutation { createPrinter(input: {name: \"n0\"}) { id } }"}, token=t)
        pid = json.loads(body)["data"]["createPrinter"]["id"]
        path = f"/api/v1/printers/{pid}/"
        for _ in range(3):
            req("GET", ub + path, token=t)
        fresh = 0
        for n in range(1, 201):
            req("PATCH", ua + path, {"name": f"n{n}"}, token=t)
            s, body = req("GET", ub + path, token=t)
            fresh += json.loads(body).get("name") == f"n{n}"
        return {"fresh_reads_on_b": fresh, "of": 200}
    finally:
        a.kill(); b.kill(); a.wait(); b.wait()
        subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)


def main():
    d = tempfile.mkdtemp()
    result = {"binary": BIN}
    for n, (attack, extra) in enumerate([(limits_and_labels, {}), (caches, {"PRINTGATE_RATE_LIMIT": "0"})]):
        p, url = start(f"sqlite://{d}/{n}.db?mode=rwc", 18180 + 10 * n, extra)
        try:
            result.update(attack(url, p))
        finally:
            p.kill(); p.wait()
    if PG:
        result["5_cross_instance"] = cluster(PG)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
