#!/usr/bin/env python3
"""Failure detection throughput: frames judged per second by one instance
with a simulated ML service answering at once (`printgate ml-sim`, which
still fetches every image as Obico's does), and the latency an agent's
snapshot upload sees with detection off, on at Obico's minimum interval
(10 s between judged frames of a printer) and on for every frame (it
should not change: judging is off the request path).

    python3 bench/detection.py [BINARY]

BINARY defaults to target/release/printgate. Four servers run side by
side, one per mode plus a second with detection off as the control, each with 50 printing printers (driven by `printgate
simulate`, statuses only). Paced: 16 threads post 50 snapshots a second
(each printer once a second), in rounds of 5 s that alternate between
the servers, so the machine's noise falls on every mode alike; the p50
and p99 are over all of a mode's rounds. Saturated: uploads as fast as
they are answered, 15 s per server, one after another. Prints one JSON
object.
"""
import http.client, json, os, random, re, subprocess, sys, tempfile, threading, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/printgate")
PACED_PER_S = 50  # each printer posting once a second: a live farm
SECRET = "detection-bench-secret-0123456789abcdef"
PRINTERS, THREADS, SECONDS, ROUNDS, ROUND_SECONDS = 50, 16, 15, 4, 5
PNG = open(os.path.join(ROOT, "src/simulate/snapshot.png"), "rb").read()


