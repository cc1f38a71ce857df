"""A webhook receiver for printgate, verified with the stock library.

    pip install standardwebhooks
    WEBHOOK_SECRET=whsec_... PORT=8788 python3 receiver.py

Prints each verified event as one JSON line; answers 401 to anything that
does not verify (bad signature, or a timestamp more than 5 minutes off).
"""
import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

webhook = Webhook(os.environ["WEBHOOK_SECRET"])
seen = set()  # webhook-id: the same on every retry of one event


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        try:
            event = webhook.verify(body, dict(self.headers))
        except (WebhookVerificationError, ValueError) as e:  # ValueError: malformed base64
            print(json.dumps({"rejected": str(e)}), flush=True)
            self.send_response(401)
            self.end_headers()
            return
        event_id = self.headers["webhook-id"]
        if event_id not in seen:  # at-least-once: act on each event once
            seen.add(event_id)
            print(json.dumps({"id": event_id, **event}), flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8788"))), Receiver).serve_forever()
