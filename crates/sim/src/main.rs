//! `encoder-sim`: command-line entry point.
//!
//! `encoder-sim card --type classic-1k` places a virtual card on pcscd's vpcd reader; see
//! [`encoder_sim::runner`] for its behaviour. `encoder-sim pn532 --link /tmp/pn532` emulates a
//! PN532 module with a card in its field behind a pseudo-terminal; see [`encoder_sim::pn532`].
//! `encoder-sim cloud --listen 127.0.0.1:8080` serves the cloud access-control API and the
//! bridge websocket; see [`encoder_sim::cloud`].
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::{Parser, Subcommand};
use encoder_sim::card::{CardType, ReaderProfile, TearMode};
use encoder_sim::error::parse_hex;
use encoder_sim::pn532;
use encoder_sim::runner::{self, CardOptions};
use encoder_sim::vpcd;

/// Virtual hardware for encoder-bridge tests and demos.
#[derive(Parser, Debug)]
#[command(name = "encoder-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// A virtual contactless card on pcscd's vpcd reader, behind an ACR122U or another reader
    /// family (`--reader-profile`).
    ///
    /// Prints `present` / `removed` as the card comes and goes. Reads commands on stdin, one
    /// per line: `remove`, `insert`, `quit`. SIGTERM/SIGINT remove the card and exit.
    Card(CardArgs),
    /// A PN532 module (HSU, firmware 1.6) with a MIFARE Classic or DESFire card in its field,
    /// behind a pseudo-terminal linked at `--link`.
    ///
    /// Prints `ready` once the link exists, then `present` / `removed` as the card comes and
    /// goes. Reads commands on stdin, one per line: `remove`, `insert`, `unplug` (the link
    /// disappears, as a USB unplug), `plug` (it comes back), `quit`.
    Pn532(Pn532Args),
    /// The cloud access-control API (Seam-shaped HTTP endpoints) and the bridge websocket at
    /// /bridge/v1.
    ///
    /// Prints `listening on http://ADDR` (`https://` with --tls-cert; the real port when ADDR
    /// has port 0) once it accepts
    /// connections. SIGTERM/SIGINT stop it.
    Cloud(CloudArgs),
}

#[derive(clap::Args, Debug)]
struct CloudArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    listen: String,
    /// Bearer token accepted on the API and the websocket.
    #[arg(long, value_name = "T", default_value = encoder_sim::cloud::DEFAULT_TOKEN)]
    token: String,
    /// Keep everything in this file across restarts: a redb store with a row per object, each
    /// change committed (its rows only) before it is answered. A JSON state file of an
    /// earlier version is imported once (kept as FILE.json-v0).
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// POST each event as JSON to this http:// URL, signed as Seam signs webhooks (Svix
    /// headers `svix-id`, `svix-timestamp`, `svix-signature`).
    #[arg(long, value_name = "URL")]
    webhook_url: Option<String>,
    /// The webhook signing secret, `whsec_` and base64 (default: a new random one). Printed
    /// at start as `webhook secret: whsec_...` when --webhook-url is given; verify deliveries
    /// with it, e.g. with the SDKs' `SeamWebhook(secret).verify(payload, headers)`.
    #[arg(long, value_name = "WHSEC", value_parser = parse_webhook_secret)]
    webhook_secret: Option<encoder_sim::cloud::events::WebhookSecret>,
    /// Seconds before a pending action attempt ends as `action_attempt_expired`.
    #[arg(long, value_name = "SECS", default_value_t = 120.0)]
    attempt_timeout: f64,
    /// Seconds a pending attempt waits while no bridge for its encoder is connected before
    /// it ends as `action_attempt_expired`.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    no_bridge_grace: f64,
    /// Seconds finished action attempts and events are kept (then `*_not_found`).
    #[arg(long, value_name = "SECS", default_value_t = 86_400.0)]
    retain_secs: f64,
    /// At most this many finished action attempts, and this many events, are kept.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    retain_attempts: usize,
    /// Serve TLS (https://, wss://) with this PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct Pn532Args {
    /// Path to link to the emulated serial device, e.g. /tmp/pn532.
    #[arg(long, value_name = "PATH")]
    link: PathBuf,
    /// Pace the line like a real one at this baud rate (a pty alone ignores baud).
    #[arg(long, value_name = "BAUD")]
    baud: Option<u32>,
    #[command(flatten)]
    card: CardModelArgs,
}

