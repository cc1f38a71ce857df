#!/usr/bin/env python3
"""printgate benchmarks: one command reruns them all and writes
docs/benchmarks.md and bench/results.json.

    python3 bench/run.py [--quick]

It builds release binaries, starts printgate on a fresh SQLite database,
seeds a realistic dataset (a user with 3 printers, one printing with a live
simulated agent, and a user with 50), checks every response body before
timing it, drives load from a second process over loopback with wrk, and
runs the same requests against the floor (a minimal axum server answering
the pre-rendered bytes of the same responses). Then: agent status ingest
with 1,000 simulated agents and 10 subscribers, memory with 10,000
printers and 1,000 agents, N instances on one PostgreSQL (when one answers
on 127.0.0.1:5432), and the live farm (50 and 200 printers, every one with
a live agent, read by REST and GraphQL).
"""
import json, os, platform, re, shutil, signal, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = "--quick" in sys.argv
DUR = "5s" if QUICK else "10s"
CONNS = 32
THREADS = 2
BIN = os.path.join(ROOT, "target/release/printgate")
FLOOR = os.path.join(ROOT, "target/release/floor")
SQLCOUNT = os.path.join(ROOT, "target/release/sqlcount")
SECRET = "bench-secret"
procs = []
# The GraphQL field set of the REST body.
FULL_FIELDS = "id name createdAt actionOnFailure watchingEnabled notWatchingReason toolsOffOnPause bedOffOnPause retractOnPause liftZOnPause detectiveSensitivity minTimelapseSecsOnFinish minTimelapseSecsOnCancel authToken archivedAt agentName agentVersion pic { imgUrl } status { raw } settings { raw } currentPrint { id printerId filename startedAt endedAt finishedAt cancelledAt uploadedAt alertedAt alertAcknowledgedAt alertMutedAt pausedAt videoUrl taggedVideoUrl posterUrl predictionJsonUrl alertOverwrite } normalizedP"


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, capture_output=True, text=True, **kw).stdout


def start(args, env=None, log=None):
    # Rate limiting off: the load generator is one caller by design.
    e = dict(os.environ, PRINTGATE_JWT_SECRET=SECRET, RUST_LOG="warn", PRINTGATE_RATE_LIMIT="0")
    e.update(env or {})
    p = subprocess.Popen(args, env=e, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT if log else subprocess.DEVNULL)
    procs.append(p)
    return p


def wait_ready(url):
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not start")


