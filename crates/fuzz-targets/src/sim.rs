//! `sim_http`, `sim_ws`: what the cloud simulator reads from its clients
//! ([`encoder_sim::cloud::Offline`]): HTTP request bodies and bridge websocket messages.

use encoder_sim::cloud::Offline;

use crate::input::Input;

/// The API paths, and one that is not.
const PATHS: [&str; 14] = [
    "/acs/systems/list",
    "/acs/entrances/list",
    "/acs/users/create",
    "/acs/credentials/create",
    "/acs/credentials/get",
    "/acs/credentials/list",
    "/acs/credentials/update",
    "/acs/encoders/list",
    "/acs/encoders/get",
    "/acs/encoders/encode_credential",
    "/acs/encoders/scan_credential",
    "/action_attempts/get",
    "/events/list",
    "/nowhere",
];

/// Requests: each is a path index byte and a length-prefixed body (up to 255 bytes), run in
/// order on one simulated cloud (so a created user or credential can be used by the next).
///
/// Properties: every answer is a JSON object or an error with a 4xx status and a machine
/// name; an unknown path is not an operation.
pub fn sim_http(data: &[u8]) {
    let cloud = Offline::new();
    let mut input = Input::new(data);
    let mut requests = 0;
    while !input.is_empty() && requests < 16 {
        requests += 1;
        let path = PATHS
            .get(usize::from(input.byte()) % PATHS.len())
            .copied()
            .unwrap_or("/nowhere");
        let body = input.slice(255);
        match cloud.request(path, body) {
            None => assert_eq!(path, "/nowhere"),
            Some(Ok(answer)) => assert!(answer.is_object() || answer.is_array(), "{answer}"),
            Some(Err(e)) => {
                assert!((400..500).contains(&e.status), "{e:?}");
                assert!(!e.kind.is_empty());
            }
        }
    }
}

/// Websocket text frames from one bridge: length-prefixed (two bytes, up to 4 KiB) lossy
/// UTF-8 texts, in order on one connection.
///
/// Properties: every frame the cloud sends back is a JSON object with a string `type`.
pub fn sim_ws(data: &[u8]) {
    let mut cloud = Offline::new();
    let mut input = Input::new(data);
    while !input.is_empty() {
        let n = usize::from(input.u16()) % 4096;
        let text = String::from_utf8_lossy(input.bytes(n));
        let (replies, closed) = cloud.bridge_text(&text);
        for reply in &replies {
            let value: serde_json::Value = serde_json::from_str(reply).unwrap_or_default();
            assert!(
                value
                    .get("type")
                    .and_then(serde_json::Value::as_str)
                    .is_some(),
                "{reply}"
            );
        }
        if closed {
            break;
        }
    }
}
