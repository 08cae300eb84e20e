"""The contract test: encoder-sim cloud's answers against Seam's OpenAPI document.

Usage:
  contract.py OPENAPI.json check RECORD.jsonl...   validate recorded SDK traffic
  contract.py OPENAPI.json probe ENDPOINT TOKEN     ask every served route directly

OPENAPI.json is the document pinned in tests/sdk/package-lock.json (npm @seamapi/types,
lib/seam/connect/openapi.js, export ``openapi``; written by ../js/openapi.mjs).

Every 200 answer is validated with openapi-schema-validator (OpenAPI 3.0 semantics:
``nullable``, formats) against the document's response schema for its route and method.
The document gives error answers no schema, so they are validated against Seam's error
envelope ``{"error": {"type", "message"}, "ok": false}`` (ERROR_ENVELOPE below, as the
issue and Seam's SDKs read it). ``probe`` also checks methods: each served route answers
every method the document lists for it (never 405), the same JSON for GET with query
parameters as for POST with a body, and 405 for a method the document does not list;
then 401 without or with a wrong token, 404 for an unknown object and an unknown route,
400 naming the missing parameter.

Prints a per-route count of validated answers; exits 1 with every violation listed.
"""

import json
import sys
from collections import Counter

from urllib.parse import urlsplit

from jsonschema import Draft7Validator
from jsonschema.exceptions import best_match
from openapi_schema_validator import OAS30Validator, oas30_format_checker

# The routes encoder-sim cloud serves (crates/sim/src/cloud/api.rs, router()).
SERVED = [
    "/acs/systems/list",
    "/acs/systems/get",
    "/acs/entrances/list",
    "/acs/users/create",
    "/acs/users/get",
    "/acs/users/list",
    "/acs/credentials/create",
    "/acs/credentials/get",
    "/acs/credentials/list",
    "/acs/credentials/update",
    "/acs/encoders/list",
    "/acs/encoders/get",
    "/acs/encoders/encode_credential",
    "/acs/encoders/scan_credential",
    "/acs/encoders/simulate/next_credential_encode_will_succeed",
    "/acs/encoders/simulate/next_credential_encode_will_fail",
    "/acs/encoders/simulate/next_credential_scan_will_succeed",
    "/acs/encoders/simulate/next_credential_scan_will_fail",
    "/action_attempts/get",
    "/action_attempts/list",
    "/events/get",
    "/events/list",
]

ERROR_ENVELOPE = {
    "type": "object",
    "required": ["error", "ok"],
    "properties": {
        "ok": {"const": False},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string", "minLength": 1},
                "message": {"type": "string", "minLength": 1},
            },
        },
    },
}

SYSTEM = "11111111-1111-1111-1111-111111111111"


def prepared(doc):
    """The document as OpenAPI 3.0 validators read it, with Seam's intent kept."""
    return nullable_unions(without_discriminators(doc))


