//! The daemon's side of the control socket: binding it safely, checking each peer, reading
//! bounded lines and handing each request to the daemon's event loop as a [`Call`].

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use super::MAX_LINE;
use super::peer::{Peer, Policy};
use super::wire::{self, ErrorCode, Op, Response};

/// One request for the daemon, answered through `reply`.
#[derive(Debug)]
pub struct Call {
    /// What is asked.
    pub op: Op,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Response>,
}

/// A bound control socket; the file is removed when it is dropped.
#[derive(Debug)]
pub struct Bound {
    listener: UnixListener,
    path: PathBuf,
    policy: Policy,
}

impl Drop for Bound {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("control socket {path}: {problem} (hint: {hint})")]
pub struct BindError {
    path: String,
    problem: String,
    hint: &'static str,
}

fn bind_error(path: &Path, problem: impl Into<String>, hint: &'static str) -> BindError {
    BindError {
        path: path.display().to_string(),
        problem: problem.into(),
        hint,
    }
}

/// Binds `path` (mode 0660, group `group`): a stale socket left by a daemon that died is
/// replaced; one that still answers is not (another daemon runs).
pub fn bind(path: &Path, group: &str) -> Result<Bound, BindError> {
    let policy = Policy::new(group);
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            bind_error(
                path,
                format!("cannot create its directory: {e}"),
                "under systemd the unit's RuntimeDirectory=encoder-bridge makes it; else set [control] socket",
            )
        })?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(bind_error(
                path,
                "another daemon answers on it",
                "stop the other `encoder-bridge run` first",
            ));
        }
        let _ = std::fs::remove_file(path);
    }
    let listener = UnixListener::bind(path).map_err(|e| {
        bind_error(
            path,
            format!("cannot bind: {e}"),
            "check the directory is writable by the daemon's user",
        )
    })?;
    let bound = Bound {
        listener,
        path: path.to_owned(),
        policy,
    };
    // The socket was made under the daemon's umask (0077 under systemd): nobody else could
    // connect before these two calls.
    // Under the unit the daemon's own group is the socket's: no chown (which the unit's
    // system call filter refuses anyway, `~@privileged`).
    let current = std::os::unix::fs::MetadataExt::gid(&std::fs::metadata(path).map_err(|e| {
        bind_error(
            path,
            format!("cannot read it back: {e}"),
            "check the directory",
        )
    })?);
    if let Some(gid) = bound.policy.gid()
        && gid != current
        && let Err(e) = std::os::unix::fs::chown(path, None, Some(gid))
    {
        tracing::warn!(path = %path.display(), group, "control socket: cannot set its group: {e}");
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(|e| {
        bind_error(
            path,
            format!("cannot set its mode: {e}"),
            "check the daemon owns the socket's directory",
        )
    })?;
    Ok(bound)
}

impl Bound {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves connections until the future is dropped, handing requests to `calls`.
    pub async fn serve(self, calls: mpsc::Sender<Call>) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    let policy = self.policy.clone();
                    let calls = calls.clone();
                    tokio::spawn(connection(stream, policy, calls));
                }
                Err(e) => {
                    tracing::warn!("control socket: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }
}

enum Read {
    Eof,
    TooLong,
    Line(Vec<u8>),
}

async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> std::io::Result<Read> {
    let mut buf = Vec::new();
    let limit = u64::try_from(MAX_LINE + 1).unwrap_or(u64::MAX);
    let n = (&mut *reader)
        .take(limit)
        .read_until(b'\n', &mut buf)
        .await?;
    if n == 0 {
        return Ok(Read::Eof);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        return Ok(Read::Line(buf));
    }
    if buf.len() > MAX_LINE {
        return Ok(Read::TooLong);
    }
    // The last line, without a newline.
    Ok(Read::Line(buf))
}

async fn connection(stream: UnixStream, policy: Policy, calls: mpsc::Sender<Call>) {
    let peer = match stream.peer_cred() {
        Ok(cred) => Peer {
            uid: cred.uid(),
            gid: cred.gid(),
            pid: cred.pid(),
        },
        Err(e) => {
            tracing::warn!("control socket: cannot read the peer's credentials: {e}");
            return;
        }
    };
    let (read, mut write) = stream.into_split();
    if let Err(reason) = policy.check(peer) {
        tracing::warn!(
            uid = peer.uid,
            gid = peer.gid,
            pid = peer.pid.unwrap_or(0),
            "control socket: refused: {reason}"
        );
        let answer = Response::error(ErrorCode::Refused, reason).to_line();
        let _ = write.write_all(answer.as_bytes()).await;
        return;
    }
    let mut reader = BufReader::new(read);
    loop {
        let answer = match read_line(&mut reader).await {
            Ok(Read::Eof) | Err(_) => return,
            Ok(Read::TooLong) => {
                tracing::warn!(
                    uid = peer.uid,
                    "control socket: request longer than {MAX_LINE} bytes"
                );
                let answer = Response::error(
                    ErrorCode::TooLong,
                    format!("a request line holds at most {MAX_LINE} bytes"),
                );
                let _ = write.write_all(answer.to_line().as_bytes()).await;
                return;
            }
            Ok(Read::Line(line)) if line.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(Read::Line(line)) => match wire::parse(&line) {
                Err(answer) => *answer,
                Ok(op) => {
                    tracing::debug!(uid = peer.uid, op = op.name(), "control request");
                    match ask(&calls, op, &mut reader).await {
                        Some(answer) => answer,
                        // The client went away: its answer is dropped, which the daemon sees
                        // (an operator job it waits for is cancelled while no card was touched).
                        None => return,
                    }
                }
            },
        };
        if write.write_all(answer.to_line().as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Hands `op` to the daemon and waits for its answer; `None` when the client closed its side
/// meanwhile (Ctrl-C on a waiting `scan`).
async fn ask<R: tokio::io::AsyncBufRead + Unpin>(
    calls: &mpsc::Sender<Call>,
    op: Op,
    client: &mut R,
) -> Option<Response> {
    let stopping = || Response::error(ErrorCode::Stopping, "the daemon is stopping");
    let (reply, mut answer) = oneshot::channel();
    if calls.send(Call { op, reply }).await.is_err() {
        return Some(stopping());
    }
    tokio::select! {
        got = &mut answer => Some(got.unwrap_or_else(|_| stopping())),
        () = gone(client) => None,
    }
}

/// Completes when the client has closed its side; never when it sent more (its next request
/// is read after this answer).
async fn gone<R: tokio::io::AsyncBufRead + Unpin>(client: &mut R) {
    match client.fill_buf().await {
        Ok([]) | Err(_) => {}
        Ok(_) => std::future::pending().await,
    }
}
