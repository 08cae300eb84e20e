//! Shared by the `pn532_*` tests: a running `encoder-sim pn532` behind a pty link.

#![allow(dead_code, clippy::missing_panics_doc)]

use std::path::{Path, PathBuf};
use std::process::Command;

use encoder_tests::{Chatty, binary};

/// A running PN532 emulator.
pub struct Emulator {
    process: Chatty,
    link: PathBuf,
}

impl Emulator {
    /// Starts `encoder-sim pn532 --link LINK ARGS` and waits for `ready` and `present`.
    pub fn start(link: &Path, args: &[&str]) -> Self {
        let mut command = Command::new("setpriv");
        command
            .arg("--pdeathsig")
            .arg("KILL")
            .arg(binary("encoder-sim"))
            .arg("pn532")
            .arg("--link")
            .arg(link)
            .args(args);
        let mut emulator = Self {
            process: Chatty::spawn(command, "PN532 emulator"),
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
        self.process.expect_line(line);
    }

    /// Sends a stdin command.
    pub fn command(&mut self, command: &str) {
        self.process.command(command);
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
        self.process.quit()
    }
}
