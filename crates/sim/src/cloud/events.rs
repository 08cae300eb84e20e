//! Webhook delivery: each new event is sent as a JSON POST to `--webhook-url`, in order,
//! signed as Seam signs its webhooks (the Svix scheme, which the SDKs' `SeamWebhook` checks):
//!
//! - `svix-id`: a message id (`msg_...`), the same for every retry of one event;
//! - `svix-timestamp`: Unix seconds of this delivery;
//! - `svix-signature`: `v1,` + base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed
//!   with the bytes of the secret `whsec_<base64>` (`--webhook-secret`, printed at start).
//!
//! The client is a few lines of HTTP/1.1 over a tokio `TcpStream` (plain `http://` only: the
//! simulator's webhooks go to a local test listener or demo script). A delivery that fails is
//! retried three times with a growing pause, then dropped with a log line; events stay
//! listed by `/events/list` either way.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedReceiver;

use super::attempts::log;

/// A webhook signing secret: `whsec_` and the base64 of the key bytes. Its `Debug` form
/// hides the key.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(whsec_...)")
    }
}

/// The prefix of a webhook secret.
const SECRET_PREFIX: &str = "whsec_";

impl WebhookSecret {
    /// Parses `whsec_<base64>` (at least 16 key bytes).
    pub fn parse(text: &str) -> Result<Self, String> {
        let encoded = text.strip_prefix(SECRET_PREFIX).ok_or_else(|| {
            format!("a webhook secret starts with {SECRET_PREFIX} followed by base64")
        })?;
        let key = BASE64
            .decode(encoded)
            .map_err(|e| format!("the webhook secret after {SECRET_PREFIX} is not base64: {e}"))?;
        if key.len() < 16 {
            return Err("a webhook secret holds at least 16 bytes".into());
        }
        Ok(Self { key })
    }

    /// A new random secret of 24 bytes (as Svix makes them).
    pub fn generate() -> Self {
        let mut key = vec![0_u8; 24];
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key).is_err() {
            // No system randomness: fall back on two random UUIDs' bits.
            key = [
                uuid::Uuid::new_v4().as_bytes().as_slice(),
                uuid::Uuid::new_v4().as_bytes(),
            ]
            .concat();
        }
        Self { key }
    }

    /// The secret as given to integrators: `whsec_<base64>`.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", BASE64.encode(&self.key))
    }

    /// The `svix-signature` value for message `id` sent at `timestamp` with `body`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.key);
        let mut context = ring::hmac::Context::with_key(&key);
        context.update(format!("{id}.{timestamp}.").as_bytes());
        context.update(body);
        format!("v1,{}", BASE64.encode(context.sign().as_ref()))
    }
}

/// An `http://host:port/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    host: String,
    port: u16,
    path: String,
}

impl WebhookUrl {
    /// Parses a plain `http://` URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("webhook URL {url:?}: only http:// is supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("webhook URL {url:?}: bad port {p:?}"))?,
            ),
            _ => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("webhook URL {url:?}: no host"));
        }
        Ok(Self {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            path: path.to_owned(),
        })
    }
}

/// POSTs `body` with the Svix headers of message `id`; the response's status code.
async fn post_json(
    url: &WebhookUrl,
    secret: &WebhookSecret,
    id: &str,
    body: &[u8],
) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect((url.host.as_str(), url.port)).await?;
    let host = if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = secret.sign(id, timestamp, body);
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nUser-Agent: encoder-sim\r\nsvix-id: {id}\r\nsvix-timestamp: {timestamp}\r\nsvix-signature: {signature}\r\nConnection: close\r\n\r\n",
        url.path,
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await?;
    let mut response = Vec::new();
    let mut chunk = [0_u8; 512];
    while !response.windows(2).any(|w| w == b"\r\n") && response.len() < 8192 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    let line = String::from_utf8_lossy(&response);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status line in the webhook's answer"))
}

/// Delivers events from `events` until the channel closes.
pub async fn deliver(url: WebhookUrl, secret: WebhookSecret, mut events: UnboundedReceiver<Value>) {
    while let Some(event) = events.recv().await {
        let body = event.to_string();
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        let kind = event
            .get("event_type")
            .and_then(Value::as_str)
            .unwrap_or("event")
            .to_owned();
        let mut pause = Duration::from_millis(250);
        for attempt in 1..=4 {
            let outcome = tokio::time::timeout(
                Duration::from_secs(5),
                post_json(&url, &secret, &id, body.as_bytes()),
            )
            .await;
            match outcome {
                Ok(Ok(code)) if (200..300).contains(&code) => break,
                Ok(Ok(code)) => log(&format!("webhook answered {code} to {kind}")),
                Ok(Err(e)) => log(&format!("webhook delivery of {kind} failed: {e}")),
                Err(_) => log(&format!("webhook delivery of {kind} timed out")),
            }
            if attempt == 4 {
                log(&format!("giving up on webhook delivery of {kind}"));
                break;
            }
            tokio::time::sleep(pause).await;
            pause = pause.saturating_mul(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = WebhookUrl::parse("http://127.0.0.1:8080/hooks/seam").unwrap();
        assert_eq!(
            u,
            WebhookUrl {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/hooks/seam".into()
            }
        );
        let u = WebhookUrl::parse("http://localhost").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        let u = WebhookUrl::parse("http://[::1]:9/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        assert!(WebhookUrl::parse("https://example.com").is_err());
        assert!(WebhookUrl::parse("http://h:port/").is_err());
    }

    /// The example of Svix's documentation ("Verifying payloads manually"): this secret,
    /// message id, timestamp and body give this signature.
    #[test]
    fn signs_as_svix() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(secret.expose(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        assert!(format!("{secret:?}").contains("..."));
        assert!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(WebhookSecret::parse("whsec_!!").is_err());
        let made = WebhookSecret::generate();
        assert_eq!(WebhookSecret::parse(&made.expose()).unwrap(), made);
    }
}
