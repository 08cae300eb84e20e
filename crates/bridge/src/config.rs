//! The configuration file (TOML), its defaults and its validation.
//!
//! examples/encoder-bridge.toml is the annotated reference. Every validation error names the
//! key and says how to fix it; unknown keys are refused (a typo must not silently fall back to
//! a default).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::store::{DEFAULT_KEEP_AT_MOST, DEFAULT_KEEP_FOR, Retention};

/// Where the packaged service finds its configuration.
pub const DEFAULT_CONFIG: &str = "/etc/encoder-bridge/config.toml";

/// Default state directory (systemd `StateDirectory=encoder-bridge`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/encoder-bridge";

/// Default card wait of a job.
pub const DEFAULT_CARD_WAIT_SECS: f64 = 30.0;

/// A configuration problem: the key, what is wrong, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key (`cloud.url`), or the file when the problem is the file.
    pub key: String,
    /// What is wrong.
    pub problem: String,
    /// How to fix it, in one line.
    pub fix: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "config `{}`: {} (fix: {})",
            self.key, self.problem, self.fix
        )
    }
}

impl std::error::Error for ConfigError {}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[cloud]`.
    pub cloud: CloudConfig,
    /// `[site_keys]`.
    pub site_keys: SiteKeysConfig,
    /// `[state]`.
    #[serde(default)]
    pub state: StateConfig,
    /// `[encoders]`.
    #[serde(default)]
    pub encoders: EncodersConfig,
    /// `[control]`: the local control socket (docs/control-protocol.md).
    #[serde(default)]
    pub control: ControlConfig,
    /// `[media]`: which cards the site writes (docs/configuration.md).
    #[serde(default)]
    pub media: MediaConfig,
}

/// `[media]`: the card families this site writes and reads; the card placed on the encoder
/// decides the path. Both by default. Ultralight and other cards are always incompatible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// MIFARE Classic (docs/card-format.md §1-§8).
    #[serde(default = "yes")]
    pub classic: bool,
    /// MIFARE `DESFire` EV1/EV2/EV3 (docs/card-format.md §10).
    #[serde(default = "yes")]
    pub desfire: bool,
    /// The `DESFire` PICC master key policy: `leave_as_found` (default) or `take_ownership`
    /// (docs/card-format.md §10.5).
    #[serde(default)]
    pub desfire_picc_key: PiccKeyPolicy,
}

/// `media.desfire_picc_key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiccKeyPolicy {
    /// Never change a card's PICC master key.
    #[default]
    LeaveAsFound,
    /// Give a card with the factory PICC key the site's diversified AES PICC key.
    TakeOwnership,
}

fn yes() -> bool {
    true
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            classic: true,
            desfire: true,
            desfire_picc_key: PiccKeyPolicy::LeaveAsFound,
        }
    }
}

impl MediaConfig {
    fn validate(self) -> Result<(), ConfigError> {
        if self.classic || self.desfire {
            return Ok(());
        }
        Err(ConfigError::new(
            "media",
            "classic and desfire are both false: no card could be written",
            "set media.classic or media.desfire to true (both are by default)",
        ))
    }

    /// The protocol crate's `DESFire` options.
    pub fn desfire_options(self) -> encoder_protocol::job::desfire::DesfireOptions {
        use encoder_protocol::job::desfire::{DesfireOptions, PiccPolicy};
        DesfireOptions {
            picc: match self.desfire_picc_key {
                PiccKeyPolicy::LeaveAsFound => PiccPolicy::LeaveAsFound,
                PiccKeyPolicy::TakeOwnership => PiccPolicy::TakeOwnership,
            },
        }
    }
}

/// `[control]`: where the daemon's control socket is and who may use it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// The socket's path.
    #[serde(default = "default_control_socket")]
    pub socket: PathBuf,
    /// The group (besides root) allowed to use it.
    #[serde(default = "default_control_group")]
    pub group: String,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            socket: default_control_socket(),
            group: default_control_group(),
        }
    }
}

