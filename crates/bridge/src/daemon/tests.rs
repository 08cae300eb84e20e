//! The daemon in-process: [`serve`] with an in-memory store directory, a cloud on the far end
//! of an in-memory pipe (the real websocket code on both ends), made-up encoders, and tokio's
//! paused clock, so keepalive, reconnect backoff, lease renewal and shutdown are checked in
//! virtual seconds, without ports or sleeps. The process-level tests (tests/tests/daemon_*.rs)
//! check the same against the real binary, pcscd and the PN532 emulator.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use encoder_hal::pcsc::ReaderEvent;
use encoder_hal::{Canceller, CardSession, Encoder, EncoderKind, ErrorKind, HalError};
use encoder_protocol::keys::{MasterKey, SiteKeys};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::DuplexStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::hardware::{Hardware, ReaderNow, Watch};
use super::*;
use crate::cloud::link::{BACKOFF_MAX, ws_config};
use crate::runner::EncoderFactory;

/// Connections end up with the test, which plays the cloud; `refuse` makes the next connects
/// fail as a refused token would.
#[derive(Clone)]
struct Pipe {
    to_cloud: mpsc::UnboundedSender<DuplexStream>,
    refuse: Arc<std::sync::atomic::AtomicUsize>,
}

impl Connect for Pipe {
    type Stream = DuplexStream;

    async fn connect(&self) -> Result<WebSocketStream<DuplexStream>, ConnectError> {
        use std::sync::atomic::Ordering;
        if self
            .refuse
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(ConnectError::Unauthorized(401));
        }
        let (bridge, cloud) = tokio::io::duplex(1 << 20);
        self.to_cloud
            .send(cloud)
            .map_err(|_| ConnectError::Transport("the test cloud is gone".into()))?;
        Ok(WebSocketStream::from_raw_socket(bridge, Role::Client, Some(ws_config())).await)
    }
}

/// An encoder that never sees a card: waits until cancelled (or its wait ends).
struct Empty {
    canceller: Canceller,
}

impl Encoder for Empty {
    fn name(&self) -> &'static str {
        "/dev/test-encoder"
    }
    fn kind(&self) -> EncoderKind {
        EncoderKind::Pn532
    }
    fn wait_for_card(&mut self, timeout: Duration) -> Result<bool, HalError> {
        if timeout.is_zero() || self.canceller.sleep(timeout) {
            Ok(false)
        } else {
            Err(HalError::new(ErrorKind::Cancelled, "cancelled"))
        }
    }
    fn open_session(&mut self) -> Result<Box<dyn CardSession + '_>, HalError> {
        Err(HalError::new(ErrorKind::NoCard, "no card"))
    }
    fn canceller(&self) -> Canceller {
        self.canceller.clone()
    }
}

/// No pcscd; PN532 encoders that never see a card.
struct Machine;

impl Hardware for Machine {
    fn factory(&self, _wanted: &Wanted) -> EncoderFactory {
        Box::new(|| {
            Box::new(Empty {
                canceller: Canceller::new(),
            })
        })
    }
    fn readers(&self) -> HashMap<String, ReaderNow> {
        HashMap::new()
    }
    fn watch(&self, _forward: Box<dyn Fn(ReaderEvent) -> bool + Send>) -> Option<Watch> {
        None
    }
}

struct Harness {
    connections: mpsc::UnboundedReceiver<DuplexStream>,
    /// The control socket's side of the event loop.
    control: mpsc::Sender<crate::control::server::Call>,
    refuse: Arc<std::sync::atomic::AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    daemon: tokio::task::JoinHandle<Result<(), DaemonError>>,
    _dir: tempfile::TempDir,
}

