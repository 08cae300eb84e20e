//! One open websocket to the cloud, frame by frame (docs/cloud-protocol.md §1-2): text frames
//! are parsed into messages for the session; binary, malformed and oversized messages are
//! answered with `protocol_error` and otherwise ignored; a message beyond the transport limit
//! closes the link with 1009. Generic over the byte stream, so the daemon's tests run it over
//! an in-memory pipe.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::message::{self, Incoming, Outgoing, ParseError, ProtocolError};

/// What a frame amounted to.
#[derive(Debug)]
pub enum Frame {
    /// A message for the session.
    Message(Box<Incoming>),
    /// Nothing for the session (a pong, an ignored or refused message); the link is up.
    Nothing,
    /// The link is over.
    Closed,
}

/// A frame as read, not yet looked at ([`Connection::recv`] is cancel-safe; the handling,
/// which may answer the cloud, is done by [`Connection::handle`]).
#[derive(Debug)]
pub struct Raw(Option<Result<Message, WsError>>);

/// An open connection over the byte stream `S`.
#[derive(Debug)]
pub struct Connection<S> {
    ws: WebSocketStream<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Wraps an open websocket.
    pub fn new(ws: WebSocketStream<S>) -> Self {
        Self { ws }
    }

    /// Sends a message; `false` when the link failed.
    pub async fn send(&mut self, message: &Outgoing) -> bool {
        self.send_raw(Message::text(message.to_text())).await
    }

    /// Sends a websocket ping; `false` when the link failed.
    pub async fn ping(&mut self) -> bool {
        self.send_raw(Message::Ping(Vec::new().into())).await
    }

    async fn send_raw(&mut self, message: Message) -> bool {
        match self.ws.send(message).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("sending to the cloud failed: {e}");
                false
            }
        }
    }

    /// Waits for the next frame. Cancel-safe: nothing is lost when the wait is dropped.
    pub async fn recv(&mut self) -> Raw {
        Raw(self.ws.next().await)
    }

    /// Handles a frame: what the session need not see is dealt with here.
    pub async fn handle(&mut self, raw: Raw) -> Frame {
        match raw.0 {
            None | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => Frame::Closed,
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
                tracing::warn!(
                    size,
                    max_size,
                    "message beyond the transport limit: closing (1009)"
                );
                let _ = self
                    .ws
                    .close(Some(CloseFrame {
                        code: CloseCode::Size,
                        reason: "message too big".into(),
                    }))
                    .await;
                drain(self.ws.get_mut()).await;
                Frame::Closed
            }
            Some(Err(e)) => {
                tracing::warn!("cloud connection failed: {e}");
                Frame::Closed
            }
            Some(Ok(Message::Close(frame))) => {
                tracing::info!(frame = ?frame, "the cloud closed the connection");
                Frame::Closed
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Frame::Nothing,
            Some(Ok(Message::Binary(_))) => {
                self.refuse("binary frames are not part of the protocol".into(), None)
                    .await
            }
            Some(Ok(Message::Text(text))) => match message::parse(text.as_str()) {
                Ok(incoming) => Frame::Message(Box::new(incoming)),
                Err(ParseError::Unknown(kind)) => {
                    tracing::info!("ignoring unknown message type {kind:?}");
                    Frame::Nothing
                }
                Err(ParseError::TooLarge(size)) => {
                    tracing::warn!(size, "message larger than 64 KiB");
                    self.refuse(
                        format!("message of {size} bytes is larger than the 64 KiB limit"),
                        None,
                    )
                    .await
                }
                Err(ParseError::Malformed {
                    message,
                    in_reply_to,
                }) => {
                    tracing::warn!(
                        in_reply_to = in_reply_to.as_deref().unwrap_or(""),
                        "malformed message: {message}"
                    );
                    self.refuse(message, in_reply_to).await
                }
            },
        }
    }

    /// Answers `protocol_error`; the link stays up unless sending fails.
    async fn refuse(&mut self, message: String, in_reply_to: Option<String>) -> Frame {
        let out = Outgoing::ProtocolError(ProtocolError {
            message,
            in_reply_to,
        });
        if self.send(&out).await {
            Frame::Nothing
        } else {
            Frame::Closed
        }
    }

    /// Closes the link as a stopping bridge does (1001), bounded by 2 s.
    pub async fn close_going_away(mut self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.ws.close(Some(CloseFrame {
                code: CloseCode::Away,
                reason: "bridge stopping".into(),
            })),
        )
        .await;
    }
}

/// Reads and drops what the peer is still sending (the rest of an oversized message) for a
/// moment before the socket is dropped: closing a socket with unread data resets the
/// connection, and the peer may then lose the close frame (1009) we just sent it. Bounded in
/// time (1 s) and bytes (8 MiB).
async fn drain<S: AsyncRead + Unpin>(stream: &mut S) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut total = 0usize;
    while total < 8 << 20 {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => total += n,
            _ => break,
        }
    }
}