def http(method, url, token=None, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.read()


def gql(base, token, query, variables=None):
    _, b = http("POST", base + "/graphql", token, {"query": query, "variables": variables or {}})
    out = json.loads(b)
    if out.get("errors"):
        raise SystemExit(f"GraphQL errors: {out['errors']}")
    return out["data"]


def apq(query):
    import hashlib
    return {"persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(query.encode()).hexdigest()}}


def token(sub):
    return sh(f"PRINTGATE_JWT_SECRET={SECRET} {BIN} token --sub {sub} --ttl 3h").strip()


def wrk(url, tok=None, method="GET", body=None, allow_errors=False):
    """Runs wrk; returns requests/s and latency p50/p99 in ms. With
    `allow_errors` (a 1,000-printer list can take longer than wrk's
    timeout), errors are counted in the result instead of ending the run."""
    lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    lua.write(f'wrk.method = "{method}"\n')
    if tok:
        lua.write(f'wrk.headers["Authorization"] = "Bearer {tok}"\n')
    if body is not None:
        lua.write('wrk.headers["Content-Type"] = "application/json"\n')
        lua.write("wrk.body = [==[" + json.dumps(body) + "]==]\n")
    lua.write("""
done = function(summary, latency, requests)
  io.write(string.format("RESULT %f %f %f %d %d\\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.requests))
end
""")
    lua.close()
    out = sh(f"wrk -t{THREADS} -c{CONNS} -d{DUR} --timeout 10s -s {lua.name} '{url}'")
    os.unlink(lua.name)
    m = re.search(r"RESULT (\S+) (\S+) (\S+) (\d+) (\d+)", out)
    rps, p50, p99, errors, n = float(m[1]), float(m[2]), float(m[3]), int(m[4]), int(m[5])
    if errors and not allow_errors:
        raise SystemExit(f"wrk saw {errors} errors on {url}")
    return {"rps": round(rps), "p50_ms": round(p50, 2), "p99_ms": round(p99, 2), "requests": n, "errors": errors}


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    if not shutil.which("wrk"):
        subprocess.run("apt-get update -q && apt-get install -y -q wrk", shell=True, check=True)
    subprocess.run("cargo build --release -q -p printgate -p printgate-bench --bins", shell=True, check=True, cwd=ROOT)
    work = tempfile.mkdtemp(prefix="printgate-bench-")
    results = {"machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "wrk": f"-t{THREADS} -c{CONNS} -d{DUR}"}, "scenarios": {}}
    port, floor_port = 18181, 18182
    base = f"http://127.0.0.1:{port}"
    # One user holds the 3,000 agents of the largest ingest run: the
    # per-user printer cap (1,000 by default) is raised for this server.
    server = start([BIN, "serve"], {"PRINTGATE_BIND": f"127.0.0.1:{port}", "PRINTGATE_DATABASE_URL": f"sqlite://{work}/bench.db?mode=rwc",
                                    "PRINTGATE_MAX_PRINTERS_PER_USER": "3000"})
    wait_ready(base)

    # The dataset: a user with 3 printers (one printing, with a live agent)
    # and a user with 50.
    t3, t50 = token("bench-three"), token("bench-fifty")
    auths = [gql(base, t3, 'mutation($n: String!) { createPrinter(input: {name: $n}) { id authToken } }', {"n": f"Printer {i}"})["createPrinter"] for i in range(3)]
    for i in range(50):
        gql(base, t50, 'mutation($n: String!) { createPrinter(input: {name: $n}) { id } }', {"n": f"Farm {i}"})
    agent = start([BIN, "simulate", "--url", base, "--token", auths[0]["authToken"], "--interval", "1s", "--speed", "0.05"])
    for _ in range(100):
        p = gql(base, t3, "query($id: ID!) { printer(id: $id) { status { ts } currentPrint { id } settings { raw } } }", {"id": auths[0]["id"]})["printer"]
        if p["status"] and p["currentPrint"]:
            break
        time.sleep(0.2)
    else:
        raise SystemExit("the simulated agent never started printing")
    pid = auths[0]["id"]

    fields = FULL_FIELDS
    list_q = "{ printers { " + fields + " } }"
    detail_q = "query($id: ID!) { printer(id: $id) { " + fields + " } }"
    reads = {
        "rest_list_3": ("GET", f"{base}/api/v1/printers/", t3, None),
        "rest_list_50": ("GET", f"{base}/api/v1/printers/", t50, None),
        "rest_detail": ("GET", f"{base}/api/v1/printers/{pid}/", t3, None),
        "graphql_post_list_3": ("POST", f"{base}/graphql", t3, {"query": list_q}),
        "graphql_post_list_50": ("POST", f"{base}/graphql", t50, {"query": list_q}),
        "graphql_post_detail": ("POST", f"{base}/graphql", t3, {"query": detail_q, "variables": {"id": pid}}),
        "graphql_get_apq_list_3": ("GET", f"{base}/graphql?extensions=" + urllib.parse.quote(json.dumps(apq(list_q))), t3, None),
        "graphql_get_apq_detail": ("GET", f"{base}/graphql?extensions=" + urllib.parse.quote(json.dumps(apq(detail_q))) + "&variables=" + urllib.parse.quote(json.dumps({"id": pid})), t3, None),
    }
    # Register the persisted queries (Apollo's protocol: hash and document
    # together once), so the GET scenarios send only the hash.
    for q in (list_q, detail_q):
        http("POST", base + "/graphql", t3, {"query": q, "variables": {"id": pid}, "extensions": apq(q)})
    # Check each body before timing it, and keep it for the floor.
    floor_args = []
    for name, (method, url, tok, body) in reads.items():
        status, raw = http(method, url, tok, body, {"Accept": "application/json"})
        parsed = json.loads(raw)
        assert status == 200, name
        if name.startswith("graphql"):
            assert not parsed.get("errors") and parsed.get("data"), (name, parsed)
        elif "list" in name:
            assert isinstance(parsed, list) and len(parsed) == (50 if "50" in name else 3), name
        else:
            assert parsed["id"] == int(pid) and parsed["status"] is not None, name
        path = os.path.join(work, name + ".json")
        open(path, "wb").write(raw)
        floor_args.append(f"/{name}={path}")
    start([FLOOR, f"127.0.0.1:{floor_port}", *floor_args])
    wait_ready_floor = f"http://127.0.0.1:{floor_port}/rest_detail"
    for _ in range(100):
        try:
            urllib.request.urlopen(wait_ready_floor, timeout=1); break
        except Exception:
            time.sleep(0.1)

    counts = json.loads(sh(SQLCOUNT))
    for name, (method, url, tok, body) in reads.items():
        r = wrk(url, tok, method, body)
        f = wrk(f"http://127.0.0.1:{floor_port}/{name}")
        r["floor_rps"] = f["rps"]
        r["floor_p99_ms"] = f["p99_ms"]
        r["ratio_to_floor"] = round(r["rps"] / f["rps"], 3)
        key = name.replace("graphql_get_apq_", "rest_").replace("graphql_post_", "rest_")
        r["sql_statements"] = counts.get(key)
        results["scenarios"][name] = r
        print(name, r, flush=True)

    # An action with a connected agent: pause (the simulated agent obeys).
    pause = {"query": "mutation($id: ID!) { pausePrint(id: $id) { succeeded } }", "variables": {"id": pid}}
    _, b = http("POST", base + "/graphql", t3, pause)
    assert json.loads(b)["data"]["pausePrint"]["succeeded"] is True, b
    results["scenarios"]["graphql_pause_with_agent"] = wrk(f"{base}/graphql", t3, "POST", pause)
    print("pause", results["scenarios"]["graphql_pause_with_agent"], flush=True)

    # Agent status ingest: 1,000 agents, a status a second each, prints
    # that run for hours (--speed 0.05), 10 subscribers.
    results["scenarios"]["agent_ingest_1000"] = ingest(base, server, "bench-agents", 1000, 10)
    # How ingest grows with the number of agents (same subscribers).
    results["scenarios"]["agent_ingest_growth"] = {
        n: ingest(base, server, f"bench-agents-{n}", n, 10) for n in (100, 3000)
    }
    results["scenarios"]["agent_ingest_growth"][1000] = results["scenarios"]["agent_ingest_1000"]

    # Memory: 10,000 printers in the database and 1,000 connected agents.
    # A user may have 1,000 printers: nine users hold the other 9,000.
    tm = token("bench-memory")
    for u in range(9):
        tu = token(f"bench-memory-{u}")
        for start_i in range(0, 1000, 10):
            batch = [{"query": "mutation($n: String!) { createPrinter(input: {name: $n}) { id } }", "variables": {"n": f"m{u}-{start_i + i}"}} for i in range(10)]
            created = json.loads(http("POST", base + "/graphql", tu, batch)[1])
            assert all(not r.get("errors") for r in created), created
    mem = subprocess.Popen([BIN, "simulate", "--url", base, "--printers", "1000", "--jwt", tm, "--interval", "5s", "--no-snapshots"], env=dict(os.environ, RUST_LOG="warn"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(mem)
    time.sleep(20)
    n_printers = json.loads(http("POST", base + "/graphql", tm, {"query": "{ printers { id } }"})[1])["data"]["printers"]
    assert len(n_printers) == 1000, len(n_printers)
    results["scenarios"]["memory_10k_printers_1k_agents"] = {
        # 10,000 here (1,000 of them with a connected agent), plus the
        # earlier scenarios' 1,053.
        "printers_in_database": len(n_printers) + 9000 + 1000 + 53,
        "connected_agents": 1000,
        "server_rss_mb": round(rss_kb(server.pid) / 1024, 1),
    }
    print("memory", results["scenarios"]["memory_10k_printers_1k_agents"], flush=True)
    mem.terminate()

    # N instances on one PostgreSQL.
    if subprocess.run("pg_isready -q -h 127.0.0.1 -p 5432", shell=True).returncode == 0:
        results["scenarios"]["postgres_instances"] = instances(work)

    results["scenarios"]["live_farm"] = live_farm(work)
    json.dump(results, open(os.path.join(ROOT, "bench/results.json"), "w"), indent=2)
    write_markdown(results)


def ingest(base, server, sub, agents, subscribers):
    secs = "30s" if QUICK else "60s"
    out = sh(f"{BIN} simulate --url {base} --printers {agents} --jwt {token(sub)} --interval 1s --speed 0.05 "
             f"--duration {secs} --report --subscribers {subscribers} --no-snapshots 2>/dev/null")
    r = json.loads(out.strip().splitlines()[-1])
    r["server_rss_mb"] = round(rss_kb(server.pid) / 1024, 1)
    print("ingest", r, flush=True)
    return r


def instances(work):
    db = f"printgate_bench_{int(time.time())}"
    sh(f"psql -h 127.0.0.1 -U postgres -d test -qc 'CREATE DATABASE {db}'")
    url = f"postgres://postgres@127.0.0.1:5432/{db}"
    out = {}
    try:
        for n in (1, 2):
            ports = [18300 + i for i in range(n)]
            servers = [start([BIN, "serve"], {"PRINTGATE_BIND": f"127.0.0.1:{p}", "PRINTGATE_DATABASE_URL": url}) for p in ports]
            for p in ports:
                wait_ready(f"http://127.0.0.1:{p}")
            tok = token(f"pg-{n}")
            for i in range(3):
                gql(f"http://127.0.0.1:{ports[0]}", tok, 'mutation($n: String!) { createPrinter(input: {name: $n}) { id } }', {"n": f"P{i}"})
            ta = token(f"pg-agents-{n}")
            sims = [subprocess.Popen(f"{BIN} simulate --url http://127.0.0.1:{p} --printers {500 // n} --jwt {ta} --interval 1s --no-snapshots --duration 40s",
                                     shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in ports]
            time.sleep(5)
            # One wrk per instance, in parallel, as a balancer would spread them.
            wrks = [subprocess.Popen(f"wrk -t1 -c{CONNS // n} -d{DUR} --latency -H 'Authorization: Bearer {tok}' http://127.0.0.1:{p}/api/v1/printers/",
                                     shell=True, stdout=subprocess.PIPE, text=True) for p in ports]
            total = 0.0
            p99s = []
            for w in wrks:
                o = w.communicate()[0]
                total += float(re.search(r"Requests/sec:\s+(\S+)", o)[1])
                m = re.search(r"99%\s+(\S+)", o)
                p99s.append(m[1] if m else "?")
            for s in sims:
                s.wait()
            out[f"{n}_instance(s)"] = {"rest_list_3_rps_total": round(total), "rest_list_p99": p99s, "agents": 500, "agent_statuses_per_sec": 500}
            print("postgres", n, out[f"{n}_instance(s)"], flush=True)
            for s in servers:
                s.terminate()
                s.wait()
    finally:
        subprocess.run(f"psql -h 127.0.0.1 -U postgres -d test -qc 'DROP DATABASE IF EXISTS {db} WITH (FORCE)'", shell=True)
    return out


DASHBOARD_Q = ("{ printers { id name status { state { text flags { operational printing paused error } } "
               "progress { completion printTimeLeft } temperatures { name actual target } job { fileName } } "
               "currentPrint { id filename startedAt } notWatchingReason normalizedP pic { imgUrl } } }")


RENDER_HIT = 'printgate_printer_render_requests_total{outcome="hit"}'
RENDER_MISS = 'printgate_printer_render_requests_total{outcome="miss"}'


def metric(base, series):
    """One sample of /metrics (the bench server's token is `m`)."""
    _, b = http("GET", base + "/metrics", "m")
    m = re.search(r"^" + re.escape(series) + r" (\S+)", b.decode(), re.M)
    return float(m[1]) if m else 0.0


def live_farm(work, sizes=(3, 50, 200, 1000)):
    """A live farm: one user whose N printers each have a simulated agent
    sending a status every 2 s (N/2 changes a second), a quiet user with 3
    printers; wrk on what the farm's dashboard and legacy clients read.
    Every figure has its floor (the same bytes, minimal axum server) from
    the same run."""
    out = {}
    for n in sizes:
        port, floor_port = 18400, 18401
        base = f"http://127.0.0.1:{port}"
        server = start([BIN, "serve"], {"PRINTGATE_BIND": f"127.0.0.1:{port}", "PRINTGATE_METRICS_TOKEN": "m",
                                        "PRINTGATE_DATABASE_URL": f"sqlite://{work}/farm{n}.db?mode=rwc"})
        wait_ready(base)
        tf, tq = token(f"farm-{n}"), token(f"quiet-{n}")
        for i in range(3):
            gql(base, tq, 'mutation($n: String!) { createPrinter(input: {name: $n}) { id } }', {"n": f"Quiet {i}"})
        farm = []
        for i in range(0, n, 10):
            batch = [{"query": "mutation($n: String!) { createPrinter(input: {name: $n}) { id authToken } }", "variables": {"n": f"Farm {i + k}"}} for k in range(min(10, n - i))]
            farm += [r["data"]["createPrinter"] for r in json.loads(http("POST", base + "/graphql", tf, batch)[1])]
        sim = start([BIN, "simulate", "--url", base, "--interval", "2s", "--speed", "0.05", "--no-snapshots"]
                    + sum([["--token", p["authToken"]] for p in farm], []))
        for _ in range(300):
            ps = gql(base, tf, "{ printers { status { state { flags { printing } } } } }")["printers"]
            if all(p["status"] and p["status"]["state"]["flags"]["printing"] for p in ps):
                break
            time.sleep(0.2)
        else:
            raise SystemExit("the farm's agents never all started printing")
        pid = farm[0]["id"]
        full_q = "{ printers { " + FULL_FIELDS + " } }"
        reads = {
            f"farm{n}_rest_list": ("GET", f"{base}/api/v1/printers/", tf, None),
            f"farm{n}_rest_detail": ("GET", f"{base}/api/v1/printers/{pid}/", tf, None),
            f"farm{n}_graphql_dashboard_list": ("POST", f"{base}/graphql", tf, {"query": DASHBOARD_Q}),
            f"farm{n}_graphql_full_list": ("POST", f"{base}/graphql", tf, {"query": full_q}),
            f"farm{n}_quiet3_rest_list": ("GET", f"{base}/api/v1/printers/", tq, None),
            f"farm{n}_quiet3_graphql_full_list": ("POST", f"{base}/graphql", tq, {"query": full_q}),
        }
        floor_args = []
        for name, (method, url, tok, body) in reads.items():
            status, raw = http(method, url, tok, body, {"Accept": "application/json"})
            parsed = json.loads(raw)
            assert status == 200, name
            if "graphql" in name:
                assert not parsed.get("errors") and len(parsed["data"]["printers"]) == (3 if "quiet" in name else n), name
            elif "list" in name:
                assert isinstance(parsed, list) and len(parsed) == (3 if "quiet" in name else n), name
            else:
                assert parsed["id"] == int(pid) and parsed["status"] is not None, name
            path = os.path.join(work, name + ".json")
            open(path, "wb").write(raw)
            floor_args.append(f"/{name}={path}")
        floor = start([FLOOR, f"127.0.0.1:{floor_port}", *floor_args])
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{floor_port}/{name}", timeout=1); break
            except Exception:
                time.sleep(0.1)
        for name, (method, url, tok, body) in reads.items():
            cache = "graphql" if "graphql" in name else "rest"
            hit_s = f'printgate_{cache}_cache_requests_total{{outcome="hit"}}'
            miss_s = f'printgate_{cache}_cache_requests_total{{outcome="miss"}}'
            shared_s = f'printgate_{cache}_cache_requests_total{{outcome="shared"}}'
            hits0, miss0, shared0 = metric(base, hit_s), metric(base, miss_s), metric(base, shared_s)
            rh0, rm0 = metric(base, RENDER_HIT), metric(base, RENDER_MISS)
            r = wrk(url, tok, method, body, allow_errors=True)
            hits, miss = metric(base, hit_s) - hits0, metric(base, miss_s) - miss0
            shared = metric(base, shared_s) - shared0
            f = wrk(f"http://127.0.0.1:{floor_port}/{name}")
            r["floor_rps"] = f["rps"]
            r["floor_p99_ms"] = f["p99_ms"]
            r["ratio_to_floor"] = round(r["rps"] / f["rps"], 3)
            r["printers_in_answer"] = 3 if "quiet" in name else (1 if "detail" in name else n)
            r["body_bytes"] = os.path.getsize(os.path.join(work, name + ".json"))
            if hits + miss + shared:
                # Answered as kept, and by a computation shared with others waiting.
                r["cache_hit_rate"] = round(hits / (hits + miss + shared), 3)
                r["cache_shared_rate"] = round(shared / (hits + miss + shared), 3)
            rh, rm = metric(base, RENDER_HIT) - rh0, metric(base, RENDER_MISS) - rm0
            if rh + rm:
                r["printer_reuse_rate"] = round(rh / (rh + rm), 3)
            r["printers_per_s"] = r["rps"] * r["printers_in_answer"]
            out[name] = r
            print(name, r, flush=True)
        for p in (floor, sim, server):
            p.terminate()
            p.wait()
    return out


def write_markdown(r):
    s = r["scenarios"]
    lines = ["# Benchmarks", "",
             "Rerun everything with one command (release build, wrk from Debian, a few minutes):", "",
             "```sh", "python3 bench/run.py          # or --quick", "```", "",
             "It writes `bench/results.json` and this page. Load comes from wrk in a second process over",
             f"loopback, sharing the machine's {r['machine']['cpus']} cores with the server (`wrk {r['machine']['wrk']}`).",
             "Absolute numbers move from run to run on these shared machines; the **ratio to the floor**",
             "(a minimal axum server answering the pre-rendered bytes of the same response, measured in the",
             "same run) is the stable figure. Every body is checked before it is timed.", "",
             "## Reads", "",
             "| scenario | req/s | p50 ms | p99 ms | floor req/s | ratio to floor | SQL statements |",
             "|---|---|---|---|---|---|---|"]
    for k, v in s.items():
        if "floor_rps" in v:
            lines.append(f"| {k} | {v['rps']} | {v['p50_ms']} | {v['p99_ms']} | {v['floor_rps']} | {v['ratio_to_floor']} | {v.get('sql_statements')} |")
    p = s.get("graphql_pause_with_agent", {})
    lines += ["", "## Action with a connected agent", "",
              f"`pausePrint` over GraphQL, the command written to a live simulated agent each time: "
              f"{p.get('rps')} req/s, p50 {p.get('p50_ms')} ms, p99 {p.get('p99_ms')} ms.", ""]
    i = s.get("agent_ingest_1000", {})
    lines += ["## Agent status ingest", "",
              f"{i.get('agents')} simulated agents over real websockets, one status a second each (`--speed 0.05`), "
              f"with {i.get('subscribers')} GraphQL subscribers on all of them. Latency is status sent to subscriber heard; "
              f"the steady figures leave out the first {i.get('warm_up_seconds')} s (every agent connecting at once), reported on their own:", "",
              "| statuses sent | per second | stored status not the last sent | reordered | never delivered (after warm-up) | newest missed | p50 ms | p99 ms | max ms | warm-up p50 / p99 ms | server RSS MB |",
              "|---|---|---|---|---|---|---|---|---|---|---|",
              f"| {i.get('statuses_sent')} | {round(i.get('statuses_per_sec', 0))} | {i.get('printers_whose_stored_status_is_not_the_last_sent')} | {i.get('subscription_reordered')} | "
              f"{i.get('statuses_never_delivered')} ({i.get('statuses_never_delivered_after_warm_up')}) | {i.get('newest_status_missed')} | {i.get('latency_ms_p50')} | {i.get('latency_ms_p99')} | "
              f"{i.get('latency_ms_max')} | {i.get('warm_up_latency_ms_p50')} / {i.get('warm_up_latency_ms_p99')} | {i.get('server_rss_mb')} |", ""]
    lf = s.get("live_farm")
    if lf:
        lines += ["## Live farm", "",
                  "One user whose N printers each have a simulated agent sending a status every 2 s (N/2 changes a second), "
                  "and a quiet user with 3 printers, on the same server. The floor serves the same bytes in the same run; "
                  "the hit rate is the read cache's (REST or GraphQL) as the server counted it during the run:", "",
                  "| scenario | printers in answer | body bytes | req/s | p50 ms | p99 ms | floor req/s | ratio to floor | cache hit rate | printers reused | wrk errors (timeouts) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for k, v in lf.items():
            lines.append(f"| {k} | {v['printers_in_answer']} | {v['body_bytes']} | {v['rps']} | {v['p50_ms']} | {v['p99_ms']} | {v['floor_rps']} | {v['ratio_to_floor']} | {v.get('cache_hit_rate', '')} | {v.get('printer_reuse_rate', '')} | {v.get('errors', 0)} |")
        lines += ["", "### How cost grows with the printers in the answer", "",
                  "The same live farms (every printer's agent sending a status every 2 s), the list read by the farm's user; "
                  "printers/s is req/s times the printers in each answer (constant cost per printer keeps it flat):", "",
                  "| printers | REST list req/s | p99 ms | printers/s | floor printers/s | GraphQL dashboard req/s | p99 ms | printers/s | floor printers/s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for n in sorted({v["printers_in_answer"] for k, v in lf.items() if k.endswith("_rest_list") and "quiet" not in k}):
            rl, gd = lf.get(f"farm{n}_rest_list"), lf.get(f"farm{n}_graphql_dashboard_list")
            if rl and gd:
                lines.append(f"| {n} | {rl['rps']} | {rl['p99_ms']} | {rl['printers_per_s']} | {rl['floor_rps'] * n} | {gd['rps']} | {gd['p99_ms']} | {gd['printers_per_s']} | {gd['floor_rps'] * n} |")
        lines.append("")
    g = s.get("agent_ingest_growth")
    if g:
        lines += ["### How ingest grows with the number of agents", "",
                  "Each agent a status a second (`--speed 0.05`), 10 subscribers on all of them, one user's printers; steady figures after the warm-up:", "",
                  "| agents | statuses/s | p50 ms | p99 ms | max ms | stored status not the last sent | reordered | never delivered after warm-up |",
                  "|---|---|---|---|---|---|---|---|"]
        for n in sorted(g, key=int):
            i = g[n]
            lines.append(f"| {n} | {round(i.get('statuses_per_sec', 0))} | {i.get('latency_ms_p50')} | {i.get('latency_ms_p99')} | {i.get('latency_ms_max')} | "
                         f"{i.get('printers_whose_stored_status_is_not_the_last_sent')} | {i.get('subscription_reordered')} | {i.get('statuses_never_delivered_after_warm_up')} |")
        lines.append("")
    m = s.get("memory_10k_printers_1k_agents", {})
    lines += ["## Memory", "", f"About {m.get('printers_in_database')} printers in the database and 1,000 connected agents: server RSS {m.get('server_rss_mb')} MB.", ""]
    pg = s.get("postgres_instances")
    if pg:
        lines += ["## N instances on one PostgreSQL", "",
                  "Each instance gets its share of 500 simulated agents (a status a second each) and its own wrk on the REST list:", "",
                  "| instances | REST list req/s (sum) | p99 per instance |", "|---|---|---|"]
        for k, v in pg.items():
            lines.append(f"| {k.split('_')[0]} | {v['rest_list_3_rps_total']} | {', '.join(v['rest_list_p99'])} |")
        lines.append("")
    lines += ["## Machine", "", f"{r['machine']['cpus']} cores, Linux {r['machine']['kernel']}; printgate and the load generator share them.", ""]
    # The hand-written analysis (profile, what it led to) follows the numbers.
    analysis = open(os.path.join(ROOT, "bench/analysis.md")).read()
    open(os.path.join(ROOT, "docs/benchmarks.md"), "w").write("\n".join(lines) + "\n" + analysis)


if __name__ == "__main__":
    import urllib.parse
    try:
        main()
    finally:
        for p in procs:
            try:
                p.send_signal(signal.SIGTERM)
            except Exception:
                pass