/// Starts the daemon with `encoders` (TOML of `[[encoders.pn532]]` entries), pings every 5 s,
/// a dead link noticed 5 s after an unanswered ping.
fn start(encoders: &str) -> Harness {
    let dir = tempfile::tempdir().expect("dir");
    let config = Config::parse(&format!(
        r#"
[cloud]
url = "ws://cloud.test/bridge"
allow_insecure = true
ping_interval_secs = 5
pong_timeout_secs = 5
[site_keys]
current = 1
[[site_keys.key]]
version = 1
file = "/nonexistent"
[state]
dir = "{}"
[encoders]
auto_pcsc = false
card_wait_secs = 30
{encoders}
"#,
        dir.path().display()
    ))
    .expect("config");
    let (to_cloud, connections) = mpsc::unbounded_channel();
    let refuse = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (control, calls) = mpsc::channel(4);
    let deps = Deps {
        store: Arc::new(
            Store::open_with(&config.state.dir, config.state.retention()).expect("store"),
        ),
        config,
        site: Arc::new(SiteKeys::new(1, MasterKey::new(*b"in-process-site1"))),
        hardware: Arc::new(Machine),
        connect: Pipe {
            to_cloud,
            refuse: Arc::clone(&refuse),
        },
        control: Some(calls),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let daemon = tokio::spawn(serve(
        deps,
        async move {
            let _ = stopped.await;
        },
        std::future::pending(),
    ));
    Harness {
        connections,
        control,
        refuse,
        stop: Some(stop),
        daemon,
        _dir: dir,
    }
}

/// The cloud's end of one connection.
struct Cloud {
    ws: WebSocketStream<DuplexStream>,
}

impl Harness {
    /// The next connection, within `within` (virtual time).
    async fn accept(&mut self, within: Duration) -> Cloud {
        let stream = tokio::time::timeout(within, self.connections.recv())
            .await
            .expect("the bridge connects in time")
            .expect("a connection");
        Cloud {
            ws: WebSocketStream::from_raw_socket(stream, Role::Server, None).await,
        }
    }

    /// Asks the daemon as the control socket would; the answer's receiver.
    async fn call(
        &self,
        op: crate::control::wire::Op,
    ) -> oneshot::Receiver<crate::control::wire::Response> {
        let (reply, answer) = oneshot::channel();
        self.control
            .send(crate::control::server::Call { op, reply })
            .await
            .expect("the daemon takes calls");
        answer
    }

    async fn status(&self) -> crate::control::wire::Status {
        self.call(crate::control::wire::Op::Status)
            .await
            .await
            .expect("answered")
            .status
            .expect("a status")
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(60), self.daemon)
            .await
            .expect("the daemon stops in time")
            .expect("joined")
            .expect("a clean stop");
    }
}

impl Cloud {
    /// The next frame: a message's JSON, `"ping"`, or `"closed"`.
    async fn next(&mut self, within: Duration) -> Option<Value> {
        loop {
            match tokio::time::timeout(within, self.ws.next()).await.ok()? {
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(text.as_str()).expect("json"));
                }
                Some(Ok(Message::Ping(_))) => return Some(json!("ping")),
                Some(Ok(Message::Close(_)) | Err(_)) | None => return Some(json!("closed")),
                Some(Ok(_)) => {}
            }
        }
    }

    async fn expect_type(&mut self, kind: &str, within: Duration) -> Value {
        loop {
            let frame = self
                .next(within)
                .await
                .unwrap_or_else(|| panic!("no {kind}"));
            if frame["type"] == kind {
                return frame;
            }
            assert_ne!(frame, json!("closed"), "closed while waiting for {kind}");
        }
    }

    async fn send(&mut self, value: Value) {
        self.ws
            .send(Message::text(value.to_string()))
            .await
            .expect("send");
    }

    /// `hello` in, `welcome` out.
    async fn handshake(&mut self) -> Value {
        let hello = self.expect_type("hello", Duration::from_secs(5)).await;
        self.send(json!({
            "type": "welcome",
            "protocol": 1,
            "server_time": crate::cloud::message::now_rfc3339(),
        }))
        .await;
        hello
    }
}

