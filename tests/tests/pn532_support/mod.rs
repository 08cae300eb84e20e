//! Shared by the `pn532_*` tests: a running `encoder-sim pn532` behind a pty link.

#![allow(dead_code, clippy::missing_panics_doc)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use encoder_tests::{STARTUP, binary};

/// A running PN532 emulator.
pub struct Emulator {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    link: PathBuf,
}

impl Emulator {
    /// Starts `encoder-sim pn532 --link LINK ARGS` and waits for `ready` and `present`.
    pub fn start(link: &Path, args: &[&str]) -> Self {
        let mut child = Command::new("setpriv")
            .arg("--pdeathsig")
            .arg("KILL")
            .arg(binary("encoder-sim"))
            .arg("pn532")
            .arg("--link")
            .arg(link)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start encoder-sim pn532");
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
        let mut emulator = Self {
            child,
            stdin,
            lines,
            link: link.to_owned(),
        };
        emulator.expect_line("ready");
        emulator.expect_line("present");
        emulator
    }

    /// The device link.
    pub fn link(&self) -> &Path {
        &self.link
    }

    /// The link as a string (the encoder's name).
    pub fn path(&self) -> String {
        self.link.display().to_string()
    }

    /// Waits for the emulator to print `line`.
    pub fn expect_line(&mut self, line: &str) {
        let deadline = Instant::now() + STARTUP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(got) if got.trim() == line => return,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!("emulator did not say {line:?}"),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("emulator exited before saying {line:?}")
                }
            }
        }
    }

    /// Sends a stdin command.
    pub fn command(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{command}").expect("write to emulator");
        stdin.flush().expect("flush");
    }

    /// Takes the card out of the field.
    pub fn remove(&mut self) {
        self.command("remove");
        self.expect_line("removed");
    }

    /// Puts the card back.
    pub fn insert(&mut self) {
        self.command("insert");
        self.expect_line("present");
    }

    /// USB unplug: the link disappears.
    pub fn unplug(&mut self) {
        self.command("unplug");
        self.expect_line("unplugged");
        assert!(!self.link.exists(), "link still there after unplug");
    }

    /// Plugged in again.
    pub fn plug(&mut self) {
        self.command("plug");
        self.expect_line("ready");
    }

    /// Ends the emulator (saves its image) and waits for it.
    pub fn quit(mut self) -> std::process::ExitStatus {
        self.command("quit");
        self.stdin = None;
        self.child.wait().expect("wait")
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
