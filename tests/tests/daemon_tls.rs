//! TLS between the bridge and the cloud with a private CA made in the test (rcgen): the
//! `encoder-sim cloud --tls-cert/--tls-key` binary, the real `encoder-bridge` binary.
//! Accepted with `cloud.ca_file`; refused without it, for a wrong host name and for an expired
//! certificate, each with the hint that names the fix (doctor and daemon); a refused
//! certificate is retried at the longest backoff; the seeds' flow once over `wss://`.

use std::process::Command;
use std::time::Duration;

use encoder_tests::daemon::{Setup, TOKEN};
use encoder_tests::e2e::Cloud;
use encoder_tests::pki::Pki;
use encoder_tests::{Rig, binary};
use serde_json::Value;

/// The name the certificates are issued for; it resolves to 127.0.0.1.
const HOST: &str = "localhost";

/// `doctor --json` with `setup`'s configuration: the check named `name`.
fn doctor_check(setup: &Setup, name: &str) -> Value {
    let out = Command::new(binary("encoder-bridge"))
        .args(["doctor", "--json", "--config"])
        .arg(setup.config())
        .output()
        .expect("doctor");
    let json: Value = serde_json::from_slice(&out.stdout).expect("doctor --json");
    json["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no {name} check in {json:#}"))
}

/// A private CA and the simulator serving TLS with a certificate it signed for [`HOST`].
fn trusted_cloud() -> (Pki, Cloud) {
    let pki = Pki::new("encoder-bridge test CA");
    let good = pki.server("good", HOST, false);
    let cloud = Cloud::start_tls(&pki, &good, HOST);
    (pki, cloud)
}

fn setup_for(cloud: &Cloud, ca_file: Option<&std::path::Path>) -> Setup {
    let setup = Setup::new(&cloud.ws_url(), &[], 2.0, TOKEN);
    if let Some(ca) = ca_file {
        setup.cloud_option(&format!("ca_file = \"{}\"", ca.display()));
    }
    setup
}

#[test]
fn doctor_accepts_the_private_ca_and_names_each_certificate_error() {
    let (pki, cloud) = trusted_cloud();
    assert!(cloud.ws_url().starts_with("wss://localhost:"));

    // With cloud.ca_file: reachable, token accepted.
    let trusted = setup_for(&cloud, Some(&pki.ca_file()));
    let check = doctor_check(&trusted, "cloud");
    assert_eq!(check["ok"], true, "{check:#}");
    assert_eq!(doctor_check(&trusted, "token")["ok"], true);

    // Without it: unknown issuer, and the fix names cloud.ca_file.
    let untrusted = setup_for(&cloud, None);
    let check = doctor_check(&untrusted, "tls");
    assert_eq!(check["ok"], false, "{check:#}");
    assert!(
        check["message"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown issuer"),
        "{check:#}"
    );
    assert!(
        check["fix"]
            .as_str()
            .unwrap_or_default()
            .contains("cloud.ca_file"),
        "{check:#}"
    );

    // ca_only with the CA: still accepted (the system roots are not needed).
    trusted.cloud_option("ca_only = true");
    assert_eq!(doctor_check(&trusted, "cloud")["ok"], true);

    // A certificate for another name.
    let other = pki.server("other", "cloud.example.invalid", false);
    let cloud = Cloud::start_tls(&pki, &other, HOST);
    let check = doctor_check(&setup_for(&cloud, Some(&pki.ca_file())), "tls");
    assert_eq!(check["ok"], false, "{check:#}");
    assert!(
        check["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not valid for this host name"),
        "{check:#}"
    );
    assert!(
        check["fix"]
            .as_str()
            .unwrap_or_default()
            .contains("cloud.url must name the host"),
        "{check:#}"
    );

    // An expired certificate.
    let expired = pki.server("expired", HOST, true);
    let cloud = Cloud::start_tls(&pki, &expired, HOST);
    let check = doctor_check(&setup_for(&cloud, Some(&pki.ca_file())), "tls");
    assert_eq!(check["ok"], false, "{check:#}");
    assert!(
        check["message"]
            .as_str()
            .unwrap_or_default()
            .contains("expired"),
        "{check:#}"
    );
    assert!(
        check["fix"]
            .as_str()
            .unwrap_or_default()
            .contains("timedatectl"),
        "{check:#}"
    );

    // A ca_file that holds no certificate.
    let bogus = trusted.dir().join("bogus.pem");
    std::fs::write(&bogus, "not a certificate\n").expect("write");
    let check = doctor_check(&setup_for(&cloud, Some(&bogus)), "tls");
    assert_eq!(check["ok"], false, "{check:#}");
    assert!(
        check["message"]
            .as_str()
            .unwrap_or_default()
            .contains("holds no certificate"),
        "{check:#}"
    );
}

/// The daemon refuses an untrusted certificate, logs it as an error with its hint and waits
/// the longest delay (30 s) before the next try; `status` shows it as the link's last error.
#[test]
fn the_daemon_retries_a_refused_certificate_at_the_longest_backoff() {
    let (_pki, cloud) = trusted_cloud();
    let rig = Rig::start(1);
    let setup = setup_for(&cloud, None);
    let bridge = setup.spawn(&rig.env());
    let refused = bridge
        .wait_log(Duration::from_secs(15), |v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("certificate refused"))
        })
        .expect("the refusal is logged");
    assert_eq!(refused["level"], "ERROR", "{refused}");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(message.contains("unknown issuer"), "{message}");
    assert!(message.contains("cloud.ca_file"), "{message}");
    let retry: f64 = refused["retry_in_s"]
        .as_f64()
        .or_else(|| refused["retry_in_s"].as_str().and_then(|s| s.parse().ok()))
        .expect("retry_in_s");
    assert!(
        retry >= 29.0,
        "the longest delay, not a tight loop: {retry}"
    );
    let out = Command::new(binary("encoder-bridge"))
        .args(["status", "--json", "--socket"])
        .arg(setup.socket())
        .output()
        .expect("status");
    assert_eq!(out.status.code(), Some(1));
    let status: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(status["cloud"]["connected"], false, "{status:#}");
    assert!(
        status["cloud"]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown issuer"),
        "{status:#}"
    );
}

/// The seeds' encode and scan, once, over `wss://` with the private CA in `cloud.ca_file`.
#[test]
fn seed_flow_over_wss_with_a_private_ca() {
    let (pki, cloud) = trusted_cloud();
    let rig = Rig::start(1);
    let setup = Setup::new(&cloud.ws_url(), &[Rig::reader_name(0)], 5.0, TOKEN);
    setup.cloud_option(&format!("ca_file = \"{}\"", pki.ca_file().display()));
    let _bridge = setup.spawn(&rig.env());
    let encoders = cloud.encoders(1);
    let encoder = encoders[0]["acs_encoder_id"]
        .as_str()
        .expect("acs_encoder_id")
        .to_owned();
    let credential = cloud.seed_credential();
    let _card = rig.card(0, &["--type", "classic-1k", "--uid", "04A1B2C3"]);
    let result = cloud.succeeded(&cloud.encode(&encoder, &credential));
    assert_eq!(result["acs_credential_id"], credential.as_str(), "{result}");
    assert_eq!(result["is_issued"], true, "{result}");
    let scanned = cloud.succeeded(&cloud.scan(&encoder));
    assert_eq!(
        scanned["acs_credential_on_encoder"]["acs_credential_id"],
        credential.as_str(),
        "{scanned}"
    );
}