const S: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn pings_on_schedule_and_reconnects_after_an_unanswered_ping() {
    let mut h = start("");
    let mut cloud = h.accept(5 * S).await;
    cloud.handshake().await;
    // The cloud answers nothing, not even pongs: tungstenite answers pings by itself only
    // when the cloud's end is read, which this test does not do between the pings below.
    let started = tokio::time::Instant::now();
    assert_eq!(cloud.next(10 * S).await, Some(json!("ping")));
    let first_ping = started.elapsed();
    assert!(
        (4 * S..=6 * S).contains(&first_ping),
        "ping after {first_ping:?}"
    );
    // Reading the ping made tungstenite queue a pong on the cloud's side; it goes out with
    // the next write. Write nothing: the bridge hears nothing for 5 s after its ping.
    let mut second = h.accept(20 * S).await;
    let reconnected = started.elapsed();
    assert!(
        reconnected >= first_ping + 5 * S && reconnected <= first_ping + 8 * S,
        "reconnected after {reconnected:?}"
    );
    second.handshake().await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_token_waits_the_longest_delay_and_a_lost_link_backs_off() {
    let mut h = start("");
    h.refuse.store(1, std::sync::atomic::Ordering::SeqCst);
    let started = tokio::time::Instant::now();
    let mut cloud = h.accept(2 * BACKOFF_MAX).await;
    let waited = started.elapsed();
    assert!(
        waited >= BACKOFF_MAX && waited <= BACKOFF_MAX + S,
        "a refused token is retried after the longest delay, not in a loop: {waited:?}"
    );
    cloud.handshake().await;
    // The cloud drops the link: the bridge comes back after a short, growing delay.
    drop(cloud);
    let dropped = tokio::time::Instant::now();
    let mut again = h.accept(2 * BACKOFF_MAX).await;
    let delay = dropped.elapsed();
    assert!(
        delay <= 2 * link_backoff_initial(),
        "first reconnect after {delay:?}"
    );
    again.handshake().await;
    drop(again);
    let dropped = tokio::time::Instant::now();
    let mut third = h.accept(2 * BACKOFF_MAX).await;
    assert!(dropped.elapsed() <= 4 * link_backoff_initial());
    third.handshake().await;
    h.stop().await;
}

fn link_backoff_initial() -> Duration {
    crate::cloud::link::BACKOFF_INITIAL
}

#[tokio::test(start_paused = true)]
async fn a_held_attempt_is_renewed_every_third_of_its_lease_and_a_stop_ends_the_wait() {
    let mut h = start("[[encoders.pn532]]\ndevice = \"/dev/test-encoder\"\n");
    let mut cloud = h.accept(5 * S).await;
    let hello = cloud.handshake().await;
    let encoder = hello["encoders"][0]["encoder_id"]
        .as_str()
        .expect("one encoder")
        .to_owned();
    let id = "11111111-2222-3333-4444-555555555555";
    cloud
        .send(json!({
            "type": "attempt_available",
            "action_attempt_id": id,
            "action_type": "SCAN_CREDENTIAL",
            "encoder_id": encoder,
        }))
        .await;
    let claim = cloud.expect_type("claim", 5 * S).await;
    assert_eq!(claim["action_attempt_id"], id);
    let wall = time::OffsetDateTime::now_utc();
    let at = |secs: i64| crate::cloud::message::rfc3339(wall + time::Duration::seconds(secs));
    cloud
        .send(json!({
            "type": "claim_granted",
            "action_attempt_id": id,
            "lease_expires_at": at(24),
            "deadline": at(300),
        }))
        .await;
    // A 24 s lease: renewed every third of it, about every 8 s, on the virtual clock. (The
    // lease is wall-clock time, which a paused runtime does not stop: a lease much shorter
    // than a loaded machine's real delays could lapse before the session sees it.)
    let granted = tokio::time::Instant::now();
    for n in 1..=3u32 {
        let renew = cloud.expect_type("renew", 12 * S).await;
        assert_eq!(renew["action_attempt_id"], id);
        let elapsed = granted.elapsed();
        assert!(
            elapsed <= n * 8 * S + S && elapsed >= n * 6 * S,
            "renew {n} after {elapsed:?}"
        );
    }
    // A graceful stop ends the card wait without a result (the attempt stays claimed for
    // the next start) and closes the link as going away.
    let _ = h.stop.take().expect("stop").send(());
    loop {
        let frame = cloud.next(30 * S).await.expect("a frame or the close");
        assert_ne!(frame["type"], "result", "a cancelled wait reports nothing");
        if frame == json!("closed") {
            break;
        }
    }
    tokio::time::timeout(60 * S, h.daemon)
        .await
        .expect("stops")
        .expect("joined")
        .expect("clean");
}

/// An operator job holds its encoder: the cloud's offer for it is not claimed while it waits
/// for a card; `status` names it. Its client going away cancels its card wait within a tick,
/// and the offer is claimed.
#[tokio::test(start_paused = true)]
async fn an_operator_job_holds_the_encoder_until_its_client_goes_away() {
    use crate::control::wire::Op;
    let mut h = start("[[encoders.pn532]]\ndevice = \"/dev/test-encoder\"\n");
    let mut cloud = h.accept(5 * S).await;
    let hello = cloud.handshake().await;
    let encoder = hello["encoders"][0]["encoder_id"]
        .as_str()
        .expect("an encoder")
        .to_owned();
    let status = h.status().await;
    assert!(status.cloud.connected);
    assert_eq!(status.encoders[0].busy_with, None);
    let answer = h.call(Op::Scan { encoder: None }).await;
    let status = h.status().await;
    let holder = status.encoders[0].busy_with.clone().expect("held");
    assert!(holder.starts_with("local-"), "{holder}");
    assert_eq!(status.local_jobs, 1);
    cloud
        .send(json!({
            "type": "attempt_available",
            "action_attempt_id": "a1",
            "action_type": "SCAN_CREDENTIAL",
            "encoder_id": encoder,
            "credential": null,
        }))
        .await;
    // Not claimed while the operator's job holds the encoder.
    let until = tokio::time::Instant::now() + 3 * S;
    while let Some(frame) = cloud
        .next(until.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        assert_ne!(frame["type"], "claim", "claimed while busy");
        assert_ne!(frame, json!("closed"));
    }
    // The client goes away: at the next tick the job's card wait is cancelled (the runner is
    // a real thread: give it real time, during which the virtual clock stands still), and
    // the offer is claimed.
    drop(answer);
    for _ in 0..20 {
        tokio::time::sleep(S).await;
        let _ = tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(50))).await;
        if h.status().await.local_jobs == 0 {
            break;
        }
    }
    let claim = cloud.expect_type("claim", 5 * S).await;
    assert_eq!(claim["action_attempt_id"], "a1");
    let status = h.status().await;
    assert_eq!(status.local_jobs, 0);
    assert_eq!(status.encoders[0].busy_with.as_deref(), Some("a1"));
    h.stop().await;
}