fn default_control_socket() -> PathBuf {
    PathBuf::from(crate::control::DEFAULT_SOCKET)
}

fn default_control_group() -> String {
    crate::control::DEFAULT_GROUP.to_owned()
}

/// `[cloud]`: where to connect and with which token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudConfig {
    /// `wss://...` (or `ws://` with `allow_insecure`).
    pub url: String,
    /// A file holding the bearer token (first choice).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// An environment variable holding the token (second choice).
    #[serde(default)]
    pub token_env: Option<String>,
    /// Allow `ws://` (loopback tests, demo).
    #[serde(default)]
    pub allow_insecure: bool,
    /// A PEM bundle of CA certificates trusted for the cloud, besides the system's roots
    /// (a private CA, a TLS-inspecting proxy).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Trust only `ca_file`, not the system's roots.
    #[serde(default)]
    pub ca_only: bool,
    /// Seconds between two websocket pings (docs/cloud-protocol.md §1); at least 1.
    #[serde(default = "default_ping_secs")]
    pub ping_interval_secs: u64,
    /// Seconds without any frame after a ping before the connection counts as dead and is
    /// reopened; at least 1.
    #[serde(default = "default_ping_secs")]
    pub pong_timeout_secs: u64,
}

/// Default ping interval and pong timeout, in seconds.
pub const DEFAULT_PING_SECS: u64 = 20;

fn default_ping_secs() -> u64 {
    DEFAULT_PING_SECS
}

/// `[site_keys]`: the site master keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteKeysConfig {
    /// The version new cards are formatted with; default the highest.
    #[serde(default)]
    pub current: Option<u8>,
    /// `[[site_keys.key]]`.
    #[serde(default, rename = "key")]
    pub keys: Vec<SiteKeyFile>,
    /// Published keys (12 hex digits each) tried as key B of a MAD another system wrote, to
    /// register our application in it (docs/card-format.md §2). Default: the NFC Forum key
    /// `D3F7D3F7D3F7`, NXP's example MAD key B `B0B1B2B3B4B5`, the factory key
    /// `FFFFFFFFFFFF`; `[]` registers in no other system's MAD.
    #[serde(default)]
    pub published_directory_keys: Option<Vec<String>>,
}

/// One `[[site_keys.key]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteKeyFile {
    /// Key version (as written on cards).
    pub version: u8,
    /// File with 32 hex digits (16 bytes).
    pub file: PathBuf,
}

/// `[state]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// The directory of the durable store.
    #[serde(default = "default_state_dir")]
    pub dir: PathBuf,
    /// Days a finished attempt is remembered after the cloud acknowledged its result
    /// (docs/cloud-protocol.md §5); more than 0, default 7.
    #[serde(default = "default_retention_days")]
    pub retention_days: f64,
    /// At most this many acknowledged attempts are remembered, the oldest leave first; at
    /// least 1, default 10,000.
    #[serde(default = "default_retention_attempts")]
    pub retention_attempts: usize,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            dir: default_state_dir(),
            retention_days: default_retention_days(),
            retention_attempts: default_retention_attempts(),
        }
    }
}

impl StateConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let days = self.retention_days;
        if !(days.is_finite() && days > 0.0 && days <= 36_500.0) {
            return Err(ConfigError::new(
                "state.retention_days",
                format!("{days} is not a number of days above 0"),
                "set it to a number of days such as 7 (the default), or remove it",
            ));
        }
        if self.retention_attempts == 0 {
            return Err(ConfigError::new(
                "state.retention_attempts",
                "must be at least 1",
                format!(
                    "set it to a count such as {DEFAULT_KEEP_AT_MOST} (the default), or remove it"
                ),
            ));
        }
        Ok(())
    }

    /// The retention window of finished attempts.
    pub fn retention(&self) -> Retention {
        Retention {
            keep_for: Duration::try_from_secs_f64(self.retention_days * 86_400.0)
                .unwrap_or(DEFAULT_KEEP_FOR),
            keep_at_most: self.retention_attempts,
        }
    }
}