def start(args, env):
    e = dict(os.environ, PRINTGATE_JWT_SECRET=SECRET, RUST_LOG="error", PRINTGATE_RATE_LIMIT="0",
             PRINTGATE_METRICS_TOKEN="m")
    e.update(env)
    return subprocess.Popen([BIN] + args, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait(url):
    for _ in range(300):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not start")


def gql(url, token, query, variables=None):
    req = urllib.request.Request(url + "/graphql", data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    return json.load(urllib.request.urlopen(req))


def post_pic(conn, auth):
    """One upload over the thread's kept-alive connection (no connect in
    the figure); its latency in ms."""
    boundary = "b%016x" % random.getrandbits(64)
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"pic\"; filename=\"s.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + PNG + f"\r\n--{boundary}--\r\n".encode()
    t = time.perf_counter()
    conn.request("POST", "/api/v1/octo/pic/", body=body, headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}", "Authorization": f"Token {auth}"})
    r = conn.getresponse()
    r.read()
    if r.status != 200:
        raise SystemExit(f"upload answered {r.status}")
    return (time.perf_counter() - t) * 1000


def connection(url):
    host, port = url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=30)


def metric(url, series):
    req = urllib.request.Request(url + "/metrics", headers={"Authorization": "Bearer m"})
    text = urllib.request.urlopen(req).read().decode()
    m = re.search(r"^" + re.escape(series) + r" (\S+)", text, re.M)
    return float(m.group(1)) if m else 0.0


# The second server with detection off is the control: how far two
# identical servers differ in the same run (the machine's noise).
MODES = {"detection_off": None, "detection_on_10s": "10s", "detection_on_every_frame": "0s",
         "detection_off_control": None}


def setup(n, interval, procs):
    """A server (detection off when `interval` is None) with its printers
    printing; returns (url, agent tokens)."""
    d = tempfile.mkdtemp()
    port = 18300 + n
    url = f"http://127.0.0.1:{port}"
    env = {"PRINTGATE_BIND": f"127.0.0.1:{port}", "PRINTGATE_DATABASE_URL": f"sqlite://{d}/b.db?mode=rwc"}
    if interval is not None:
        ml = 18333 + n
        procs.append(start(["ml-sim", "--ml-bind", f"127.0.0.1:{ml}"], {}))
        wait(f"http://127.0.0.1:{ml}/hc/")
        env.update(PRINTGATE_ML_API_URL=f"http://127.0.0.1:{ml}", PRINTGATE_MIN_DETECTION_INTERVAL=interval,
                   PRINTGATE_DETECTION_CONCURRENCY="8", PRINTGATE_DETECTION_QUEUE="1024")
    procs.append(start(["serve"], env))
    wait(url + "/healthz")
    token = subprocess.run([BIN, "token", "--sub", "bench"], env=dict(os.environ, PRINTGATE_JWT_SECRET=SECRET),
                           capture_output=True, text=True, check=True).stdout.strip()
    auths = []
    for i in range(PRINTERS):
        r = gql(url, token, "mutation($n: String!) { createPrinter(input: {name: $n}) { authToken } }", {"n": f"p{i}"})
        auths.append(r["data"]["createPrinter"]["authToken"])
    procs.append(start(["simulate", "--url", url, "--interval", "1s", "--speed", "0.01", "--no-snapshots"]
                       + sum([["--token", a] for a in auths], []), {}))
    # Every printer printing (the even ones start after a few ticks).
    for _ in range(100):
        r = gql(url, token, "{ printers { status { state { flags { printing } } } } }")
        if all(p["status"] and p["status"]["state"]["flags"]["printing"] for p in r["data"]["printers"]):
            break
        time.sleep(0.2)
    return url, auths


def paced(url, auths, seconds, lat):
    """50 uploads a second (each printer once a second): the upload
    latency a live farm's agents see."""
    stop = time.time() + seconds

    def poster(i):
        k = 0
        next_at = time.time()
        conn = connection(url)
        while time.time() < stop:
            lat.append(post_pic(conn, auths[(i * 7 + k) % PRINTERS]))
            k += 1
            next_at += THREADS / PACED_PER_S
            time.sleep(max(0.0, next_at - time.time()))

    threads = [threading.Thread(target=poster, args=(i,)) for i in range(THREADS)]
    [t.start() for t in threads]
    [t.join() for t in threads]


def saturated(url, auths, detection):
    """Uploads as fast as they are answered; how many frames one instance
    judges a second."""
    judged0 = metric(url, 'printgate_detection_frames_total{outcome="judged"}')
    errors0 = metric(url, "printgate_ml_errors_total")
    lat, stop = [], time.time() + SECONDS

    def poster(i):
        conn = connection(url)
        while time.time() < stop:
            lat.append(post_pic(conn, auths[(i + len(lat)) % PRINTERS]))

    threads = [threading.Thread(target=poster, args=(i,)) for i in range(THREADS)]
    t0 = time.time()
    [t.start() for t in threads]
    [t.join() for t in threads]
    elapsed = time.time() - t0
    time.sleep(1)
    lat.sort()
    out = {"uploads_per_s": round(len(lat) / elapsed, 1), "upload_ms_p50": round(lat[len(lat) // 2], 2),
           "upload_ms_p99": round(lat[int(len(lat) * 0.99)], 2)}
    if detection:
        judged = metric(url, 'printgate_detection_frames_total{outcome="judged"}') - judged0
        out["frames_judged_per_s"] = round(judged / elapsed, 1)
        # A frame replaced by a newer snapshot before the ML service
        # fetched it is an ML error (the link names the old picture).
        out["ml_errors"] = metric(url, "printgate_ml_errors_total") - errors0
    return out


def main():
    procs = []
    try:
        servers = {mode: setup(n, interval, procs) for n, (mode, interval) in enumerate(MODES.items())}
        lat = {mode: [] for mode in MODES}
        for _ in range(ROUNDS):
            for mode, (url, auths) in servers.items():
                paced(url, auths, ROUND_SECONDS, lat[mode])
        out = {}
        for mode, (url, auths) in servers.items():
            ls = sorted(lat[mode])
            out[mode] = {"paced": {"uploads_per_s": PACED_PER_S, "upload_ms_p50": round(ls[len(ls) // 2], 2),
                                   "upload_ms_p99": round(ls[int(len(ls) * 0.99)], 2)},
                         "saturated": saturated(url, auths, MODES[mode] is not None)}
        return out
    finally:
        for p in procs:
            p.kill()
            p.wait()


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
