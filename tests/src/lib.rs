//! Test support: the private pcscd + vpcd rig and virtual cards, for integration tests.
//!
//! Each test (nextest runs every test in its own process) starts its own [`Rig`]: a pcscd in
//! a mount and network namespace of its own (`rig/pcsc-rig`), so tests run in parallel without
//! sharing readers or ports, and nothing outlives them: every helper process is started with
//! a parent-death signal.
//!
//! A missing rig (no root, pcscd or vpcd not installed) is a test failure, never a skip.

#![allow(clippy::missing_panics_doc)]

pub mod cloud;
pub mod daemon;
pub mod e2e;
pub mod pki;

pub mod jobs;
pub mod soak;

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long to wait for helper processes to come up.
pub const STARTUP: Duration = Duration::from_secs(15);

/// How long a reader stays without a card before the harness places another one: longer than
/// pcscd's 400 ms poll of vpcd readers, or pcscd may miss the change (see encoder-sim's
/// `MIN_ABSENCE`, which applies the same rule to a card taken out and put back).
pub const MIN_ABSENCE: Duration = Duration::from_millis(600);

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Starts `encoder-sim pn532 ARGS --link LINK` (killed when the caller dies) and waits for its
/// `ready` line; its further output is drained. For benchmarks: the tests have
/// `pn532_support::Emulator`.
pub fn spawn_pn532(link: &Path, args: &[&str]) -> Child {
    let mut sim = Command::new("setpriv")
        .args(["--pdeathsig", "KILL"])
        .arg(binary("encoder-sim"))
        .arg("pn532")
        .args(args)
        .arg("--link")
        .arg(link)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start encoder-sim pn532");
    let mut lines = BufReader::new(sim.stdout.take().expect("stdout")).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l == "ready")),
        "PN532 emulator did not start"
    );
    std::thread::spawn(move || for _ in lines {});
    sim
}