/// The card itself, the same for every front end (the PN532 holds Classic and DESFire types).
/// The exchange log holds APDUs behind the vpcd reader and PN532 frames behind the PN532.
#[derive(clap::Args, Debug)]
struct CardModelArgs {
    /// Card type: classic-1k, classic-4k, mini, desfire-ev0, desfire-ev1 (alias desfire),
    /// desfire-ev2, desfire-ev3; on vpcd also ultralight.
    #[arg(long = "type", default_value = "classic-1k", value_parser = parse_card_type)]
    card_type: CardType,
    /// UID in hex (4 or 7 bytes; 7 for ultralight), e.g. DEADBEEF.
    #[arg(long, value_parser = parse_uid)]
    uid: Option<HexBytes>,
    /// Memory image to load (.mfd layout: 320/1024/4096 bytes; 64 for ultralight; JSON for
    /// DESFire, docs/reference/desfire-card.md §8).
    #[arg(long)]
    load: Option<PathBuf>,
    /// Where to save the memory image when the card is removed and at exit.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Log every exchange and its reply in hex, one per line (unmasked).
    #[arg(long)]
    apdu_log: Option<PathBuf>,
    /// Leave the field during the write after N accepted writes (DESFire: every command that
    /// changes EEPROM counts, see docs/reference/desfire-card.md §7).
    #[arg(long, value_name = "N")]
    tear_after_writes: Option<u32>,
    /// What lands of the torn write: lost, half (first 8 of 16 bytes) or landed.
    #[arg(long, default_value = "half", value_parser = parse_tear_mode)]
    tear_mode: TearMode,
    /// A worn-out card: writes to data blocks are acknowledged but keep a flipped bit, so a
    /// read-back after writing fails.
    #[arg(long)]
    worn: bool,
    /// DESFire: the random-UID option (anticollision shows 08 and three random bytes, new
    /// each time the card is placed).
    #[arg(long)]
    random_uid: bool,
}

impl CardModelArgs {
    /// The card options these arguments describe (vpcd fields at their defaults).
    fn options(self) -> CardOptions {
        let mut card = CardOptions::new(self.card_type);
        card.uid = self.uid.map(|h| h.0);
        card.load = self.load;
        card.save = self.save;
        card.apdu_log = self.apdu_log;
        card.tear_after_writes = self.tear_after_writes;
        card.tear_mode = self.tear_mode;
        card.worn = self.worn;
        card.random_uid = self.random_uid;
        card
    }
}

#[derive(clap::Args, Debug)]
struct CardArgs {
    #[command(flatten)]
    card: CardModelArgs,
    /// The reader family in front of the card: how it spells and answers PC/SC Part 3 (acr122u,
    /// acr1252u, omnikey5022, omnikey5422, omnikey5427ck, utrust3700f, utrust3720f, scl3711,
    /// baseline). Give the vpcd reader the family's pcscd name (`rig/pcsc-rig`) to have
    /// clients recognise it.
    #[arg(long, default_value = "acr122u", value_parser = parse_reader_profile)]
    reader_profile: ReaderProfile,
    /// vpcd address.
    #[arg(long, default_value = vpcd::DEFAULT_ADDR, value_name = "HOST:PORT")]
    vpcd: String,
    /// Seconds to keep retrying the first connection to vpcd.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    connect_timeout: f64,
}

#[derive(Clone, Debug)]
struct HexBytes(Vec<u8>);

fn parse_card_type(s: &str) -> Result<CardType, String> {
    s.parse().map_err(|e: encoder_sim::SimError| e.to_string())
}

fn parse_reader_profile(s: &str) -> Result<ReaderProfile, String> {
    s.parse().map_err(|e: encoder_sim::SimError| e.to_string())
}

fn parse_tear_mode(s: &str) -> Result<TearMode, String> {
    s.parse().map_err(|e: encoder_sim::SimError| e.to_string())
}

