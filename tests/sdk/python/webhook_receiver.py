"""A small local HTTP server that receives encoder-sim cloud's webhooks and verifies each
with the Python SDK's ``SeamWebhook(secret).verify(payload, headers)`` (Svix signatures).

Usage: webhook_receiver.py SECRET EXPECTED_EVENT_TYPE TIMEOUT_SECS

Prints ``listening on PORT`` once bound (port 0: the kernel picks), then
``verified EVENT_TYPE EVENT_ID`` per delivery. Also checks that the same delivery with one
byte of the body changed, or checked with another secret, is refused. Exits 0 once an event
of EXPECTED_EVENT_TYPE was verified; 1 on any refused delivery or at the timeout.
"""

import base64
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from seam import SeamWebhook, SeamWebhookVerificationError

secret, expected, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
webhook = SeamWebhook(secret)
other = SeamWebhook("whsec_" + base64.b64encode(b"not the simulator's secret!!").decode())
outcome = {"code": None}
done = threading.Event()


def finish(code, line):
    print(line, flush=True)
    if outcome["code"] is None:
        outcome["code"] = code
    done.set()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        payload = self.rfile.read(length).decode("utf-8")
        headers = {k: v for k, v in self.headers.items()}
        try:
            event = webhook.verify(payload, headers)
        except Exception as e:  # the SDK's refusal, or an unreadable event
            self.send_response(400)
            self.end_headers()
            finish(1, f"refused: {type(e).__name__}: {e}; headers {headers}")
            return
        tampered = payload.replace("acs_", "acx_", 1)
        for check, body in ((webhook, tampered), (other, payload)):
            try:
                check.verify(body, headers)
                finish(1, "a tampered delivery or a wrong secret was accepted")
            except SeamWebhookVerificationError:
                pass
        self.send_response(204)
        self.end_headers()
        print(f"verified {event.event_type} {event.event_id}", flush=True)
        if event.event_type == expected:
            finish(0, f"got {expected}")

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
print(f"listening on {server.server_address[1]}", flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
if not done.wait(timeout):
    print(f"no verified {expected} within {timeout} s", flush=True)
    sys.exit(1)
sys.exit(outcome["code"])
