//! Shared by the `pn532_*` tests: a running `encoder-sim pn532` behind a pty link.

#![allow(dead_code, clippy::missing_panics_doc)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// Runs a libnfc-based tool (libnfc-bin, libfreefare-bin) in `cwd` against the emulator at
/// `link` through libnfc's `pn532_uart` driver, and asserts that it succeeded.
pub fn libnfc_tool(link: &Path, program: &str, args: &[&str], cwd: &Path) -> Output {
    let output = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .env("LIBNFC_DEVICE", format!("pn532_uart:{}", link.display()))
        // Only the device given: no USB scan.
        .env("LIBNFC_AUTO_SCAN", "false")
        .env("LIBNFC_LOG_LEVEL", "1")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {program} (make deps: apt-get install libnfc-bin libfreefare-bin): {e}"
            )
        });
    assert!(
        output.status.success(),
        "{program} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