/// A binary of the workspace (`encoder-sim`, `encoder-bridge`), built next to the test binary.
///
/// `make test` builds them first; `ENCODER_SIM` / `ENCODER_BRIDGE` override the path. A
/// relative override (`target/release/encoder-sim`) is taken from the workspace root, where
/// the Makefile and the README's commands run: cargo starts tests and benches in the
/// package's directory (`tests/`), so the path must not depend on the working directory.
pub fn binary(name: &str) -> PathBuf {
    let var = name.to_uppercase().replace('-', "_");
    if let Some(path) = std::env::var_os(&var) {
        let path = workspace_path(Path::new(&path));
        assert!(
            path.components().count() < 2 || path.exists(),
            "{var} names {}, which does not exist (build it, or give a path from the workspace \
             root or an absolute one)",
            path.display()
        );
        return path;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace --bins` first (or set {var})",
        path.display()
    );
    path
}

/// `path` itself when it is absolute or a bare program name (looked up on `PATH`), else `path`
/// taken from the workspace root.
fn workspace_path(path: &Path) -> PathBuf {
    if path.is_absolute() || path.components().count() < 2 {
        path.to_path_buf()
    } else {
        workspace().join(path)
    }
}

/// Panics unless this process runs as root (the rig's namespaces need it); `what` names the
/// program for the message.
pub fn assert_root(what: &str) {
    assert!(
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout == b"0\n"),
        "{what} needs root: the rig runs pcscd in its own namespaces"
    );
}

/// A child process killed with the test: `setpriv --pdeathsig KILL`.
fn guarded(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg("--pdeathsig").arg("KILL").arg(program);
    cmd
}

/// A private pcscd with `readers` virtual readers.
pub struct Rig {
    dir: tempfile::TempDir,
    holder: Child,
    pcscd: Option<Child>,
    holder_pid: u32,
    /// The configured names of the vpcd readers (one per two slots), if not the default.
    names: Vec<String>,
    /// When the last card left each reader slot.
    vacated: Arc<Mutex<HashMap<usize, Instant>>>,
}

impl Rig {
    /// Starts a rig with `readers` virtual readers (named by [`Rig::reader_name`]).
    pub fn start(readers: usize) -> Self {
        Self::start_named(readers, &[])
    }

    /// Starts a rig with `readers` virtual readers, reader `2n` (and `2n + 1`) named
    /// `names[n]` as pcscd's reader.conf FRIENDLYNAME (pcscd appends ` 00 00`, ` 00 01`);
    /// [`Rig::name_of`] gives the names pcscd reports.
    pub fn start_named(readers: usize, names: &[&str]) -> Self {
        let script = workspace().join("rig/pcsc-rig");
        let dir = tempfile::Builder::new()
            .prefix("pcsc-rig.")
            .tempdir()
            .expect("tempdir");
        if !names.is_empty() {
            std::fs::write(dir.path().join("names"), names.join("\n") + "\n").expect("names");
        }
        let holder = guarded(&script)
            .arg("holder")
            .arg(dir.path())
            .arg(readers.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot run rig/pcsc-rig (is util-linux installed?)");
        let pid_file = dir.path().join("holder.pid");
        wait_until(STARTUP, || pid_file.exists());
        let holder_pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!("the rig's namespace did not come up (needs root, unshare and iproute2)")
            });
        let mut rig = Self {
            dir,
            holder,
            pcscd: None,
            holder_pid,
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            vacated: Arc::default(),
        };
        rig.use_in_this_process();
        rig.start_pcscd();
        rig
    }

    /// The rig's state directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// pcscd's socket, as reachable from outside the namespace.
    pub fn socket(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/root/run/pcscd/pcscd.comm",
            self.holder_pid
        ))
    }

    /// The environment a client process needs to use this rig.
    pub fn env(&self) -> (&'static str, OsString) {
        ("PCSCLITE_CSOCK_NAME", self.socket().into_os_string())
    }

    /// Points this process's pcsc-lite client at the rig ([`Rig::start`] does it; one rig per
    /// process, since libpcsclite reads the variable once).
    #[allow(unsafe_code)]
    pub fn use_in_this_process(&self) {
        let (key, value) = self.env();
        // SAFETY: called at the start of a test, before this test starts threads that read the
        // environment; nextest runs each test in a process of its own.
        unsafe { std::env::set_var(key, value) };
    }

    /// The PC/SC name of reader `slot` (0-based) of a rig with default names: vpcd gives each
    /// configured reader two slots.
    pub fn reader_name(slot: usize) -> String {
        format!("Virtual PCD {} 00 {:02}", slot / 2, slot % 2)
    }

    /// The PC/SC name of reader `slot` of this rig (see [`Rig::start_named`]).
    pub fn name_of(&self, slot: usize) -> String {
        match self.names.get(slot / 2) {
            Some(name) => format!("{name} 00 {:02}", slot % 2),
            None => Self::reader_name(slot),
        }
    }

    /// Starts pcscd (again) in the rig's namespace and waits for its socket.
    pub fn start_pcscd(&mut self) {
        assert!(self.pcscd.is_none(), "pcscd already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir().join("pcscd.log"))
            .expect("pcscd.log");
        let child = guarded(workspace().join("rig/pcsc-rig"))
            .arg("pcscd")
            .arg(self.dir())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("cannot start pcscd");
        self.pcscd = Some(child);
        let socket = self.socket();
        wait_until(STARTUP, || socket.exists());
        assert!(socket.exists(), "pcscd did not start: {}", self.log());
    }

    /// Kills pcscd (SIGKILL, as a crash) and waits until its socket is gone.
    pub fn kill_pcscd(&mut self) {
        if let Some(mut child) = self.pcscd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let socket = self.socket();
        // pcscd's tmpfs keeps a stale socket file after a crash: remove it so a restart is
        // observable, as a system restart of pcscd.socket would do.
        let _ = std::fs::remove_file(&socket);
    }

    /// Rewrites the reader configuration to `readers` readers; takes effect at the next
    /// [`Rig::start_pcscd`] (pcscd 1.9 reads reader.conf.d at start only).
    pub fn set_readers(&self, readers: usize) {
        let status = Command::new(workspace().join("rig/pcsc-rig"))
            .arg("conf")
            .arg(self.dir())
            .arg(readers.to_string())
            .status()
            .expect("pcsc-rig conf");
        assert!(status.success());
    }

    /// pcscd's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("pcscd.log")).unwrap_or_default()
    }

    /// Starts `encoder-sim card ARGS` on reader `slot` and waits until the card is present.
    pub fn card(&self, slot: usize, args: &[&str]) -> SimCard {
        let vacated = self
            .vacated
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&slot)
            .copied();
        if let Some(at) = vacated {
            std::thread::sleep(MIN_ABSENCE.saturating_sub(at.elapsed()));
        }
        let mut command = guarded("nsenter");
        command
            .arg("--target")
            .arg(self.holder_pid.to_string())
            .arg("--net")
            .arg("--")
            .arg(binary("encoder-sim"))
            .arg("card")
            .arg("--vpcd")
            .arg(format!("127.0.0.1:{}", 35963 + slot))
            .args(args);
        let mut card = SimCard {
            process: Chatty::spawn(command, "virtual card"),
            slot,
            vacated: Arc::clone(&self.vacated),
        };
        card.expect_line("present");
        assert!(
            self.wait_reader(slot, true),
            "pcscd did not see the card on reader {slot}: {}",
            self.log()
        );
        card
    }

    /// Waits (event-driven, up to [`STARTUP`]) until pcscd reports reader `slot` with a card
    /// (`present`) or without one; `false` on timeout.
    pub fn wait_reader(&self, slot: usize, present: bool) -> bool {
        let Ok(ctx) = pcsc::Context::establish(pcsc::Scope::User) else {
            return false;
        };
        let Ok(name) = std::ffi::CString::new(self.name_of(slot)) else {
            return false;
        };
        let mut states = [pcsc::ReaderState::new(name, pcsc::State::UNAWARE)];
        let deadline = Instant::now() + STARTUP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if ctx.get_status_change(left, &mut states).is_err() {
                return false;
            }
            let [state] = &mut states;
            let event = state.event_state();
            if event.contains(pcsc::State::PRESENT) == present
                && !event.intersects(pcsc::State::UNKNOWN | pcsc::State::MUTE)
            {
                return true;
            }
            if left.is_zero() {
                return false;
            }
            state.sync_current_state();
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.kill_pcscd();
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// A child process that says what happens to it in lines on stdout (`present`, `removed`,
/// `ready`, ...) and takes commands in lines on stdin: `encoder-sim card` and `pn532`.
/// Killed when dropped.
pub struct Chatty {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    what: &'static str,
}

impl Chatty {
    /// Spawns `command` (with its stdin and stdout piped; `what` names it in panics), and
    /// runs the program under a parent-death signal so it dies with the test.
    pub fn spawn(mut command: Command, what: &'static str) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {what}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for read in BufReader::new(stdout).lines() {
                let Ok(text) = read else { break };
                if tx.send(text).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            stdin,
            lines,
            what,
        }
    }

    /// Waits (up to [`STARTUP`]) for the process to print `line`; panics otherwise.
    pub fn expect_line(&mut self, line: &str) {
        let deadline = Instant::now() + STARTUP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(got) if got.trim() == line => return,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!("the {} did not say {line:?}", self.what),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the {} exited before saying {line:?}", self.what)
                }
            }
        }
    }

    /// Sends a command line.
    pub fn command(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{command}").expect("write to the process");
        stdin.flush().expect("flush");
    }

    /// Sends `quit`, closes stdin and waits for the exit status.
    pub fn quit(&mut self) -> ExitStatus {
        self.command("quit");
        self.stdin = None;
        self.child.wait().expect("wait")
    }
}

impl Chatty {
    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Chatty {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running `encoder-sim card`.
pub struct SimCard {
    process: Chatty,
    slot: usize,
    vacated: Arc<Mutex<HashMap<usize, Instant>>>,
}

impl SimCard {
    /// Waits (up to [`STARTUP`]) for the card to print `line`; panics otherwise.
    pub fn expect_line(&mut self, line: &str) {
        self.process.expect_line(line);
    }

    /// Sends a control command (`remove`, `insert`, `quit`).
    pub fn command(&mut self, command: &str) {
        self.process.command(command);
    }

    /// Takes the card out of the field and waits until it is.
    pub fn remove(&mut self) {
        self.command("remove");
        self.expect_line("removed");
    }

    /// Puts the card back and waits until it is present.
    pub fn insert(&mut self) {
        self.command("insert");
        self.expect_line("present");
    }

    /// Ends the card process (SIGTERM path: saves its image) and returns its exit status.
    pub fn quit(mut self) -> ExitStatus {
        self.process.quit()
    }
}

impl Drop for SimCard {
    fn drop(&mut self) {
        self.process.kill();
        self.vacated
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(self.slot, Instant::now());
    }
}

/// Waits until `ready` holds or `limit` passes; test-harness only (helper processes give no
/// event to wait on other than a file appearing).
pub fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ready()
}

#[cfg(test)]
mod tests {
    use super::{workspace, workspace_path};
    use std::path::Path;

    #[test]
    fn binary_overrides_do_not_depend_on_the_working_directory() {
        // As `make bench` used to pass it: relative to the workspace root, while cargo runs
        // the bench in tests/.
        let relative = workspace_path(Path::new("target/release/encoder-sim"));
        assert!(relative.is_absolute());
        assert_eq!(relative, workspace().join("target/release/encoder-sim"));
        assert_eq!(
            workspace_path(Path::new("/usr/bin/encoder-sim")),
            Path::new("/usr/bin/encoder-sim")
        );
        // A bare name is left to PATH.
        assert_eq!(
            workspace_path(Path::new("encoder-sim")),
            Path::new("encoder-sim")
        );
    }
}