fn parse_webhook_secret(s: &str) -> Result<encoder_sim::cloud::events::WebhookSecret, String> {
    encoder_sim::cloud::events::WebhookSecret::parse(s)
}

fn parse_uid(s: &str) -> Result<HexBytes, String> {
    parse_hex(s).map(HexBytes).map_err(|e| e.to_string())
}

fn run_card(args: CardArgs) -> Result<(), encoder_sim::SimError> {
    let timeout = if args.connect_timeout.is_finite() && args.connect_timeout >= 0.0 {
        Duration::from_secs_f64(args.connect_timeout.min(86_400.0))
    } else {
        return Err(encoder_sim::SimError::Usage(
            "--connect-timeout must be a non-negative number of seconds".into(),
        ));
    };
    let mut options = args.card.options();
    options.reader_profile = args.reader_profile;
    options.vpcd = args.vpcd;
    options.connect_timeout = timeout;
    let stop = stop_on_signals()?;
    let commands = runner::spawn_stdin_commands::<runner::Command>();
    runner::run_card(&options, &commands, &stop, &mut std::io::stdout())
}

fn stop_on_signals() -> Result<Arc<AtomicBool>, encoder_sim::SimError> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(|source| {
            encoder_sim::SimError::Io {
                context: "installing signal handlers",
                source,
            }
        })?;
    }
    Ok(stop)
}

fn run_pn532(args: Pn532Args) -> Result<(), encoder_sim::SimError> {
    let options = pn532::Pn532Options {
        card: args.card.options(),
        link: args.link,
        baud: args.baud,
    };
    let stop = stop_on_signals()?;
    let commands = runner::spawn_stdin_commands::<pn532::Command>();
    pn532::run_pn532(&options, &commands, &stop, &mut std::io::stdout())
}

fn seconds(value: f64, flag: &str) -> Result<Duration, encoder_sim::SimError> {
    if value.is_finite() && value >= 0.0 {
        Ok(Duration::from_secs_f64(value.min(86_400.0 * 365.0)))
    } else {
        Err(encoder_sim::SimError::Usage(format!(
            "{flag} must be a non-negative number of seconds"
        )))
    }
}

async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    if let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    } else {
        eprintln!("encoder-sim: cannot install signal handlers; stop with SIGKILL");
        std::future::pending::<()>().await;
    }
}

fn run_cloud(args: CloudArgs) -> Result<(), encoder_sim::SimError> {
    use encoder_sim::cloud;
    let options = cloud::CloudOptions {
        token: args.token,
        state_file: args.state,
        webhook_url: args.webhook_url,
        webhook_secret: args
            .webhook_secret
            .unwrap_or_else(cloud::events::WebhookSecret::generate),
        attempt_timeout: seconds(args.attempt_timeout, "--attempt-timeout")?,
        no_bridge_grace: seconds(args.no_bridge_grace, "--no-bridge-grace")?,
        retain: cloud::model::Retain {
            keep_ms: i64::try_from(seconds(args.retain_secs, "--retain-secs")?.as_millis())
                .unwrap_or(i64::MAX),
            keep_count: args.retain_attempts,
        },
    };
    let io = |context| move |source| encoder_sim::SimError::Io { context, source };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(io("starting the async runtime"))?;
    runtime.block_on(async move {
        let failed = |e: cloud::CloudError| encoder_sim::SimError::Usage(e.to_string());
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(cloud::tls::server_config(cert, key).map_err(failed)?),
            _ => None,
        };
        let listener = cloud::bind(&args.listen).await.map_err(failed)?;
        let addr = listener
            .local_addr()
            .map_err(io("reading the listen address"))?;
        if options.token == cloud::DEFAULT_TOKEN {
            println!("token: {}", cloud::DEFAULT_TOKEN);
        }
        if options.webhook_url.is_some() {
            println!("webhook secret: {}", options.webhook_secret.expose());
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!("listening on {scheme}://{addr}");
        std::io::Write::flush(&mut std::io::stdout()).map_err(io("writing stdout"))?;
        cloud::run_with_tls(listener, options, tls, stop_signal())
            .await
            .map_err(failed)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Card(args) => run_card(args),
        Command::Pn532(args) => run_pn532(args),
        Command::Cloud(args) => run_cloud(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("encoder-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