fn default_retention_days() -> f64 {
    DEFAULT_KEEP_FOR.as_secs_f64() / 86_400.0
}

fn default_retention_attempts() -> usize {
    DEFAULT_KEEP_AT_MOST
}

fn default_state_dir() -> PathBuf {
    PathBuf::from(DEFAULT_STATE_DIR)
}

fn default_true() -> bool {
    true
}

fn default_card_wait() -> f64 {
    DEFAULT_CARD_WAIT_SECS
}

/// `feedback = "on" | "off"`: whether an encoder beeps and lights at the end of a job, on
/// readers that can (docs/configuration.md; the hal's dialect table says which can).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedbackSetting {
    /// A short beep and green light on success, a distinct pattern on failure.
    #[default]
    On,
    /// Silent.
    Off,
}

impl FeedbackSetting {
    /// Whether feedback is on.
    pub fn is_on(self) -> bool {
        self == Self::On
    }
}

/// `[encoders]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncodersConfig {
    /// Drive every PC/SC reader no `[[encoders.pcsc]]` entry matches.
    #[serde(default = "default_true")]
    pub auto_pcsc: bool,
    /// Default card wait in seconds.
    #[serde(default = "default_card_wait")]
    pub card_wait_secs: f64,
    /// Default feedback (beep and light) at the end of a job.
    #[serde(default)]
    pub feedback: FeedbackSetting,
    /// `[[encoders.pcsc]]`.
    #[serde(default)]
    pub pcsc: Vec<PcscEntry>,
    /// `[[encoders.pn532]]`.
    #[serde(default)]
    pub pn532: Vec<Pn532Entry>,
}

impl Default for EncodersConfig {
    fn default() -> Self {
        Self {
            auto_pcsc: true,
            card_wait_secs: DEFAULT_CARD_WAIT_SECS,
            feedback: FeedbackSetting::On,
            pcsc: Vec::new(),
            pn532: Vec::new(),
        }
    }
}

/// One `[[encoders.pcsc]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcscEntry {
    /// Exact reader name, or a pattern with `*` and `?`.
    pub reader: String,
    /// Name shown in the cloud; default the reader name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Card wait in seconds; default `encoders.card_wait_secs`.
    #[serde(default)]
    pub card_wait_secs: Option<f64>,
    /// Feedback at the end of a job; default `encoders.feedback`.
    #[serde(default)]
    pub feedback: Option<FeedbackSetting>,
    /// `false`: never drive matching readers (also not automatically).
    #[serde(default = "default_true")]
    pub enabled: bool,
}

/// One `[[encoders.pn532]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pn532Entry {
    /// Serial device path.
    pub device: PathBuf,
    /// Name shown in the cloud; default the device path.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Card wait in seconds; default `encoders.card_wait_secs`.
    #[serde(default)]
    pub card_wait_secs: Option<f64>,
}

/// What the configuration says about one PC/SC reader.
#[derive(Debug, Clone, PartialEq)]
pub enum ReaderPolicy {
    /// Drive it, with this display name and card wait.
    Drive {
        /// Display name.
        display_name: String,
        /// Card wait.
        card_wait: Duration,
        /// Beep and light at the end of a job.
        feedback: bool,
        /// Named in the config (stays known while unplugged), rather than picked up.
        configured: bool,
    },
    /// Leave it alone.
    Ignore,
}

