//! Webhook delivery: each new event is sent as a JSON POST to `--webhook-url`, in order.
//!
//! The client is a few lines of HTTP/1.1 over a tokio `TcpStream` (plain `http://` only: the
//! simulator's webhooks go to a local test listener or demo script). A delivery that fails is
//! retried three times with a growing pause, then dropped with a log line; events stay
//! listed by `/events/list` either way.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedReceiver;

use super::attempts::log;

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

/// POSTs `body`; the response's status code.
async fn post_json(url: &WebhookUrl, body: &[u8]) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect((url.host.as_str(), url.port)).await?;
    let host = if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nUser-Agent: encoder-sim\r\nConnection: close\r\n\r\n",
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
pub async fn deliver(url: WebhookUrl, mut events: UnboundedReceiver<Value>) {
    while let Some(event) = events.recv().await {
        let body = event.to_string();
        let kind = event
            .get("event_type")
            .and_then(Value::as_str)
            .unwrap_or("event")
            .to_owned();
        let mut pause = Duration::from_millis(250);
        for attempt in 1..=4 {
            let outcome =
                tokio::time::timeout(Duration::from_secs(5), post_json(&url, body.as_bytes()))
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
}
