//! The daemon's answers on the control socket ([`crate::control`]): `status`, and operator
//! jobs (`scan`, `encode`) queued on an encoder's runner like a cloud attempt.
//!
//! An operator job holds its encoder in the session
//! ([`Session::hold`](crate::cloud::session::Session::hold)) while it runs, so no attempt is claimed for that encoder
//! meanwhile and a cloud attempt and an operator job never run at once. A job waits (in
//! arrival order) while its encoder is busy with an attempt; attempts offered while a job
//! holds the encoder queue in the session and keep their order.

use std::collections::{HashMap, VecDeque};
use std::time::SystemTime;

use tokio::sync::oneshot;

use super::{Daemon, now};
use crate::cloud::link::ConnectError;
use crate::cloud::translate;
use crate::control::server::Call;
use crate::control::wire::{
    CloudStatus, EncoderStatus, ErrorCode, JobAnswer, Op, Response, Status,
};
use crate::job::{CardJob, JobAction};
use crate::runner::Finished;

fn rfc3339(at: SystemTime) -> Option<String> {
    time::OffsetDateTime::from(at)
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// The cloud link as `status` reports it.
#[derive(Debug, Default)]
pub(super) struct LinkState {
    since: Option<SystemTime>,
    last_error: Option<String>,
}

impl LinkState {
    pub(super) fn connected(&mut self) {
        self.since = Some(SystemTime::now());
        self.last_error = None;
    }

    pub(super) fn lost(&mut self) {
        self.since = None;
        self.last_error = Some("connection lost".into());
    }

    /// Records a failed connect; `false` when it is the same error as the last one (logged
    /// once).
    pub(super) fn failed(&mut self, e: &ConnectError) -> bool {
        let text = e.to_string();
        let new = self.last_error.as_deref() != Some(text.as_str());
        self.last_error = Some(text);
        new
    }
}

struct Waiting {
    encoder_id: String,
    job: CardJob,
    reply: oneshot::Sender<Response>,
}

struct Running {
    encoder_id: String,
    reply: oneshot::Sender<Response>,
    /// Its client went away (logged once; its card wait is cancelled at every tick until
    /// it ends).
    abandoned: bool,
}

/// Operator jobs waiting for their encoder or running.
#[derive(Default)]
pub(super) struct LocalJobs {
    waiting: VecDeque<Waiting>,
    /// Job id → its encoder and where the answer goes.
    running: HashMap<String, Running>,
}

impl LocalJobs {
    /// Whether `id` is a running operator job.
    pub(super) fn owns(&self, id: &str) -> bool {
        self.running.contains_key(id)
    }

    fn count(&self) -> usize {
        self.waiting.len() + self.running.len()
    }

    /// The daemon stops: every job still waiting or running is answered so.
    pub(super) fn stopping(&mut self) {
        for w in self.waiting.drain(..) {
            let _ = w.reply.send(Response::error(
                ErrorCode::Stopping,
                "the daemon is stopping; the job did not run",
            ));
        }
        for (_, Running { reply, .. }) in self.running.drain() {
            let _ = reply.send(Response::error(
                ErrorCode::Stopping,
                "the daemon stopped before the job reported",
            ));
        }
    }
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Daemon<S> {
    /// Answers one request from the control socket (a job is answered when it ends).
    pub(super) async fn call(&mut self, call: Call) {
        let Call { op, reply } = call;
        let (encoder, action) = match op {
            Op::Status => {
                let _ = reply.send(Response::status(self.status()));
                return;
            }
            Op::Scan { encoder } => (encoder, JobAction::Scan),
            Op::Encode {
                encoder,
                credential,
            } => match translate::encode_request_from_json(&credential.to_string()) {
                Ok(request) => (encoder, JobAction::Encode(request)),
                Err(e) => {
                    let _ = reply.send(Response::error(
                        ErrorCode::BadRequest,
                        format!("the credential: {e}"),
                    ));
                    return;
                }
            },
        };
        if self.draining.is_some() {
            let _ = reply.send(Response::error(
                ErrorCode::Stopping,
                "the daemon is stopping",
            ));
            return;
        }
        let encoder_id = match self.pick(encoder.as_deref()) {
            Ok(id) => id,
            Err(message) => {
                let _ = reply.send(Response::error(ErrorCode::NoSuchEncoder, message));
                return;
            }
        };
        let job = CardJob::local(action);
        tracing::info!(job = %job.id, encoder = %encoder_id, "operator job queued");
        self.local.waiting.push_back(Waiting {
            encoder_id,
            job,
            reply,
        });
        self.start_local_jobs().await;
    }

    /// The encoder named by id, reader name, device path or display name; the only one when
    /// none is named.
    fn pick(&self, name: Option<&str>) -> Result<String, String> {
        let all: Vec<_> = self.session.encoders().collect();
        let found: Vec<_> = match name {
            Some(name) => all
                .iter()
                .filter(|e| e.encoder_id == name || e.reader == name || e.display_name == name)
                .collect(),
            None => all.iter().collect(),
        };
        match found.as_slice() {
            [one] => Ok(one.encoder_id.clone()),
            [] => Err(match name {
                Some(name) => format!(
                    "the daemon drives no encoder named \"{name}\" (see `encoder-bridge readers`)"
                ),
                None => "the daemon drives no encoder".into(),
            }),
            several => Err(crate::discovery::several_encoders(
                several.iter().map(|e| e.reader.as_str()),
            )),
        }
    }

    /// Starts every waiting operator job whose encoder is free, in arrival order.
    pub(super) async fn start_local_jobs(&mut self) {
        if self.local.waiting.is_empty() {
            return;
        }
        if self.draining.is_some() {
            self.local.stopping();
            return;
        }
        let mut left = VecDeque::new();
        while let Some(w) = self.local.waiting.pop_front() {
            if !self.session.hold(&w.encoder_id, &w.job.id) {
                left.push_back(w);
                continue;
            }
            let id = w.job.id.clone();
            tracing::info!(job = %id, encoder = %w.encoder_id, "operator job started");
            match self.encoders.run(&w.encoder_id, w.job) {
                Ok(()) => {
                    self.local.running.insert(
                        id,
                        Running {
                            encoder_id: w.encoder_id,
                            reply: w.reply,
                            abandoned: false,
                        },
                    );
                }
                Err((_, error)) => {
                    let _ = w.reply.send(Response::error(
                        ErrorCode::NoSuchEncoder,
                        format!("{} ({})", error.message, error.detail),
                    ));
                    let actions = self.session.release(&w.encoder_id, &id, now());
                    self.perform(actions).await;
                }
            }
        }
        self.local.waiting = left;
    }

    /// An operator job ended: its answer, then the encoder is free again.
    pub(super) async fn local_finished(&mut self, finished: &Finished) {
        let Some(Running {
            encoder_id, reply, ..
        }) = self.local.running.remove(&finished.attempt_id)
        else {
            return;
        };
        tracing::info!(
            job = %finished.attempt_id,
            encoder = %encoder_id,
            error = finished.report.error().map_or("", |e| e.kind.name()),
            "operator job finished"
        );
        let answer = match (
            translate::report_json(&finished.report),
            finished.report.describe(),
        ) {
            (Some(json), Some(text)) => Response::job(JobAnswer {
                encoder_id: encoder_id.clone(),
                success: finished.report.error().is_none(),
                report: serde_json::from_str(&json).unwrap_or_default(),
                text,
            }),
            _ => Response::error(
                ErrorCode::Cancelled,
                "the job was cancelled before the card was touched",
            ),
        };
        let _ = reply.send(answer);
        let actions = self
            .session
            .release(&encoder_id, &finished.attempt_id, now());
        self.perform(actions).await;
    }

    /// Operator jobs whose client went away (Ctrl-C): a waiting one is dropped, a running
    /// one has its card wait cancelled (a card operation under way is finished, never cut).
    pub(super) fn abandon_local_jobs(&mut self) {
        self.local.waiting.retain(|w| {
            let gone = w.reply.is_closed();
            if gone {
                tracing::info!(job = %w.job.id, "operator job dropped: its client went away");
            }
            !gone
        });
        for (id, job) in &mut self.local.running {
            if !job.reply.is_closed() {
                continue;
            }
            if !job.abandoned {
                job.abandoned = true;
                tracing::info!(job = %id, "operator job abandoned by its client: cancelling its card wait");
            }
            // Again at every tick until it ends: a runner that had not begun the job yet
            // (it was probing) did not see the first cancel.
            self.encoders.cancel(&job.encoder_id, id);
        }
    }

    fn status(&self) -> Status {
        Status {
            bridge_id: self.session.bridge_id().to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            stopping: self.draining.is_some(),
            cloud: CloudStatus {
                url: self.config.cloud.url.clone(),
                connected: self.conn.is_some(),
                connected_since: self
                    .link
                    .since
                    .filter(|_| self.conn.is_some())
                    .and_then(rfc3339),
                last_error: self.link.last_error.clone(),
                clock_skew_secs: self.session.skew(),
            },
            encoders: self
                .session
                .encoders()
                .map(|e| EncoderStatus {
                    encoder_id: e.encoder_id.clone(),
                    kind: e.kind.clone(),
                    reader: e.reader.clone(),
                    display_name: e.display_name.clone(),
                    online: e.online,
                    card_present: e.card_present,
                    busy_with: self.session.busy_with(&e.encoder_id).map(str::to_owned),
                })
                .collect(),
            attempts_in_flight: self.session.in_flight(),
            outbox: self.session.unacknowledged(),
            local_jobs: self.local.count(),
        }
    }
}
