// The seeds' flows (/work/shared/seeds: encoding and scanning cards) with Seam's official
// JavaScript SDK (npm `seam`), against `encoder-sim cloud`, the real bridge and emulated PN532
// encoders. Run by tests/tests/sdk_flows.rs, which sets SEAM_ENDPOINT and SEAM_API_KEY (the
// only things changed from what an integrator writes against Seam), SYSTEM_ID, FRONT_DESK (a
// card on it), BACK_OFFICE (no card) and RECORD (every HTTP answer, for contract.py).
// Exits non-zero when a step does not behave as the seeds show.

import assert from 'node:assert/strict'
import { appendFileSync } from 'node:fs'

import { Seam, isSeamActionAttemptFailedError } from 'seam'

const endpoint = process.env.SEAM_ENDPOINT
const buildingSystemId = process.env.SYSTEM_ID

const seam = new Seam({ apiKey: process.env.SEAM_API_KEY, endpoint })

// Record every answer (hooked on after construction: the flow itself is the seeds').
const record = (response) => {
  appendFileSync(
    process.env.RECORD,
    JSON.stringify({
      sdk: 'javascript',
      method: response.config.method.toUpperCase(),
      path: new URL(response.config.url, endpoint).pathname,
      status: response.status,
      body: response.data,
    }) + '\n',
  )
}
seam.client.interceptors.response.use(
  (response) => {
    record(response)
    return response
  },
  (error) => {
    if (error.response) record(error.response)
    return Promise.reject(error)
  },
)

const step = (text) => console.log(`javascript sdk: ${text}`)

const expectFailure = async (promise, code) => {
  try {
    await promise
  } catch (error) {
    assert.ok(isSeamActionAttemptFailedError(error), String(error))
    assert.equal(error.code, code)
    return error.actionAttempt
  }
  assert.fail(`expected the action attempt to fail with ${code}`)
}

// Creating and encoding card-based credentials, step 1.
step('acs.users.create')
const acsUser = await seam.acs.users.create({
  acs_system_id: '11111111-1111-1111-1111-111111111111',
  full_name: 'Jane Doe',
  email_address: 'jane@example.com',
})
assert.equal(acsUser.full_name, 'Jane Doe')

step('acs.entrances.list')
const room101 = (
  await seam.acs.entrances.list({ acs_system_id: buildingSystemId })
).find((e) => e.display_name === 'Room 101')

step('acs.credentials.create')
const credential = await seam.acs.credentials.create({
  acs_user_id: acsUser.acs_user_id,
  access_method: 'card',
  allowed_acs_entrance_ids: [
    // List the IDs of the entrances to which
    // you want to grant access.
    room101.acs_entrance_id,
  ],
  starts_at: '2024-12-01T15:00:00.000Z',
  ends_at: '2024-12-04T12:00:00.000Z',
})
assert.equal(credential.is_issued, false)
assert.equal(credential.ends_at, '2024-12-04T12:00:00.000Z')

// Step 2: retrieve encoders.
step('acs.encoders.list')
const encoders = await seam.acs.encoders.list({
  acs_system_ids: [buildingSystemId],
})
const encoder = encoders.find((e) => e.display_name === process.env.FRONT_DESK)
const backOffice = encoders.find((e) => e.display_name === process.env.BACK_OFFICE)
assert.ok(encoder && backOffice, JSON.stringify(encoders))
const got = await seam.acs.encoders.get({ acs_encoder_id: encoder.acs_encoder_id })
assert.equal(got.display_name, encoder.display_name)

// Step 3: encode the card (the SDK waits for the action attempt by default).
step('acs.encoders.encodeCredential')
const encodingActionAttempt = await seam.acs.encoders.encodeCredential({
  acs_credential_id: credential.acs_credential_id,
  acs_encoder_id: encoder.acs_encoder_id,
})
assert.equal(encodingActionAttempt.status, 'success')
assert.equal(encodingActionAttempt.action_type, 'ENCODE_CREDENTIAL')

// Step 4: confirm by polling, then view the credential.
step('actionAttempts.get')
const done = await seam.actionAttempts.get({
  action_attempt_id: encodingActionAttempt.action_attempt_id,
})
assert.equal(done.status, 'success')
assert.equal(done.result.is_issued, true)

step('acs.credentials.get')
const issued = await seam.acs.credentials.get({
  acs_credential_id: credential.acs_credential_id,
})
assert.equal(issued.is_issued, true)
assert.ok(issued.card_number)
assert.ok(issued.issued_at)
assert.equal(issued.card_number, done.result.card_number)

