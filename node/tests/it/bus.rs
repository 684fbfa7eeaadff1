//! A `dbus-daemon` of the test's own (a session bus configuration), for
//! whatever bus a test needs: the session bus (a keyring, a notification
//! server) or a stand-in for the system bus (logind). Killed when dropped.
//! The app's tests include this file too.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub(crate) struct Bus {
    daemon: Child,
    pub(crate) address: String,
}

impl Bus {
    pub(crate) fn start() -> Bus {
        Bus::start_with(|_| {})
    }

    /// [`Bus::start`], the daemon's command prepared by `env` first (its
    /// home and runtime directories).
    pub(crate) fn start_with(env: impl FnOnce(&mut Command)) -> Bus {
        let mut daemon = Command::new("dbus-daemon");
        env(&mut daemon);
        let mut daemon = daemon
            .args(["--session", "--nofork", "--nopidfile", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (Debian package dbus-daemon; scripts/env.sh installs it)");
        let mut address = String::new();
        BufReader::new(daemon.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        Bus {
            daemon,
            address: address.trim().to_owned(),
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}
