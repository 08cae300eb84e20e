//! `encoder-bridge run --config FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use tokio::signal::unix::{SignalKind, signal};

use crate::config::{Config, DEFAULT_CONFIG};

/// Options of `run`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The configuration file.
    #[arg(long, short, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
}

/// Runs the daemon until SIGTERM/SIGINT (a second signal aborts the card operation in flight).
pub(crate) fn run(args: &Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let config = Config::load(&args.config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (count, signals) = tokio::sync::watch::channel(0u32);
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                count.send_modify(|n| *n += 1);
            }
        });
        let nth = |n: u32| {
            let mut rx = signals.clone();
            async move {
                let _ = rx.wait_for(|v| *v >= n).await;
            }
        };
        Box::pin(crate::daemon::run(config, nth(1), nth(2))).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
