//! The CLI's side of the control socket: one request, one answer, blocking.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::MAX_LINE;
use super::wire::{Op, Request, Response};

/// Why no answer came.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket (no daemon runs).
    #[error(
        "no daemon answers on {0} (hint: `systemctl status encoder-bridge`; use --direct to work without it)"
    )]
    NoDaemon(PathBuf),
    /// The socket's permissions keep this user out.
    #[error(
        "not allowed to use {0} (hint: run as root, or join the socket's group: sudo usermod -aG encoder-bridge $USER, then log in again)"
    )]
    Denied(PathBuf),
    /// The connection failed midway, or the answer was not one.
    #[error("control socket {path}: {problem}")]
    Broken {
        /// The socket.
        path: PathBuf,
        /// What went wrong.
        problem: String,
    },
}

impl ClientError {
    /// Whether no daemon runs (the CLI then says so, or works directly where it may).
    pub fn no_daemon(&self) -> bool {
        matches!(self, Self::NoDaemon(_))
    }
}

/// Sends `op` to the daemon at `path` and reads its answer, waiting at most `timeout` for it
/// (`None`: as long as it takes, e.g. a card wait).
pub fn call(path: &Path, op: Op, timeout: Option<Duration>) -> Result<Response, ClientError> {
    let broken = |problem: String| ClientError::Broken {
        path: path.to_owned(),
        problem,
    };
    let mut stream = UnixStream::connect(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            ClientError::NoDaemon(path.to_owned())
        }
        std::io::ErrorKind::PermissionDenied => ClientError::Denied(path.to_owned()),
        _ => broken(format!("cannot connect: {e}")),
    })?;
    stream
        .set_read_timeout(timeout)
        .map_err(|e| broken(e.to_string()))?;
    let mut line = serde_json::to_string(&Request::new(op)).map_err(|e| broken(e.to_string()))?;
    line.push('\n');
    // A refused peer is answered at once and the socket closed: the write may fail, the
    // answer is still there to read.
    let _ = stream.write_all(line.as_bytes());
    let mut answer = Vec::new();
    let limit = u64::try_from(MAX_LINE * 16).unwrap_or(u64::MAX);
    BufReader::new(stream.take(limit))
        .read_until(b'\n', &mut answer)
        .map_err(|e| broken(format!("no answer: {e}")))?;
    if answer.is_empty() {
        return Err(broken(
            "the daemon closed the connection without answering".into(),
        ));
    }
    serde_json::from_slice(&answer).map_err(|e| broken(format!("not an answer: {e}")))
}
