"""The seeds' flows (/work/shared/seeds: encoding and scanning cards) with Seam's official
Python SDK (PyPI ``seam``), against ``encoder-sim cloud``, the real bridge and emulated PN532
encoders. Run by tests/tests/sdk_flows.rs, which sets:

- SEAM_ENDPOINT, SEAM_API_KEY: the simulator and its token (the only things changed from
  what an integrator writes against Seam);
- SYSTEM_ID: the seeds' building; FRONT_DESK (a card on it), BACK_OFFICE (no card):
  encoder display names;
- RECORD: where to append every HTTP answer (for contract.py).

Exits non-zero (an AssertionError or the SDK's own exception) when a step does not behave
as the seeds show.
"""

import os
import sys

from seam import Seam, SeamActionAttemptFailedError

from recording import record_responses

ENDPOINT = os.environ["SEAM_ENDPOINT"]
building_system_id = os.environ["SYSTEM_ID"]

seam = Seam(api_key=os.environ["SEAM_API_KEY"], endpoint=ENDPOINT)
record_responses(seam, os.environ["RECORD"])


def step(text):
    print(f"python sdk: {text}", flush=True)


# Creating and encoding card-based credentials, step 1: a user and a card credential.
step("acs.users.create")
acs_user = seam.acs.users.create(
    acs_system_id="11111111-1111-1111-1111-111111111111",
    full_name="Jane Doe",
    email_address="jane@example.com",
)
assert acs_user.full_name == "Jane Doe", acs_user

step("acs.entrances.list")
room_101 = next(
    e
    for e in seam.acs.entrances.list(acs_system_id=building_system_id)
    if e.display_name == "Room 101"
)

step("acs.credentials.create")
credential = seam.acs.credentials.create(
    acs_user_id=acs_user.acs_user_id,
    access_method="card",
    # List the IDs of the entrances to which
    # you want to grant access.
    allowed_acs_entrance_ids=[room_101.acs_entrance_id],
    starts_at="2024-12-01T15:00:00.000Z",
    ends_at="2024-12-04T12:00:00.000Z",
)
assert credential.is_issued is False, credential
assert credential.access_method == "card", credential
assert credential.starts_at == "2024-12-01T15:00:00.000Z", credential

# Step 2: retrieve encoders.
step("acs.encoders.list")
encoders = seam.acs.encoders.list(acs_system_ids=[building_system_id])
by_name = {e.display_name: e for e in encoders}
encoder = by_name[os.environ["FRONT_DESK"]]
back_office = by_name[os.environ["BACK_OFFICE"]]
assert seam.acs.encoders.get(acs_encoder_id=encoder.acs_encoder_id).display_name == encoder.display_name

# Step 3: encode the card (the SDK waits for the action attempt by default).
step("acs.encoders.encode_credential")
encoding_action_attempt = seam.acs.encoders.encode_credential(
    acs_credential_id=credential.acs_credential_id,
    acs_encoder_id=encoder.acs_encoder_id,
)
assert encoding_action_attempt.status == "success", encoding_action_attempt
assert encoding_action_attempt.action_type == "ENCODE_CREDENTIAL", encoding_action_attempt

# Step 4: confirm by polling, then view the credential.
step("action_attempts.get")
done = seam.action_attempts.get(
    action_attempt_id=encoding_action_attempt.action_attempt_id
)
assert done.status == "success", done
assert done.result["is_issued"] is True, done
assert done.result["acs_credential_id"] == credential.acs_credential_id, done

step("acs.credentials.get")
issued = seam.acs.credentials.get(acs_credential_id=credential.acs_credential_id)
assert issued.is_issued is True, issued
assert issued.card_number, issued
assert issued.issued_at, issued
assert issued.card_number == done.result["card_number"], (issued, done)

# Scanning encoded cards.
step("acs.encoders.scan_credential")
scanning_action_attempt = seam.acs.encoders.scan_credential(
    acs_encoder_id=encoder.acs_encoder_id
)
scanned = seam.action_attempts.get(
    action_attempt_id=scanning_action_attempt.action_attempt_id
)
assert scanned.status == "success", scanned
on_encoder = scanned.result["acs_credential_on_encoder"]
on_seam = scanned.result["acs_credential_on_seam"]
assert on_encoder["card_number"] == issued.card_number, scanned
assert on_encoder["ends_at"] == "2024-12-04T12:00:00.000Z", scanned
assert on_encoder["created_at"] == issued.issued_at, scanned
assert on_seam["acs_credential_id"] == credential.acs_credential_id, scanned
assert scanned.result["warnings"] == [], scanned

