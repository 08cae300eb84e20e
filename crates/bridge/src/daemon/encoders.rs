//! The encoders the daemon drives: one runner thread each, found by id or reader name.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::thread::JoinHandle;

use encoder_hal::EncoderKind;
use encoder_protocol::cloud_error::{CloudError, ErrorType, SubCode};
use encoder_protocol::keys::SiteKeys;

use crate::config::MediaConfig;
use tokio::sync::mpsc;

use super::Event;
use super::hardware::Hardware;
use crate::discovery::Wanted;
use crate::job::CardJob;
use crate::runner::{EncoderState, PROBE_EVERY, Probe, Runner, RunnerSpec};
use crate::store::Store;

struct Encoder {
    wanted: Wanted,
    runner: Option<Runner>,
}

/// See the module docs.
pub(super) struct Encoders {
    hardware: Arc<dyn Hardware>,
    site: Arc<SiteKeys>,
    media: MediaConfig,
    store: Arc<Store>,
    events: mpsc::UnboundedSender<Event>,
    by_id: HashMap<String, Encoder>,
    /// Reader name or device path → encoder id.
    by_reader: HashMap<String, String>,
    /// PN532 encoders whose runner has not reported its first probe yet.
    pub(super) unprobed: HashSet<String>,
}

impl Encoders {
    pub(super) fn new(
        hardware: Arc<dyn Hardware>,
        site: Arc<SiteKeys>,
        media: MediaConfig,
        store: Arc<Store>,
        events: mpsc::UnboundedSender<Event>,
    ) -> Self {
        Self {
            hardware,
            site,
            media,
            store,
            events,
            by_id: HashMap::new(),
            by_reader: HashMap::new(),
            unprobed: HashSet::new(),
        }
    }

    /// The id of `wanted` (kept in the store across restarts), its runner started once.
    pub(super) fn add(&mut self, wanted: &Wanted) -> Option<String> {
        let id = match self.store.encoder_id(wanted.kind.name(), &wanted.reader) {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(reader = %wanted.reader, "{e}");
                return None;
            }
        };
        if self.by_id.contains_key(&id) {
            return Some(id);
        }
        let events = self.events.clone();
        let probe = (wanted.kind == EncoderKind::Pn532).then(|| {
            let events = self.events.clone();
            let id = id.clone();
            self.unprobed.insert(id.clone());
            Probe {
                every: PROBE_EVERY,
                report: Box::new(move |state| {
                    let _ = events.send(Event::State(id.clone(), state));
                }) as Box<dyn Fn(EncoderState) + Send>,
            }
        });
        let spec = RunnerSpec {
            encoder_id: id.clone(),
            card_wait: wanted.card_wait,
            feedback: wanted.feedback,
            factory: self.hardware.factory(wanted),
            probe,
            media: self.media,
        };
        let runner = Runner::spawn(
            spec,
            Arc::clone(&self.site),
            Some(Arc::clone(&self.store)),
            Arc::new(move |finished| {
                let _ = events.send(Event::Runner(Box::new(finished)));
            }),
        );
        let runner = match runner {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(reader = %wanted.reader, "cannot start a runner thread: {e}");
                None
            }
        };
        self.by_reader.insert(wanted.reader.clone(), id.clone());
        self.by_id.insert(
            id.clone(),
            Encoder {
                wanted: wanted.clone(),
                runner,
            },
        );
        Some(id)
    }

    /// The encoder driving `reader`.
    pub(super) fn id_of(&self, reader: &str) -> Option<String> {
        self.by_reader.get(reader).cloned()
    }

    /// Whether `id` is configured (kept, offline, when its reader goes away).
    pub(super) fn is_configured(&self, id: &str) -> bool {
        self.by_id.get(id).is_some_and(|e| e.wanted.configured)
    }

    /// Stops driving `id`; its thread ends after its current job.
    pub(super) fn remove(&mut self, id: &str) {
        if let Some(encoder) = self.by_id.remove(id) {
            self.by_reader.remove(&encoder.wanted.reader);
            drop(encoder.runner.and_then(Runner::stop));
        }
    }

    /// Queues `job` on `encoder_id`'s runner; when there is none, the job back with the error
    /// to report.
    pub(super) fn run(
        &self,
        encoder_id: &str,
        job: CardJob,
    ) -> Result<(), (Box<CardJob>, CloudError)> {
        let encoder = self.by_id.get(encoder_id);
        let job = match encoder.and_then(|e| e.runner.as_ref()) {
            Some(runner) => match runner.run(job) {
                Ok(()) => return Ok(()),
                Err(job) => job,
            },
            None => Box::new(job),
        };
        let reader = encoder.map_or("", |e| e.wanted.reader.as_str());
        Err((
            job,
            CloudError::new(
                ErrorType::EncoderNotOnline,
                SubCode::ReaderUnavailable,
                "The encoder is not connected.",
                format!("no runner for encoder {encoder_id} (reader \"{reader}\")"),
            ),
        ))
    }

    fn runners(&self) -> impl Iterator<Item = &Runner> {
        self.by_id.values().filter_map(|e| e.runner.as_ref())
    }

    /// Ends `attempt_id`'s card wait on `encoder_id`.
    pub(super) fn cancel(&self, encoder_id: &str, attempt_id: &str) {
        if let Some(r) = self.by_id.get(encoder_id).and_then(|e| e.runner.as_ref()) {
            r.cancel_job(attempt_id);
        }
    }

    /// Ends every card wait (graceful stop).
    pub(super) fn cancel_waiting(&self) {
        self.runners().for_each(Runner::cancel_waiting);
    }

    /// Stops every card operation between two APDUs (second signal, or the finish bound).
    pub(super) fn abort(&self) {
        self.runners().for_each(Runner::abort);
    }

    /// Asks every runner thread to end after its job; their handles to join.
    pub(super) fn stop(self) -> Vec<JoinHandle<()>> {
        self.by_id
            .into_values()
            .filter_map(|e| e.runner.and_then(Runner::stop))
            .collect()
    }
}