impl Config {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                path.display().to_string(),
                format!("cannot read the configuration: {e}"),
                format!(
                    "create it from examples/encoder-bridge.toml, or pass --config FILE (default {DEFAULT_CONFIG})"
                ),
            )
        })?;
        let mut config = Self::parse(&text)?;
        config.resolve_relative(path.parent().unwrap_or(Path::new(".")));
        Ok(config)
    }

    /// Parses and validates TOML text (relative paths stay relative).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| {
            let message = e.message().to_owned();
            let key = e
                .span()
                .and_then(|span| text.get(..span.start))
                .map_or_else(
                    || "file".into(),
                    |before| format!("line {}", before.lines().count().max(1)),
                );
            ConfigError::new(
                key,
                message,
                "compare with the annotated examples/encoder-bridge.toml",
            )
        })?;
        config.validate()?;
        Ok(config)
    }

    fn resolve_relative(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(p) = self.cloud.token_file.as_mut() {
            fix(p);
        }
        if let Some(p) = self.cloud.ca_file.as_mut() {
            fix(p);
        }
        fix(&mut self.control.socket);
        for key in &mut self.site_keys.keys {
            fix(&mut key.file);
        }
        fix(&mut self.state.dir);
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.media.validate()?;
        let url = self.cloud.url.trim();
        if url.starts_with("ws://") {
            if !self.cloud.allow_insecure {
                return Err(ConfigError::new(
                    "cloud.url",
                    "ws:// sends the token unencrypted",
                    "use wss://, or set cloud.allow_insecure = true for a loopback test",
                ));
            }
        } else if !url.starts_with("wss://") {
            return Err(ConfigError::new(
                "cloud.url",
                format!("{url:?} is not a websocket URL"),
                "write it as wss://host/path",
            ));
        }
        if self.cloud.ca_only && self.cloud.ca_file.is_none() {
            return Err(ConfigError::new(
                "cloud.ca_only",
                "trusts only cloud.ca_file, which is not set",
                "set cloud.ca_file to the PEM file of your CA, or remove cloud.ca_only",
            ));
        }
        for (key, value) in [
            ("cloud.ping_interval_secs", self.cloud.ping_interval_secs),
            ("cloud.pong_timeout_secs", self.cloud.pong_timeout_secs),
        ] {
            if value == 0 {
                return Err(ConfigError::new(
                    key,
                    "must be at least 1 second",
                    format!("set it to a number of seconds (default {DEFAULT_PING_SECS})"),
                ));
            }
        }
        if let Some(name) = &self.cloud.token_env
            && (name.is_empty() || name.contains('='))
        {
            return Err(ConfigError::new(
                "cloud.token_env",
                "not a valid environment variable name",
                "name a variable such as ENCODER_BRIDGE_TOKEN, or remove the key",
            ));
        }
        if self.site_keys.keys.is_empty() {
            return Err(ConfigError::new(
                "site_keys.key",
                "no site key configured",
                "add [[site_keys.key]] with version = 1 and file = \"/etc/encoder-bridge/site-key-v1\"",
            ));
        }
        let mut versions: Vec<u8> = self.site_keys.keys.iter().map(|k| k.version).collect();
        versions.sort_unstable();
        if versions.windows(2).any(|w| w.first() == w.get(1)) {
            return Err(ConfigError::new(
                "site_keys.key.version",
                "the same key version is listed twice",
                "give each [[site_keys.key]] its own version",
            ));
        }
        if let Some(current) = self.site_keys.current
            && !versions.contains(&current)
        {
            return Err(ConfigError::new(
                "site_keys.current",
                format!("no [[site_keys.key]] has version {current}"),
                "set it to one of the listed versions, or remove it (default: the highest)",
            ));
        }
        self.state.validate()?;
        check_wait("encoders.card_wait_secs", self.encoders.card_wait_secs)?;
        for (i, entry) in self.encoders.pcsc.iter().enumerate() {
            if entry.reader.trim().is_empty() {
                return Err(ConfigError::new(
                    format!("encoders.pcsc[{i}].reader"),
                    "empty reader name",
                    "use the name `encoder-bridge readers` prints, or a pattern like \"ACS ACR122U*\"",
                ));
            }
            if let Some(wait) = entry.card_wait_secs {
                check_wait(&format!("encoders.pcsc[{i}].card_wait_secs"), wait)?;
            }
        }
        for (i, entry) in self.encoders.pn532.iter().enumerate() {
            if entry.device.as_os_str().is_empty() {
                return Err(ConfigError::new(
                    format!("encoders.pn532[{i}].device"),
                    "empty device path",
                    "use the stable link the udev rules create, e.g. /dev/encoder-bridge/pn532-0",
                ));
            }
            if let Some(wait) = entry.card_wait_secs {
                check_wait(&format!("encoders.pn532[{i}].card_wait_secs"), wait)?;
            }
        }
        Ok(())
    }

    /// How often the bridge pings the cloud.
    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.cloud.ping_interval_secs.max(1))
    }

    /// How long after a ping without any frame the connection counts as dead.
    pub fn pong_timeout(&self) -> Duration {
        Duration::from_secs(self.cloud.pong_timeout_secs.max(1))
    }

    /// The default card wait.
    pub fn card_wait(&self) -> Duration {
        secs(self.encoders.card_wait_secs)
    }

    /// What to do with the PC/SC reader `name`: the first matching entry decides.
    pub fn reader_policy(&self, name: &str) -> ReaderPolicy {
        for entry in &self.encoders.pcsc {
            if glob_match(&entry.reader, name) {
                if !entry.enabled {
                    return ReaderPolicy::Ignore;
                }
                return ReaderPolicy::Drive {
                    display_name: entry
                        .display_name
                        .clone()
                        .unwrap_or_else(|| name.to_owned()),
                    card_wait: entry.card_wait_secs.map_or_else(|| self.card_wait(), secs),
                    feedback: entry.feedback.unwrap_or(self.encoders.feedback).is_on(),
                    configured: true,
                };
            }
        }
        if self.encoders.auto_pcsc {
            ReaderPolicy::Drive {
                display_name: name.to_owned(),
                card_wait: self.card_wait(),
                feedback: self.encoders.feedback.is_on(),
                configured: false,
            }
        } else {
            ReaderPolicy::Ignore
        }
    }

    /// Readers named exactly (no pattern) and enabled: known even before they appear.
    pub fn exact_readers(&self) -> Vec<String> {
        self.encoders
            .pcsc
            .iter()
            .filter(|e| e.enabled && !e.reader.contains(['*', '?']))
            .map(|e| e.reader.clone())
            .collect()
    }
}