step("acs.credentials.update ends_at")
seam.acs.credentials.update(
    acs_credential_id=credential.acs_credential_id, ends_at="2024-12-05T12:00:00.000Z"
)
assert (
    seam.acs.credentials.get(acs_credential_id=credential.acs_credential_id).ends_at
    == "2024-12-05T12:00:00.000Z"
)

step("scan again: out of sync")
rescanned = seam.acs.encoders.scan_credential(acs_encoder_id=encoder.acs_encoder_id)
warnings = rescanned.result["warnings"]
assert [w["warning_code"] for w in warnings] == ["acs_credential_on_encoder_out_of_sync"], rescanned
assert warnings[0]["warning_message"].endswith(": ends_at"), warnings

step("scan with no card")
try:
    seam.acs.encoders.scan_credential(acs_encoder_id=back_office.acs_encoder_id)
    raise AssertionError("a scan with no card on the encoder succeeded")
except SeamActionAttemptFailedError as e:
    assert e.code == "no_card_on_encoder", e
    no_card_attempt = e.action_attempt.action_attempt_id

# The sandbox routes: script the next encode or scan, with no bridge or card involved.
step("acs.encoders.simulate.next_credential_scan_will_succeed")
seam.acs.encoders.simulate.next_credential_scan_will_succeed(
    acs_encoder_id=back_office.acs_encoder_id,
    scenario="credential_on_encoder_needs_update",
    acs_credential_id_on_seam=credential.acs_credential_id,
)
simulated = seam.acs.encoders.scan_credential(acs_encoder_id=back_office.acs_encoder_id)
assert simulated.result["acs_credential_on_seam"]["acs_credential_id"] == credential.acs_credential_id
assert [w["warning_code"] for w in simulated.result["warnings"]] == [
    "acs_credential_on_encoder_out_of_sync"
], simulated

step("acs.encoders.simulate.next_credential_scan_will_fail")
seam.acs.encoders.simulate.next_credential_scan_will_fail(
    acs_encoder_id=back_office.acs_encoder_id
)
try:
    seam.acs.encoders.scan_credential(acs_encoder_id=back_office.acs_encoder_id)
    raise AssertionError("the scripted scan failure did not fail")
except SeamActionAttemptFailedError as e:
    assert e.code == "no_credential_on_encoder", e

second = seam.acs.credentials.create(
    acs_user_id=acs_user.acs_user_id,
    access_method="card",
    allowed_acs_entrance_ids=[room_101.acs_entrance_id],
)
step("acs.encoders.simulate.next_credential_encode_will_fail")
seam.acs.encoders.simulate.next_credential_encode_will_fail(
    acs_encoder_id=back_office.acs_encoder_id, error_code="uncategorized_error"
)
try:
    seam.acs.encoders.encode_credential(
        acs_credential_id=second.acs_credential_id,
        acs_encoder_id=back_office.acs_encoder_id,
    )
    raise AssertionError("the scripted encode failure did not fail")
except SeamActionAttemptFailedError as e:
    assert e.code == "uncategorized_error", e
assert seam.acs.credentials.get(acs_credential_id=second.acs_credential_id).is_issued is False

step("acs.encoders.simulate.next_credential_encode_will_succeed")
seam.acs.encoders.simulate.next_credential_encode_will_succeed(
    acs_encoder_id=back_office.acs_encoder_id
)
sandboxed = seam.acs.encoders.encode_credential(
    acs_credential_id=second.acs_credential_id,
    acs_encoder_id=back_office.acs_encoder_id,
)
assert sandboxed.status == "success", sandboxed
assert seam.acs.credentials.get(acs_credential_id=second.acs_credential_id).is_issued is True

step("action_attempts.list")
listed = seam.action_attempts.list(
    action_attempt_ids=[encoding_action_attempt.action_attempt_id, no_card_attempt]
)
assert [a.action_attempt_id for a in listed] == [
    encoding_action_attempt.action_attempt_id,
    no_card_attempt,
], listed
assert [a.status for a in listed] == ["success", "error"], listed

step("events.list")
events = seam.events.list(
    event_type="acs_credential.issued", acs_credential_id=credential.acs_credential_id
)
assert [e.event_type for e in events] == ["acs_credential.issued"], events

step("acs.credentials.list, acs.users.get, acs.systems.get")
assert len(seam.acs.credentials.list(acs_user_id=acs_user.acs_user_id)) == 2
assert seam.acs.users.get(acs_user_id=acs_user.acs_user_id).email_address == "jane@example.com"
assert seam.acs.systems.get(acs_system_id=building_system_id).acs_system_id == building_system_id

step("all steps passed")
sys.exit(0)
