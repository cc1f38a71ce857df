"""printgate's webhooks verified by the stock Standard Webhooks libraries.

    python3 tests/webhooks/check.py target/debug/printgate

Runs the spec's test vector through the Python library, then starts a
printgate on a fresh SQLite file and the two receivers of
docs/integrations.md (Python and Node), and checks that every event printgate
sends verifies with the library, before and after a secret rotation.
Needs `pip install standardwebhooks` and `npm install` in this directory.
"""
import datetime
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from standardwebhooks.webhooks import Webhook

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, what, secs=20):
    deadline = time.time() + secs
    while time.time() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.1)
    sys.exit(f"FAIL: {what} within {secs} s")


def main():
    binary = os.path.abspath(sys.argv[1])
    # The spec's test vector, by the library.
    vector = Webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").sign(
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        datetime.datetime.fromtimestamp(1614265330, tz=datetime.timezone.utc),
        '{"test": 2432232314}',
    )
    assert vector == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", vector

    tmp = tempfile.mkdtemp()
    port = free_port()
    env = dict(
        os.environ,
        PRINTGATE_BIND=f"127.0.0.1:{port}",
        PRINTGATE_DATABASE_URL=f"sqlite://{tmp}/pg.db?mode=rwc",
        PRINTGATE_JWT_SECRET="webhook-check-secret-0123456789abcdef",
    )
    server = subprocess.Popen([binary, "serve"], env=env, stderr=subprocess.DEVNULL)
    procs = [server]
    try:
        base = f"http://127.0.0.1:{port}"

        def ready():
            try:
                return urllib.request.urlopen(f"{base}/readyz").status == 200
            except OSError:
                return False

        wait_for(ready, "printgate ready")
        token = subprocess.check_output(
            [binary, "token", "--sub", "alice", "--ttl", "10m"], env=env, text=True
        ).strip()

        def gql(query, variables=None):
            req = urllib.request.Request(
                f"{base}/graphql",
                data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
            )
            body = json.load(urllib.request.urlopen(req))
            assert "errors" not in body, body
            return body["data"]

        receivers = []
        for cmd in ([sys.executable, os.path.join(HERE, "receiver.py")], ["node", os.path.join(HERE, "receiver.mjs")]):
            rport = free_port()
            made = gql(
                "mutation($u: String!) { createWebhook(input: {url: $u, events: [PRINTER_CREATED, PRINTER_DELETED]}) { secret webhook { id } } }",
                {"u": f"http://127.0.0.1:{rport}/hook"},
            )["createWebhook"]
            out = open(os.path.join(tmp, f"{rport}.out"), "w+")
            p = subprocess.Popen(
                cmd,
                env=dict(os.environ, WEBHOOK_SECRET=made["secret"], PORT=str(rport)),
                stdout=out,
                cwd=HERE,
            )
            procs.append(p)
            receivers.append((cmd[0], made["webhook"]["id"], out))
        time.sleep(1.0)

        def lines(out):
            out.seek(0)
            return [json.loads(l) for l in out.read().splitlines() if l.strip()]

        printer = gql('mutation { createPrinter(input: {name: "Checked"}) { id } }')["createPrinter"]["id"]
        for _, wid, _ in receivers:
            gql("mutation($id: ID!) { sendTestWebhook(id: $id) }", {"id": wid})
            gql("mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }", {"id": wid})
        # Signed by the new secret and the old one: the receivers still hold the old.
        gql("mutation($id: ID!) { deletePrinter(id: $id) }", {"id": printer})
        for name, _, out in receivers:
            got = wait_for(lambda: len(lines(out)) >= 3 and lines(out), f"{name}: three verified events")
            assert not any("rejected" in e for e in got), (name, got)
            types = sorted(e["type"] for e in got)
            assert types == ["printer.created", "printer.deleted", "webhook.test"], (name, types)
            created = next(e for e in got if e["type"] == "printer.created")
            assert created["data"]["printer"]["name"] == "Checked", created
            print(f"ok: {name} receiver verified {types} with the standardwebhooks library")
    finally:
        for p in procs:
            p.kill()


if __name__ == "__main__":
    main()