fn check_wait(key: &str, value: f64) -> Result<(), ConfigError> {
    if value.is_finite() && value > 0.0 && value <= 3600.0 {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            format!("{value} is not a card wait"),
            "give seconds between 0 and 3600, e.g. 30",
        ))
    }
}

fn secs(value: f64) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or(Duration::from_secs(30))
}

/// `*` any run of characters, `?` one character; everything else literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || Some(c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).unwrap_or_default().iter().all(|c| *c == '*')
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[cloud]
url = "wss://cloud.example/bridge/v1"
[[site_keys.key]]
version = 1
file = "key"
"#;

    #[test]
    fn minimal_config_takes_the_defaults() {
        let c = Config::parse(MINIMAL).expect("valid");
        assert_eq!(c.state.dir, PathBuf::from(DEFAULT_STATE_DIR));
        assert!(c.encoders.auto_pcsc);
        assert_eq!(c.card_wait(), Duration::from_secs(30));
        assert_eq!(c.ping_interval(), Duration::from_secs(20));
        assert_eq!(c.pong_timeout(), Duration::from_secs(20));
        assert_eq!(c.state.retention(), Retention::default());
        assert!(matches!(
            c.reader_policy("Any Reader 00 00"),
            ReaderPolicy::Drive {
                configured: false,
                ..
            }
        ));
    }

    #[test]
    fn the_retention_window_is_read_and_checked() {
        let c = Config::parse(&format!(
            "{MINIMAL}\n[state]\nretention_days = 0.5\nretention_attempts = 20\n"
        ))
        .expect("valid");
        assert_eq!(
            c.state.retention(),
            Retention {
                keep_for: Duration::from_secs(43_200),
                keep_at_most: 20
            }
        );
        for bad in [
            "retention_days = 0",
            "retention_days = -1",
            "retention_attempts = 0",
        ] {
            let e = Config::parse(&format!("{MINIMAL}\n[state]\n{bad}\n")).expect_err(bad);
            assert!(e.key.starts_with("state.retention"), "{bad}: {e}");
        }
    }

    #[test]
    fn media_default_to_both_and_are_checked() {
        let c = Config::parse(MINIMAL).expect("valid");
        assert_eq!(c.media, MediaConfig::default());
        assert!(c.media.classic && c.media.desfire);
        let c = Config::parse(&format!(
            "{MINIMAL}\n[media]\nclassic = false\ndesfire_picc_key = \"take_ownership\"\n"
        ))
        .expect("valid");
        assert!(!c.media.classic && c.media.desfire);
        assert_eq!(c.media.desfire_picc_key, PiccKeyPolicy::TakeOwnership);
        let e = Config::parse(&format!(
            "{MINIMAL}\n[media]\nclassic = false\ndesfire = false\n"
        ))
        .expect_err("no media");
        assert_eq!(e.key, "media");
        let e = Config::parse(&format!("{MINIMAL}\n[media]\nultralight = true\n"))
            .expect_err("unknown medium");
        assert!(e.to_string().contains("ultralight"), "{e}");
    }

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../../../examples/encoder-bridge.toml");
        let c = Config::parse(text).expect("example");
        assert!(!c.encoders.pcsc.is_empty());
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        let e = Config::parse(&MINIMAL.replace("wss://", "ws://")).expect_err("insecure");
        assert_eq!(e.key, "cloud.url");
        assert!(e.to_string().contains("allow_insecure"));
        let zero = MINIMAL.replace(
            "[[site_keys.key]]",
            "ping_interval_secs = 0\n[[site_keys.key]]",
        );
        let e = Config::parse(&zero).expect_err("zero ping interval");
        assert_eq!(e.key, "cloud.ping_interval_secs");
        let short = MINIMAL.replace(
            "[[site_keys.key]]",
            "ping_interval_secs = 1\npong_timeout_secs = 2\n[[site_keys.key]]",
        );
        let c = Config::parse(&short).expect("short liveness");
        assert_eq!(c.ping_interval(), Duration::from_secs(1));
        assert_eq!(c.pong_timeout(), Duration::from_secs(2));
        let e = Config::parse(&format!("{MINIMAL}\n[encoders]\ncard_wait_secs = -1\n"))
            .expect_err("wait");
        assert_eq!(e.key, "encoders.card_wait_secs");
        let e = Config::parse(&format!("{MINIMAL}\n[state]\ndirr = \"x\"\n")).expect_err("typo");
        assert!(e.problem.contains("dirr"), "{e}");
        assert_eq!(e.key, "line 8");
    }

    #[test]
    fn patterns_and_disabled_readers() {
        let c = Config::parse(&format!(
            "{MINIMAL}\n[[encoders.pcsc]]\nreader = \"ACS*\"\ndisplay_name = \"Desk\"\ncard_wait_secs = 5\nfeedback = \"off\"\n[[encoders.pcsc]]\nreader = \"Vendor ?\"\nenabled = false\n"
        ))
        .expect("valid");
        assert_eq!(
            c.reader_policy("ACS ACR122U 00 00"),
            ReaderPolicy::Drive {
                display_name: "Desk".into(),
                card_wait: Duration::from_secs(5),
                feedback: false,
                configured: true
            }
        );
        assert_eq!(c.reader_policy("Vendor X"), ReaderPolicy::Ignore);
        assert!(matches!(
            c.reader_policy("Other"),
            ReaderPolicy::Drive { feedback: true, .. }
        ));
        let e = Config::parse(&format!("{MINIMAL}\n[encoders]\nfeedback = \"loud\"\n"))
            .expect_err("not on/off");
        assert!(
            e.problem.contains("on") && e.problem.contains("off"),
            "{e:?}"
        );
        assert!(c.exact_readers().is_empty());
    }

    #[test]
    fn glob() {
        assert!(glob_match("a*c", "abbbc"));
        assert!(glob_match("*", ""));
        assert!(glob_match("Virtual PCD ? 00 0?", "Virtual PCD 1 00 01"));
        assert!(!glob_match("a*c", "abd"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
    }
}