// Scanning encoded cards.
step('acs.encoders.scanCredential')
const scanningActionAttempt = await seam.acs.encoders.scanCredential({
  acs_encoder_id: encoder.acs_encoder_id,
})
const scanned = await seam.actionAttempts.get({
  action_attempt_id: scanningActionAttempt.action_attempt_id,
})
assert.equal(scanned.status, 'success')
const onEncoder = scanned.result.acs_credential_on_encoder
assert.equal(onEncoder.card_number, issued.card_number)
assert.equal(onEncoder.created_at, issued.issued_at)
assert.equal(scanned.result.acs_credential_on_seam.acs_credential_id, credential.acs_credential_id)
assert.deepEqual(scanned.result.warnings, [])

step('acs.credentials.update ends_at')
await seam.acs.credentials.update({
  acs_credential_id: credential.acs_credential_id,
  ends_at: '2024-12-05T12:00:00.000Z',
})

step('scan again: out of sync')
const rescanned = await seam.acs.encoders.scanCredential({
  acs_encoder_id: encoder.acs_encoder_id,
})
assert.deepEqual(
  rescanned.result.warnings.map((w) => w.warning_code),
  ['acs_credential_on_encoder_out_of_sync'],
)
assert.match(rescanned.result.warnings[0].warning_message, /: ends_at$/)

step('scan with no card')
const noCard = await expectFailure(
  seam.acs.encoders.scanCredential({ acs_encoder_id: backOffice.acs_encoder_id }),
  'no_card_on_encoder',
)

// The sandbox routes: script the next encode or scan, with no bridge or card involved.
step('acs.encoders.simulate.nextCredentialScanWillSucceed')
await seam.acs.encoders.simulate.nextCredentialScanWillSucceed({
  acs_encoder_id: backOffice.acs_encoder_id,
  scenario: 'credential_does_not_exist_on_seam',
})
const unknownCard = await seam.acs.encoders.scanCredential({
  acs_encoder_id: backOffice.acs_encoder_id,
})
assert.equal(unknownCard.result.acs_credential_on_seam, null)
assert.deepEqual(
  unknownCard.result.warnings.map((w) => w.warning_code),
  ['acs_credential_on_seam_not_found'],
)

step('acs.encoders.simulate.nextCredentialScanWillFail')
await seam.acs.encoders.simulate.nextCredentialScanWillFail({
  acs_encoder_id: backOffice.acs_encoder_id,
  error_code: 'action_attempt_expired',
})
await expectFailure(
  seam.acs.encoders.scanCredential({ acs_encoder_id: backOffice.acs_encoder_id }),
  'action_attempt_expired',
)

const second = await seam.acs.credentials.create({
  acs_user_id: acsUser.acs_user_id,
  access_method: 'card',
  allowed_acs_entrance_ids: [room101.acs_entrance_id],
})
step('acs.encoders.simulate.nextCredentialEncodeWillFail')
await seam.acs.encoders.simulate.nextCredentialEncodeWillFail({
  acs_encoder_id: backOffice.acs_encoder_id,
})
await expectFailure(
  seam.acs.encoders.encodeCredential({
    acs_credential_id: second.acs_credential_id,
    acs_encoder_id: backOffice.acs_encoder_id,
  }),
  'no_credential_on_encoder',
)

step('acs.encoders.simulate.nextCredentialEncodeWillSucceed')
await seam.acs.encoders.simulate.nextCredentialEncodeWillSucceed({
  acs_encoder_id: backOffice.acs_encoder_id,
  scenario: 'credential_is_issued',
})
const sandboxed = await seam.acs.encoders.encodeCredential({
  acs_credential_id: second.acs_credential_id,
  acs_encoder_id: backOffice.acs_encoder_id,
})
assert.equal(sandboxed.status, 'success')
assert.equal(sandboxed.result.is_issued, true)

step('actionAttempts.list')
const listed = await seam.actionAttempts.list({
  action_attempt_ids: [encodingActionAttempt.action_attempt_id, noCard.action_attempt_id],
})
assert.deepEqual(
  listed.map((a) => a.status),
  ['success', 'error'],
)

step('events.list')
const events = await seam.events.list({
  event_types: ['acs_credential.issued'],
})
assert.deepEqual(
  events.map((e) => e.acs_credential_id).sort(),
  [credential.acs_credential_id, second.acs_credential_id].sort(),
)

step('acs.systems.list, acs.users.list, acs.credentials.list')
assert.equal((await seam.acs.systems.list()).length, 1)
assert.equal((await seam.acs.users.list({ acs_system_id: buildingSystemId })).length, 1)
assert.equal((await seam.acs.credentials.list({ acs_user_id: acsUser.acs_user_id })).length, 2)

step('all steps passed')
