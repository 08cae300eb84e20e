"""Records every HTTP answer an SDK client receives, for the contract check (contract.py).

Hooked onto the client after it is made, so the flows construct ``Seam`` exactly as the
seeds do. Each answer is one JSON line: method, path, status and the parsed body.
"""

import json
from urllib.parse import urlsplit


def record_responses(seam, path):
    """Appends every answer ``seam`` receives to the JSON-lines file at ``path``."""

    def hook(response):
        response.read()
        try:
            body = response.json()
        except ValueError:
            body = response.text
        line = {
            "sdk": "python",
            "method": response.request.method,
            "path": urlsplit(str(response.request.url)).path,
            "status": response.status_code,
            "body": body,
        }
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")

    seam.client.event_hooks["response"].append(hook)