def nullable_unions(node):
    """``nullable: true`` beside a ``oneOf``/``anyOf``/``allOf`` with no ``type`` allows null.

    OpenAPI 3.0.3 gives ``nullable`` effect only next to ``type``, so a validator reads
    ``{"nullable": true, "oneOf": [...]}`` as "null must match a branch". Seam means null
    is allowed (``acs_credential_on_seam`` of a scanned card Seam does not know; the SDK's
    own types make it nullable), so such a schema becomes ``anyOf: [null, itself]``.
    """
    if isinstance(node, list):
        return [nullable_unions(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: nullable_unions(v) for k, v in node.items()}
    if node.get("nullable") is True and "type" not in node and (
        "oneOf" in node or "anyOf" in node or "allOf" in node
    ):
        inner = {k: v for k, v in node.items() if k != "nullable"}
        return {"anyOf": [{"enum": [None]}, inner]}
    return node


def without_discriminators(node):
    """The document without its ``discriminator`` hints.

    Seam's document names a discriminator property on its ``oneOf`` unions without a
    ``mapping``; openapi-schema-validator then looks the value up as a schema name
    (``#/components/schemas/needs_to_be_reissued``) and fails. A discriminator only
    speeds up choosing the branch: ``oneOf`` itself still requires exactly one branch to
    match, so validation is as strict without the hints.
    """
    if isinstance(node, dict):
        return {k: without_discriminators(v) for k, v in node.items() if k != "discriminator"}
    if isinstance(node, list):
        return [without_discriminators(v) for v in node]
    return node


class Contract:
    def __init__(self, openapi_path):
        with open(openapi_path, encoding="utf-8") as f:
            self.doc = prepared(json.load(f))
        self.problems = []
        self.validated = Counter()
        self.validators = {}
        self.envelope = Draft7Validator(ERROR_ENVELOPE)

    def methods(self, path):
        return sorted(self.doc["paths"].get(path, {}).keys())

    def validator(self, path, method):
        key = (path, method)
        if key not in self.validators:
            op = self.doc["paths"][path][method]
            schema = op["responses"]["200"]["content"]["application/json"]["schema"]
            # $refs point into #/components: resolve them against this root.
            root = dict(schema, components=self.doc["components"])
            self.validators[key] = OAS30Validator(root, format_checker=oas30_format_checker)
        return self.validators[key]

    def check(self, method, path, status, body, origin):
        method = method.lower()
        path = urlsplit(path).path
        where = f"{origin} {method.upper()} {path} -> {status}"
        if path not in self.doc["paths"]:
            self.problems.append(f"{where}: not a route of Seam's API")
            return
        if method not in self.doc["paths"][path]:
            if status != 405:
                self.problems.append(f"{where}: Seam does not list {method.upper()} here")
            return
        if status == 200:
            errors = sorted(
                self.validator(path, method).iter_errors(body), key=lambda e: list(e.path)
            )
        else:
            errors = list(self.envelope.iter_errors(body))
        for e in errors[:5]:
            # For a oneOf, the branch that came closest says what is wrong.
            e = best_match([e, *e.context]) if e.context else e
            at = "/".join(str(p) for p in e.absolute_path)
            self.problems.append(f"{where}: at /{at}: {e.message[:300]}")
        if not errors:
            self.validated[f"{method.upper()} {path} {status}"] += 1

    def report(self):
        for line in sorted(self.validated):
            print(f"  {self.validated[line]:4d}  {line}")
        total = sum(self.validated.values())
        print(f"contract: {total} answers valid, {len(self.problems)} problems")
        for p in self.problems:
            print(f"PROBLEM {p}")
        return 1 if self.problems or total == 0 else 0


def check_records(contract, files):
    for name in files:
        with open(name, encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                contract.check(r["method"], r["path"], r["status"], r["body"], r["sdk"])


def stable(answer):
    """An answer without what the bridge may change between two requests (an encoder's
    live ``encoder_bridge_metadata``: card present, online)."""
    status, body = answer
    if isinstance(body, dict):
        for encoder in body.get("acs_encoders", []):
            encoder.pop("encoder_bridge_metadata", None)
    return status, body


def probe(contract, endpoint, token):
    import httpx

    auth = {"Authorization": f"Bearer {token}"}
    client = httpx.Client(base_url=endpoint, headers=auth, timeout=15)

    def ask(method, path, origin, **kwargs):
        r = client.request(method, path, **kwargs)
        try:
            body = r.json()
        except ValueError:
            body = r.text
        contract.check(method, path, r.status_code, body, origin)
        return r.status_code, body

    for path in SERVED:
        listed = contract.methods(path)
        if not listed:
            contract.problems.append(f"{path}: served, but not in Seam's document")
            continue
        for method in listed:
            status, body = ask(method.upper(), path, "probe")
            if status == 405:
                contract.problems.append(f"{path}: {method.upper()} answered 405")
            if status == 400 and "missing field" not in json.dumps(body) and "must" not in json.dumps(body):
                contract.problems.append(f"{path}: 400 without naming a parameter: {body}")
        for method in ("PUT", "DELETE"):
            status, _ = ask(method, path, "probe")
            if status != 405:
                contract.problems.append(f"{path}: {method} answered {status}, not 405")
        if "get" not in listed and path.endswith(("/create", "/encode_credential")):
            status, _ = ask("GET", path, "probe")
            if status != 405:
                contract.problems.append(f"{path}: GET answered {status}, not 405")

    # GET with query parameters answers as POST with a body (arrays as repeated keys, one
    # element too; the SDK's own _strict ignored).
    for path, query, body in (
        ("/acs/encoders/list", f"acs_system_ids={SYSTEM}&_strict=true", {"acs_system_ids": [SYSTEM]}),
        ("/acs/entrances/list", f"acs_system_id={SYSTEM}&limit=10", {"acs_system_id": SYSTEM, "limit": 10}),
        ("/events/list", "event_types=acs_encoder.added&event_types=acs_credential.issued", {"event_types": ["acs_encoder.added", "acs_credential.issued"]}),
    ):
        got = stable(ask("GET", f"{path}?{query}", "probe"))
        posted = stable(ask("POST", path, "probe", json=body))
        if got != posted or got[0] != 200:
            contract.problems.append(f"{path}: GET ?{query} answered {got}, POST {posted}")

    # The get routes the flows do not call, with ids that exist.
    ask("POST", "/acs/systems/get", "probe", json={"acs_system_id": SYSTEM})
    _, events = ask("GET", "/events/list", "probe")
    for event in events.get("events", [])[:1]:
        status, answer = ask("GET", f"/events/get?event_id={event['event_id']}", "probe")
        if status != 200 or answer.get("event") != event:
            contract.problems.append(f"/events/get answered {status} {answer}, not {event}")

    # 401 as Seam answers it.
    for headers in ({}, {"Authorization": "Bearer seam_wrong"}):
        r = httpx.post(f"{endpoint}/acs/systems/list", headers=headers, json={})
        contract.check("POST", "/acs/systems/list", r.status_code, r.json(), "probe 401")
        if r.status_code != 401 or r.json()["error"]["type"] != "unauthorized":
            contract.problems.append(f"bad token answered {r.status_code} {r.text}")
    # 404 with the resource type, and for an unknown route.
    for path, body, kind in (
        ("/acs/credentials/get", {"acs_credential_id": "66666666-6666-6666-6666-666666666666"}, "acs_credential_not_found"),
        ("/acs/encoders/get", {"acs_encoder_id": "33333333-4444-5555-6666-777777777777"}, "acs_encoder_not_found"),
        ("/action_attempts/get", {"action_attempt_id": "11111111-2222-3333-4444-555555555555"}, "action_attempt_not_found"),
    ):
        status, answer = ask("POST", path, "probe 404", json=body)
        if status != 404 or answer["error"]["type"] != kind:
            contract.problems.append(f"{path}: unknown id answered {status} {answer}")
    r = client.post("/acs/no_such_route", json={})
    if r.status_code != 404 or r.json()["error"]["type"] != "endpoint_not_found":
        contract.problems.append(f"unknown route answered {r.status_code} {r.text}")
    # 400 naming the parameter, for a GET too.
    status, answer = ask("GET", "/acs/credentials/get", "probe 400")
    if status != 400 or "acs_credential_id" not in answer["error"]["message"]:
        contract.problems.append(f"missing acs_credential_id answered {status} {answer}")
    status, answer = ask("POST", "/acs/users/create", "probe 400", content=b"{not json")
    if status != 400 or answer["error"]["type"] != "invalid_input":
        contract.problems.append(f"a body that is not JSON answered {status} {answer}")


def main(argv):
    if len(argv) < 4 or argv[2] not in ("check", "probe"):
        print(__doc__)
        return 2
    contract = Contract(argv[1])
    if argv[2] == "check":
        check_records(contract, argv[3:])
    else:
        probe(contract, argv[3], argv[4])
    return contract.report()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
