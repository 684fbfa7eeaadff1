//! The `strand` binary, as separate processes on loopback.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bus::Bus;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_strand");

/// `strand run` on loopback only, dialling `peers`.
pub(crate) fn run_args<'a>(peers: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        "--no-mdns",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--punch-listen",
        "/ip4/127.0.0.1/tcp/0",
    ];
    for p in peers {
        args.extend(["--peer", p]);
    }
    args
}

pub(crate) struct User {
    pub(crate) dir: PathBuf,
    pub(crate) pass: String,
}

impl User {
    pub(crate) fn init(root: &Path, name: &str) -> User {
        let u = User {
            dir: root.join(name),
            pass: format!("{name} passphrase"),
        };
        let out = u.cmd(&["init", "--name", name]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        u
    }

    pub(crate) fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env("STRAND_PROFILE", &self.dir)
            .env("STRAND_PASSPHRASE", &self.pass)
            // Cheap Argon2id for new profiles (test builds only).
            .env("STRAND_INSECURE_KDF_FOR_TESTS", "1")
            .env_remove("STRAND_LOG");
        c
    }

    pub(crate) fn cmd(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `strand ARGS` with `input` on its standard input.
    pub(crate) fn piped(&self, args: &[&str], input: Vec<u8>) -> Output {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // Written on its own thread: strand may stop reading early.
        let writer = std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut stdin, &input);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        out
    }

    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(
            out.status.success(),
            "strand {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub(crate) fn invite(&self) -> String {
        self.ok(&["invite"]).trim().to_owned()
    }

    /// `strand run` on loopback; returns the process and its address.
    pub(crate) fn run(&self, peers: &[&str]) -> (Child, String) {
        self.run_also(peers, &[])
    }

    /// [`User::run`] with `extra` flags.
    pub(crate) fn run_also(&self, peers: &[&str], extra: &[&str]) -> (Child, String) {
        let mut args = run_args(peers);
        args.extend_from_slice(extra);
        self.run_with(&args, self.command())
    }

    /// The node's log (stderr of its `strand run`).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.with_extension("log")).unwrap_or_default()
    }

    /// Spawns `strand ARGS` (a `run`) with `command`, its log in a file next
    /// to the profile; waits for its first listening address.
    pub(crate) fn run_with(&self, args: &[&str], command: Command) -> (Child, String) {
        let (child, lines) = self.run_printing(args, command, |_| true);
        let line = lines.first().map_or("", String::as_str);
        // "LAN: ADDR", or "hole punching: ", "relayed: " without a LAN.
        let addr = line
            .split_once(": ")
            .filter(|(label, _)| ["LAN", "hole punching", "relayed"].contains(label))
            .map(|(_, a)| a)
            .unwrap_or_else(|| panic!("unexpected: {line:?}"))
            .to_owned();
        (child, addr)
    }

    /// [`User::run_with`], returning what it printed first: its lines
    /// (line endings trimmed) up to the first that `last` says ends what
    /// is wanted, or the twelfth, or the end.
    pub(crate) fn run_printing(
        &self,
        args: &[&str],
        mut command: Command,
        last: impl Fn(&str) -> bool,
    ) -> (Child, Vec<String>) {
        let log = std::fs::File::create(self.dir.with_extension("log")).unwrap();
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        while lines.len() < 12 {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            let line = line.trim_end().to_owned();
            let done = last(&line);
            lines.push(line);
            if done {
                break;
            }
        }
        // Keep draining stdout so the node never blocks on it.
        std::thread::spawn(move || for _ in out.lines() {});
        (child, lines)
    }

    pub(crate) fn read(&self, contact: &str) -> Vec<Value> {
        let out = self.cmd(&["read", contact, "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn pair(root: &Path) -> (User, User) {
    let a = User::init(root, "alice");
    let b = User::init(root, "bob");
    a.ok(&["add", &b.invite(), "--name", "bob"]);
    b.ok(&["add", &a.invite(), "--name", "alice"]);
    (a, b)
}

pub(crate) fn eventually(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) struct Killed(pub(crate) Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `strand run` as `user` ([`User::run`], no peers), once its control
/// socket is there: the node, and the socket's path.
fn run_serving(user: &User) -> (Killed, PathBuf) {
    let (run, _) = user.run(&[]);
    let run = Killed(run);
    let socket = user.dir.join("control.sock");
    eventually("the control socket", Duration::from_secs(20), || {
        socket.exists()
    });
    (run, socket)
}

#[test]
fn two_processes_exchange_100_messages_each_way() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    let (b_run, b_addr) = b.run(&[]);
    let _b_run = Killed(b_run);
    let (a_run, _) = a.run(&[&b_addr]);
    let _a_run = Killed(a_run);
    for i in 0..100 {
        a.ok(&["send", "bob", &format!("from alice {i}")]);
        b.ok(&["send", "alice", &format!("from bob {i}")]);
    }
    eventually(
        "200 messages on both sides, all delivered",
        Duration::from_secs(90),
        || {
            let (ma, mb) = (a.read("bob"), b.read("alice"));
            let delivered = |m: &[Value]| {
                m.iter()
                    .filter(|m| m["from"] == "me")
                    .all(|m| m["delivery"] == "delivered")
            };
            ma.len() == 200 && mb.len() == 200 && delivered(&ma) && delivered(&mb)
        },
    );
    let (ma, mb) = (a.read("bob"), b.read("alice"));
    let ids = |m: &[Value]| {
        m.iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let sorted = |m: &[Value]| {
        let mut ids = ids(m);
        ids.sort();
        ids
    };
    assert_eq!(sorted(&ma), sorted(&mb), "same log");
    let mut unique = sorted(&ma);
    unique.dedup();
    assert_eq!(unique.len(), 200, "exactly once");
    // Each side shows them in order: by time, except that one which
    // arrives claiming to be older than what was shown goes below it.
    for m in [&ma, &mb] {
        let shown: Vec<u64> = m.iter().map(|m| m["shown"].as_u64().unwrap()).collect();
        assert!(shown.windows(2).all(|w| w[0] <= w[1]), "in the order shown");
        assert!(m.iter().all(|m| m["shown"].as_u64() >= m["time"].as_u64()));
    }
    for i in 0..100 {
        assert!(ma.iter().any(|m| m["text"] == format!("from bob {i}")));
        assert!(mb.iter().any(|m| m["text"] == format!("from alice {i}")));
    }
}

#[test]
fn a_receiver_killed_mid_sync_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    // Alice wrote 10,000 messages while offline.
    {
        let p = strand_node::Profile::open(&a.dir, &a.pass).unwrap();
        let mut rng = strand_node::os_rng();
        let t0 = strand_node::now() - 20_000_000;
        for i in 0..10_000u64 {
            p.write("bob", &format!("bulk {i}"), t0 + i * 1000, &mut rng)
                .unwrap();
        }
    }
    let (b_run, b_addr) = b.run(&[]);
    let mut b_run = Killed(b_run);
    let (a_run, _) = a.run(&[&b_addr]);
    let _a_run = Killed(a_run);
    // Polled with `status` (a count), not `read` (the whole conversation,
    // which takes longer than the rest of the sync), and as fast as it
    // answers: optimised, the node moves 10,000 messages in well under a
    // second.
    let start = Instant::now();
    loop {
        let out = b.cmd(&["status", "--json"]);
        let some = out.status.success()
            && serde_json::from_slice::<Value>(&out.stdout)
                .ok()
                .and_then(|v| v["messages"].as_u64())
                .is_some_and(|n| n > 0);
        if some {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for bob to receive part of the sync"
        );
    }
    // kill -9 in the middle.
    b_run.0.kill().unwrap();
    b_run.0.wait().unwrap();
    let partial = b.read("alice").len();
    assert!(
        partial < 10_000,
        "killed after the sync finished ({partial}); the test proves nothing"
    );
    // Restart on the same address is not needed: Alice keeps dialling the old
    // one, so Bob dials Alice instead.
    let a_addr = {
        let s = a.ok(&["status", "--json"]);
        let v: Value = serde_json::from_str(&s).unwrap();
        v["transports"][0]["addresses"][0]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (b_run2, _) = b.run(&[&a_addr]);
    let _b_run2 = Killed(b_run2);
    let stored = || {
        let out = b.cmd(&["status", "--json"]);
        serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v["messages"].as_u64())
    };
    eventually("all 10,000 at bob", Duration::from_secs(120), || {
        stored() == Some(10_000)
    });
    let m = b.read("alice");
    let mut ids: Vec<_> = m
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10_000, "nothing duplicated");
    eprintln!("killed with {partial} of 10,000 stored");
}

#[test]
fn a_stranger_on_the_lan_learns_and_gets_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    let mallory = User::init(tmp.path(), "mallory");
    // Mallory has Alice's invite, but Alice never added her.
    mallory.ok(&["add", &a.invite(), "--name", "alice"]);
    mallory.ok(&["send", "alice", "let me in"]);
    a.ok(&["send", "bob", "private"]);
    let (a_run, a_addr) = a.run(&[]);
    let _a_run = Killed(a_run);
    let (m_run, _) = mallory.run(&[&a_addr]);
    let _m_run = Killed(m_run);
    let (b_run, _) = b.run(&[&a_addr]);
    let _b_run = Killed(b_run);
    eventually("bob gets alice's message", Duration::from_secs(30), || {
        b.read("alice").len() == 1
    });
    std::thread::sleep(Duration::from_secs(2));
    let v: Value = serde_json::from_str(&mallory.ok(&["status", "--json"])).unwrap();
    assert_eq!(
        v["seen"].as_array().unwrap().len(),
        0,
        "mallory never had a session: {v}"
    );
    assert_eq!(
        mallory.read("alice").len(),
        1,
        "mallory holds only her own message"
    );
    assert!(a.read("bob").iter().all(|m| m["text"] != "let me in"));
    // The real pair keeps syncing.
    b.ok(&["send", "alice", "still here"]);
    eventually("alice gets bob's reply", Duration::from_secs(30), || {
        a.read("bob").len() == 2
    });
}

#[test]
fn bad_input_on_the_command_line_is_a_clear_error_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _b) = pair(tmp.path());
    // Wrong passphrase.
    let out = a
        .command()
        .args(["contacts"])
        .env("STRAND_PASSPHRASE", "nope")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));
    // A corrupt invite code.
    let mut code = _b.invite();
    code.replace_range(20..21, if &code[20..21] == "a" { "b" } else { "a" });
    let out = a.cmd(&["add", &code, "--name", "eve"]);
    assert_eq!(out.status.code(), Some(1), "a bad value is a usage error");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("checksum"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(a.ok(&["contacts", "--json"]).matches("\"name\"").count(), 1);
    // Usage errors exit 1.
    assert_eq!(a.cmd(&["send"]).status.code(), Some(1));
    // Missing files are said in words, not as the OS's error number.
    let missing = tmp.path().join("no-such-file.txt");
    let missing = missing.to_str().unwrap();
    for args in [
        vec!["send", "bob", "--file", missing],
        vec!["import", missing],
        vec!["--passphrase-file", missing, "contacts"],
    ] {
        let out = a.cmd(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(
            err.contains(missing) && err.contains("no such file or folder"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("os error"), "{args:?}: {err}");
    }
    // A text longer than a message holds, or not text, on standard
    // input: said, exit 1, nothing written; so with a running node, even
    // one longer than its requests may be (before: "Broken pipe (os
    // error 32)", and 1 MiB + 1 exited 2).
    let max = strand_sync::limits::MAX_BODY_LEN;
    let too_long = |a: &User, len: usize| {
        let before = a.read("bob").len();
        let out = a.piped(&["send", "bob"], vec![b'a'; len]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{len}: {err}");
        assert!(
            err.contains("longer than one holds") && !err.contains("os error"),
            "{err}"
        );
        assert_eq!(a.read("bob").len(), before);
    };
    too_long(&a, max + 1);
    // A file or message that cannot be (a folder to send, an id that
    // names no message) is a bad value too: exit 1, and no folder made
    // to save into (before: exit 2).
    let into = tmp.path().join("saved");
    let into = into.to_str().unwrap();
    let folder = tmp.path().to_str().unwrap();
    for args in [
        vec!["save", "zz", into],
        vec!["save", "00000000", into],
        vec!["send", "bob", "--file", folder],
    ] {
        let out = a.cmd(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            ["not a message id", "no message", "is not a file"]
                .iter()
                .any(|why| err.contains(why)),
            "{args:?}: {err}"
        );
    }
    assert!(!Path::new(into).exists());
    // A text of white space only is nothing to send, as in the app
    // (before: sent to Bob, exit 0).
    let blank = |a: &User| {
        let before = a.read("bob").len();
        for out in [
            a.cmd(&["send", "bob", "   "]),
            a.piped(&["send", "bob"], b" \n\t\n".to_vec()),
        ] {
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{err}");
            assert!(err.contains("nothing to send"), "{err}");
        }
        assert_eq!(a.read("bob").len(), before);
    };
    blank(&a);
    let out = a.piped(&["send", "bob"], b"\xff\xfe text".to_vec());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not UTF-8"));
    // A second process on a running profile.
    let (run, _) = a.run(&[]);
    let _run = Killed(run);
    too_long(&a, max + 1);
    too_long(&a, 9 << 20);
    blank(&a);
    // A text as long as a message holds, in a conversation with a timer
    // (which takes 8 bytes of it): the node says so, exit 1.
    a.ok(&["timer", "bob", "1h"]);
    let out = a.piped(&["send", "bob"], vec![b'a'; max]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("8 bytes less with a timer"), "{err}");
    let out = a
        .command()
        .args(["run", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in use") && err.contains(&a.dir.display().to_string()),
        "{err}"
    );
    // ...while commands go through the running node.
    assert!(a.ok(&["status"]).contains("node running"));
}

/// Regression: a follower that leaves its events unread for a minute
/// (a terminal scrolled back; here, stopped) is let go by the node, and
/// `strand read --follow` then ended, silently, as if the node had
/// stopped. It now follows again, and what arrives later is printed.
///
/// The node lets a follower go once writing one event to it has waited
/// a minute, that is once its socket is full. The event that says a text
/// arrived carries only the start of it (`RECEIVED_PREVIEW` characters),
/// so the socket is filled with many texts, not a few long ones (as
/// before previews): [`TEXTS_TO_FILL_A_FOLLOWER`] of them, which fill it
/// only because the node bounds a follower's send buffer
/// (`FOLLOWER_SEND_BUFFER`): without that bound the follower is never let
/// go, and the test fails waiting for it.
#[test]
fn a_follower_let_go_for_reading_slowly_follows_again() {
    use strand_node::runtime::api::{Answer, Reply, Request, Target};
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    let mut command = a.command();
    command.env("STRAND_LOG", "strand_node::runtime::control=debug");
    let (a_run, a_addr) = a.run_with(&run_args(&[]), command);
    let _a_run = Killed(a_run);
    let (b_run, _) = b.run(&[&a_addr]);
    let _b_run = Killed(b_run);
    b.ok(&["send", "alice", "hello"]);
    eventually("the first text", Duration::from_secs(60), || {
        a.read("bob").len() == 1
    });
    let mut follow = a
        .command()
        .args(["read", "bob", "--follow", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = follow.id().to_string();
    let out = BufReader::new(follow.stdout.take().unwrap());
    let mut follow = Killed(follow);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str::<Value>(&line).unwrap());
        }
    });
    let next = || rx.recv_timeout(Duration::from_secs(60)).expect("a line");
    assert_eq!(next()["text"], "hello");
    let signal = |which: &str| {
        assert!(Command::new("kill")
            .args([which, &pid])
            .status()
            .unwrap()
            .success())
    };
    // Stopped, it reads nothing: the texts' events fill its socket, and
    // a minute on the node lets it go. Each text is a preview's worth of
    // control characters, then its number. They are sent as `strand
    // send` sends them, straight to Bob's node (quicker than a process
    // for each).
    signal("-STOP");
    let texts = TEXTS_TO_FILL_A_FOLLOWER;
    let start = "\u{1}".repeat(strand_node::limits::RECEIVED_PREVIEW);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for i in 0..texts {
            let send = Request::Send {
                to: Target::Contact("alice".into()),
                text: format!("{start}{i}"),
            };
            match ask_node(&b.dir, send).await {
                Answer::Ok(Reply::Written { .. }) => {}
                other => panic!("text {i}: {other:?}"),
            }
        }
    });
    eventually("the texts", Duration::from_secs(120), || {
        a.read("bob").len() == 1 + texts
    });
    eventually("the follower let go", Duration::from_secs(150), || {
        a.log().contains("a follower stopped reading")
    });
    signal("-CONT");
    // What it held comes out, every text whole (as `read` reads them back
    // from the conversation); then it follows again.
    let mut printed: Vec<usize> = (0..texts)
        .map(|_| {
            let line = next();
            let text = line["text"].as_str().expect("a text");
            let number = text.strip_prefix(start.as_str()).expect("one of the texts");
            number.parse::<usize>().expect("its number")
        })
        .collect();
    printed.sort_unstable();
    assert_eq!(printed, (0..texts).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        follow.0.try_wait().unwrap().is_none(),
        "strand read --follow ended when the node let it go"
    );
    b.ok(&["send", "alice", "still there?"]);
    assert_eq!(next()["text"], "still there?");
}

/// How many texts [`a_follower_let_go_for_reading_slowly_follows_again`]
/// sends a stopped follower so that their events fill its socket: 40.
///
/// On a Unix stream socket what is written and not yet read is bounded by
/// the sender's buffer alone (the receiver's plays no part), and the node
/// sets that for a follower to `FOLLOWER_SEND_BUFFER`, 16,384 bytes,
/// which Linux doubles: 32,768. Each event's line holds the start of its
/// text, `RECEIVED_PREVIEW` (200) control characters written in six
/// bytes each (`\u0001`), so over 1,200 bytes a line whatever else it
/// says. 27 such lines (32,400 bytes) fall short of 32,768 and 28
/// (33,600) pass it; the kernel lets one write past the bound (it checks
/// before a write, not after), so 29 surely fill it. The sum below gives
/// the 28 (32,768 / 1,200 rounded down, and one) and twelve more, 40,
/// for a margin of eleven. (The kernel counts more than a line's bytes,
/// a 2 KiB block and its bookkeeping, some 2.3 KB, so fewer fill it.)
///
/// Not many more, so that the test checks the bound: without it the
/// buffer is the system's default (`net.core.wmem_default`, 212,992
/// bytes on Linux), which 40 lines do not fill even counted at a 4 KiB
/// page and its bookkeeping each (some 4.4 KB: 176,000 bytes), so the
/// node never waits on the follower and never lets it go. For the node
/// lets a follower go only when one write to it has waited
/// `READS_WITHIN` (a minute), that is when its socket is full;
/// how many events it keeps for followers (`EVENT_BUFFER`) plays no
/// part: a follower more than that many behind is told how many it
/// missed (`missed`) and goes on following, so more texts than that into
/// a socket that still has room would not do.
const TEXTS_TO_FILL_A_FOLLOWER: usize = 2 * strand_node::control::FOLLOWER_SEND_BUFFER
    / (6 * strand_node::limits::RECEIVED_PREVIEW)
    + 1
    + 12;

/// A contact named under older rules (a variation selector that selects
/// nothing) is printed with it marked, as texts and group names are, in
/// `contacts` and `verify`: not as a plain "bob". Before, as it was.
#[test]
fn a_contact_named_under_older_rules_is_printed_marked() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _b) = pair(tmp.path());
    let p = strand_node::Profile::open(&a.dir, &a.pass).unwrap();
    p.rename_contact_under_older_rules("bob", "bob\u{FE00}", &mut strand_node::os_rng())
        .unwrap();
    drop(p);
    let listed = a.ok(&["contacts"]);
    assert!(
        listed.contains("bob<U+FE00>") && !listed.contains('\u{FE00}'),
        "{listed}"
    );
    let verify = a.ok(&["verify", "bob\u{FE00}"]);
    assert!(
        verify.contains("Safety number with bob<U+FE00>:")
            && verify.contains("the one bob<U+FE00>'s Strand shows"),
        "{verify}"
    );
}

/// A profile in a deep folder (a socket's address holds 107 bytes):
/// `strand run` serves it and commands reach the node, at a length where
/// the socket's temporary name did not fit and one where its own name
/// does not. Before, `run` stopped ("the control socket failed: path
/// must be shorter than SUN_LEN").
#[test]
fn a_profile_in_a_deep_folder_runs_and_is_reached() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().as_os_str().len();
    for long in [80, 130] {
        // ROOT/ddd…/ann
        let root = tmp.path().join("d".repeat(long - base - 5));
        std::fs::create_dir(&root).unwrap();
        let ann = User::init(&root, "ann");
        assert_eq!(ann.dir.as_os_str().len(), long);
        let (run, _) = ann.run(&[]);
        let _run = Killed(run);
        assert!(ann.ok(&["status"]).contains("node running"));
        assert!(ann.dir.join("control.sock").exists());
    }
}

/// A profile named under older rules (a braille blank at the end) makes
/// no invite that everyone would refuse: `strand invite` says why and
/// what to do, as do `strand name` and `strand status`, and `strand name`
/// gives it a name invites can carry.
#[test]
fn an_own_name_from_older_rules_is_told_and_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let ann = User::init(tmp.path(), "ann");
    let p = strand_node::Profile::open(&ann.dir, &ann.pass).unwrap();
    p.rename_under_older_rules("ann\u{2800}", &mut strand_node::os_rng())
        .unwrap();
    drop(p);
    let out = ann.cmd(&["invite"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "refused: {err}");
    assert!(out.stdout.is_empty(), "no code is printed");
    assert!(
        err.contains("braille blank") && err.contains("strand name NEW_NAME"),
        "{err}"
    );
    let out = ann.cmd(&["name"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ann\u{2800}\n");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Careful: your name \"ann\u{2800}\" starts")
    );
    assert!(ann.ok(&["status"]).starts_with("Careful: your name"));
    let json: Value = serde_json::from_str(&ann.ok(&["name", "--json"])).unwrap();
    assert!(json["problem"].as_str().unwrap().contains("braille blank"));
    // No mailbox pairing code can be made: `mailbox init` is refused
    // before anything changes, and the view still shows.
    let owen = User::init(tmp.path(), "owen");
    let out = ann.cmd(&["mailbox", "init", &owen.invite()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("braille blank"), "{err}");
    assert!(ann.ok(&["mailbox"]).starts_with("No mailbox."));
    assert_eq!(ann.ok(&["contacts", "--json"]).trim(), "[]");
    // A name under the same older rule is refused, and nothing changes.
    let out = ann.cmd(&["name", "\u{2800}ann"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(ann.ok(&["name"]), "ann\u{2800}\n");
    // A new name makes invites again, and they carry it.
    assert_eq!(ann.ok(&["name", "Ann"]), "Ann\n");
    let invite = strand_sync::Invite::from_text(&ann.invite()).unwrap();
    assert_eq!(invite.name, "Ann");
    assert!(!ann.ok(&["status"]).contains("Careful"));
    let json: Value = serde_json::from_str(&ann.ok(&["name", "--json"])).unwrap();
    assert_eq!(json, serde_json::json!({ "name": "Ann", "problem": null }));
    // A mailbox named under older rules (paired before) shows its pairing,
    // with no code to hand out and why.
    ann.ok(&["mailbox", "init", &owen.invite()]);
    let p = strand_node::Profile::open(&ann.dir, &ann.pass).unwrap();
    p.rename_under_older_rules("Ann\u{2800}", &mut strand_node::os_rng())
        .unwrap();
    drop(p);
    let shown = ann.ok(&["mailbox"]);
    assert!(
        shown.contains("the mailbox of owen") && shown.contains("No pairing code can be made"),
        "{shown}"
    );
    let json: Value = serde_json::from_str(&ann.ok(&["mailbox", "--json"])).unwrap();
    assert_eq!(json["code"], "");
}

/// A global option that the command does nothing with is refused in one
/// line, not ignored: the relay, the demo and `manual` open no profile
/// (nor read a passphrase file), and `init` prints text only. Set in the
/// environment, as STRAND_PROFILE, the same option is left alone.
#[test]
fn options_a_command_does_nothing_with_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = tmp.path().join("profile");
    let pages = tmp.path().join("pages");
    let missing = tmp.path().join("no-such-file");
    let (profile, pages, missing) = (
        profile.to_str().unwrap(),
        pages.to_str().unwrap(),
        missing.to_str().unwrap(),
    );
    // Runs `strand`, stopping it after a minute: a relay that is not
    // refused would serve on.
    let strand = |args: &[&str]| {
        let mut child = Command::new(BIN)
            .args(args)
            .env_remove("STRAND_LOG")
            .env_remove("STRAND_PROFILE")
            .env("STRAND_INSECURE_KDF_FOR_TESTS", "1")
            .env("STRAND_PASSPHRASE", "a passphrase for the test")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{args:?} ran on");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    };
    let relay = ["relay", "--ephemeral", "--listen", "/ip4/127.0.0.1/tcp/0"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            [&relay[..], &["--profile", profile]].concat(),
            "--profile does nothing for `strand relay`",
        ),
        (
            [&["--json"], &relay[..]].concat(),
            "--json does nothing for `strand relay`",
        ),
        (
            [&["--passphrase-file", missing], &relay[..]].concat(),
            "--passphrase-file does nothing for `strand relay`",
        ),
        (
            vec!["demo", "--messages", "1", "--passphrase-keyring"],
            "--passphrase-keyring does nothing for `strand demo`",
        ),
        (
            vec!["--profile", profile, "manual", pages],
            "--profile does nothing for `strand manual`",
        ),
        (
            vec!["--profile", profile, "--json", "init", "--name", "ann"],
            "--json does nothing for `strand init`",
        ),
    ];
    for (args, said) in &cases {
        let out = strand(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(said), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert!(
        !Path::new(profile).exists(),
        "a refused init made a profile"
    );
    assert!(!Path::new(pages).exists(), "a refused manual wrote pages");
    // From the environment, the profile is left alone where it does nothing.
    let out = Command::new(BIN)
        .args(["manual", pages])
        .env("STRAND_PROFILE", profile)
        .env_remove("STRAND_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(Path::new(pages).join("man").is_dir());
    assert!(!Path::new(profile).exists());
    // And where it does something, it is taken: init makes the profile.
    let out = strand(&[
        "--profile",
        profile,
        "init",
        "--name",
        "ann",
        "--allow-weak",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(Path::new(profile).exists());
}

/// `--json` for a command that prints text only (`wipe`, `run`, `service
/// install`, `service remove`) is refused in one line, exit 1, before the
/// command does anything, as it is for `init`; so is a `--json` among the
/// flags `service install` gives the unit's `strand run`, which would then
/// fail at every start. Before, each was taken and ignored: `strand --json
/// wipe --yes` wiped the profile and printed text, `strand --json run`
/// ran, and `service install` wrote the unit (exit 0).
#[test]
fn json_is_refused_by_the_commands_that_print_text_only() {
    let tmp = tempfile::tempdir().unwrap();
    let a = User::init(tmp.path(), "alice");
    let refused = |out: &Output, command: &str| {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {}", said(out));
        let says = format!("--json does nothing for `strand {command}`");
        assert!(err.contains(&says), "{command}: {err}");
        assert_eq!(err.lines().count(), 1, "{command}: {err}");
        assert!(out.stdout.is_empty(), "{command}: {}", said(out));
    };

    let out = a.cmd(&["--json", "wipe", "--yes"]);
    refused(&out, "wipe");
    assert!(
        strand_node::Profile::exists(&a.dir),
        "the profile was wiped"
    );
    a.ok(&["contacts"]);

    // A node that is not refused runs until it is stopped.
    let mut args = vec!["--json"];
    args.extend(run_args(&[]));
    let out =
        output_within(&a, &args, Duration::from_secs(60)).expect("`strand --json run` ran on");
    refused(&out, "run");

    let home = ServiceHome::new(tmp.path());
    let unit = home.config.join("systemd/user/strand.service");
    let pass = home.private("pass", &format!("{}\n", a.pass));
    let file = pass.to_str().unwrap();
    let install = [
        "--passphrase-file",
        file,
        "service",
        "install",
        "--no-start",
    ];
    let out = home.strand(&a, &[&["--json"], &install[..]].concat());
    refused(&out, "service install");
    let out = home.strand(&a, &[&install[..], &["--", "--json"]].concat());
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(
        said(&out).contains("not flags of `strand run`: --json does nothing for `strand run`"),
        "{}",
        said(&out)
    );
    assert!(!unit.exists(), "a unit was written");

    home.install(&a, &pass);
    let out = home.strand(&a, &["--json", "service", "remove"]);
    refused(&out, "service remove");
    assert!(unit.exists(), "the unit was removed");
    assert_eq!(home.systemctl.asked(), "", "systemd was asked");
}

/// `strand service remove` refuses a `--profile` on its command line
/// (exit 1, the unit left, systemd not asked): there is one unit,
/// whatever profile it runs, and `remove` acts on that one. Before, the
/// profile given was ignored, and the service of another profile than
/// the one named was stopped and removed without a word. From the
/// environment (`STRAND_PROFILE`) the profile is left alone, and the unit
/// is removed.
#[test]
fn service_remove_refuses_a_profile_on_its_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let alice = User::init(tmp.path(), "alice");
    let bob = User::init(tmp.path(), "bob");
    let home = ServiceHome::new(tmp.path());
    let unit = home.config.join("systemd/user/strand.service");
    let pass = home.private("pass", &format!("{}\n", alice.pass));
    home.install(&alice, &pass);
    assert!(unit.exists());

    let bob_dir = bob.dir.to_str().unwrap();
    let out = home.strand(&bob, &["--profile", bob_dir, "service", "remove"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(
        err.contains("--profile does nothing for `strand service remove`"),
        "{err}"
    );
    assert!(
        err.contains("strand.service") && err.contains("strand service status"),
        "{err}"
    );
    assert!(unit.exists(), "alice's service was removed");
    assert_eq!(home.systemctl.asked(), "", "systemd was asked");

    let out = home.strand(&bob, &["service", "remove"]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(!unit.exists());
    let asked = home.systemctl.asked();
    assert!(asked.contains("disable --now strand.service"), "{asked}");
}

/// A `--passphrase-file` is read only when the command needs the
/// passphrase: `strand wipe` needs none, so one that is gone does not
/// stop it. Before, the file was read before any command ran, and the
/// wipe failed ("reading the passphrase file"), the profile left as it
/// was. A command that needs the passphrase still says the file is gone.
#[test]
fn a_passphrase_file_is_read_only_when_a_passphrase_is_needed() {
    let tmp = tempfile::tempdir().unwrap();
    let a = User::init(tmp.path(), "alice");
    let gone = tmp.path().join("gone");
    let gone = gone.to_str().unwrap();
    let strand = |args: &[&str]| {
        a.command()
            .env_remove("STRAND_PASSPHRASE")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = strand(&["--passphrase-file", gone, "contacts"]);
    assert_eq!(out.status.code(), Some(2), "{}", said(&out));
    assert!(
        said(&out).contains(gone) && said(&out).contains("no such file or folder"),
        "{}",
        said(&out)
    );
    assert!(strand_node::Profile::exists(&a.dir));

    let out = strand(&["--passphrase-file", gone, "wipe", "--yes"]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(said(&out).contains("Wiped"), "{}", said(&out));
    assert!(!a.dir.exists(), "the profile is still there");
}

/// `strand relay` refuses 0 for `--connections-per-ip`,
/// `--reservations-per-ip` and `--circuits-per-ip` (exit 1, clap's range
/// error naming the flag), as it does for `--max-reservations`. Before,
/// `--connections-per-ip 0` started a relay that turned every connection
/// away, and the other two were taken as 1: each relay ran until stopped.
#[test]
fn a_relay_limit_of_zero_is_refused() {
    let guard = Duration::from_secs(60);
    for flag in [
        "--connections-per-ip",
        "--reservations-per-ip",
        "--circuits-per-ip",
    ] {
        let mut relay = Command::new(BIN);
        relay.env_remove("STRAND_LOG").env_remove("STRAND_PROFILE");
        let args = [
            "relay",
            "--ephemeral",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            flag,
            "0",
        ];
        let (out, by_itself) = guarded(relay, &args, guard);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(by_itself, "{flag} 0: the relay ran on");
        assert_eq!(out.status.code(), Some(1), "{flag} 0: {err}");
        assert!(
            err.contains(flag) && err.contains("0 is not in 1.."),
            "{flag} 0: {err}"
        );
        assert!(out.stdout.is_empty(), "{flag} 0: {}", said(&out));
    }
}

/// Reads one preamble record (`u16` length, body) from a raw link.
async fn record(stream: &mut Box<dyn strand_transport::LinkStream>) -> Vec<u8> {
    use futures::AsyncReadExt;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).await.unwrap();
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_links_are_dropped_with_a_reason_and_contacts_keep_syncing() {
    use futures::AsyncWriteExt;
    use strand_transport::{Lan, LanConfig, Transport};
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    // Alice listens on both loopback addresses: Bob comes from 127.0.0.1,
    // the stranger from ::1 (two devices have two addresses).
    let mut cmd = a.command();
    cmd.env(
        "STRAND_LOG",
        "info,strand_node=debug,strand_transport=debug,libp2p=warn",
    );
    let (a_run, a_addr) = a.run_with(
        &[
            "run",
            "--no-mdns",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--listen",
            "/ip6/::1/tcp/0",
            "--punch-listen",
            "/ip4/127.0.0.1/tcp/0",
        ],
        cmd,
    );
    let _a_run = Killed(a_run);
    let (b_run, _) = b.run(&[&a_addr]);
    let _b_run = Killed(b_run);
    let (tx, _events) = tokio::sync::mpsc::channel(16);
    let lan = Lan::start(
        LanConfig {
            listen: vec!["/ip6/::1/tcp/0".parse().unwrap()],
            mdns: false,
            ..LanConfig::default()
        },
        tx,
    )
    .await
    .unwrap();
    let status: Value = serde_json::from_str(&a.ok(&["status", "--json"])).unwrap();
    let v6: strand_transport::Multiaddr = status["transports"][0]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .find(|a| a.starts_with("/ip6"))
        .unwrap()
        .parse()
        .unwrap();
    // Malformed bytes where the hello should be.
    let mut junk = lan.dial(&v6).unwrap().await.unwrap();
    record(&mut junk.stream).await;
    junk.stream.write_all(&[0, 3, 1, 2, 3]).await.unwrap();
    junk.stream.flush().await.unwrap();
    // A peer that stalls in the middle of its hello.
    let mut stalled = lan.dial(&v6).unwrap().await.unwrap();
    stalled.stream.write_all(&[0, 70, 1, 1]).await.unwrap();
    stalled.stream.flush().await.unwrap();
    // Links that never say anything: 200 in 4 s, streams and connections.
    let silent = tokio::spawn(crate::flood::flood(v6, 50, Duration::from_secs(4)));
    // The real contacts still sync meanwhile.
    b.ok(&["send", "alice", "through the flood"]);
    eventually("alice gets bob's message", Duration::from_secs(30), || {
        a.read("bob")
            .iter()
            .any(|m| m["text"] == "through the flood")
    });
    // Each bad link is dropped (or never admitted) with a logged reason.
    let reasons = ["malformed hello", "timed out", "too many"];
    let start = Instant::now();
    while !reasons.iter().all(|r| a.log().contains(r)) {
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "the reasons {reasons:?} in the log:\n{}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    b.ok(&["send", "alice", "after the flood"]);
    eventually(
        "alice gets the next one too",
        Duration::from_secs(30),
        || a.read("bob").iter().any(|m| m["text"] == "after the flood"),
    );
    silent.await.unwrap();
    drop((junk, stalled));
}

/// Runs `ip` with arguments; whether it worked.
pub(crate) fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub(crate) struct Netns(pub(crate) Vec<String>);
impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.0 {
            ip(&["netns", "del", n]);
        }
    }
}

/// Two network namespaces joined by a veth pair, `SUBNET.1` and
/// `SUBNET.2` (a /24), loopback up in both: the namespaces (removed when
/// the guard drops) and the two ends. `None` where namespaces cannot be
/// made (not root, no iproute2), or a step failed (said on stderr).
pub(crate) fn veth_pair(tag: &str, subnet: &str) -> Option<(Netns, [String; 2], [String; 2])> {
    let id = std::process::id() % 10_000;
    let ns = [format!("strand-{tag}a-{id}"), format!("strand-{tag}b-{id}")];
    if !ip(&["netns", "add", &ns[0]]) {
        eprintln!("SKIPPED: cannot create network namespaces here (needs root and iproute2)");
        return None;
    }
    let guard = Netns(ns.to_vec());
    let dev = [format!("{tag}a{id}"), format!("{tag}b{id}")];
    let addr = [format!("{subnet}.1/24"), format!("{subnet}.2/24")];
    let mut setup = vec![
        vec!["netns", "add", &ns[1]],
        vec![
            "link", "add", &dev[0], "type", "veth", "peer", "name", &dev[1],
        ],
    ];
    for i in 0..2 {
        setup.extend([
            vec!["link", "set", &dev[i], "netns", &ns[i]],
            vec!["-n", &ns[i], "addr", "add", &addr[i], "dev", &dev[i]],
            vec!["-n", &ns[i], "link", "set", &dev[i], "up"],
            vec!["-n", &ns[i], "link", "set", "lo", "up"],
        ]);
    }
    for args in &setup {
        if !ip(args) {
            eprintln!("SKIPPED: `ip {}` failed", args.join(" "));
            return None;
        }
    }
    Some((guard, ns, dev))
}

#[test]
fn two_nodes_in_network_namespaces_find_each_other_by_mdns() {
    let Some((_guard, [n1, n2], _)) = veth_pair("s", "10.200.0") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    let in_ns = |u: &User, ns: &str| {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, BIN])
            .env("STRAND_PROFILE", &u.dir)
            .env("STRAND_PASSPHRASE", &u.pass);
        c
    };
    // mDNS on, no addresses given: they must discover each other.
    let (a_run, _) = a.run_with(
        &["run", "--listen", "/ip4/10.200.0.1/tcp/0"],
        in_ns(&a, &n1),
    );
    let _a_run = Killed(a_run);
    let (b_run, _) = b.run_with(
        &["run", "--listen", "/ip4/10.200.0.2/tcp/0"],
        in_ns(&b, &n2),
    );
    let _b_run = Killed(b_run);
    for i in 0..20 {
        a.ok(&["send", "bob", &format!("across namespaces {i}")]);
        b.ok(&["send", "alice", &format!("and back {i}")]);
    }
    eventually("40 messages on both sides", Duration::from_secs(60), || {
        a.read("bob").len() == 40 && b.read("alice").len() == 40
    });
}

/// `strand verify` shows both sides the same safety number;
/// `--confirm` marks the contact verified, offline or through a running
/// node, and `strand contacts` says so.
#[test]
fn strand_verify_shows_one_number_on_both_sides_and_confirms() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    let number = |u: &User, who: &str| -> String {
        let v: Value = serde_json::from_str(&u.ok(&["verify", who, "--json"])).unwrap();
        v["safety_number"].as_str().unwrap().to_owned()
    };
    let n = number(&a, "bob");
    assert_eq!(n, number(&b, "alice"));
    assert_eq!(n.split(' ').count(), 12);
    let shown = a.ok(&["verify", "bob"]);
    assert!(
        shown.contains(&n.split(' ').take(4).collect::<Vec<_>>().join("  ")),
        "{shown}"
    );
    assert!(shown.contains("--confirm"), "{shown}");
    assert!(a.ok(&["contacts"]).contains("not verified"));

    a.ok(&["verify", "bob", "--confirm"]);
    let contacts: Value = serde_json::from_str(&a.ok(&["contacts", "--json"])).unwrap();
    assert_eq!(contacts[0]["verified"], true);
    assert_eq!(contacts[0]["legacy"], false);
    // Through a running node too.
    let (run, _) = b.run(&[]);
    let _run = Killed(run);
    b.ok(&["verify", "alice", "--confirm"]);
    let listed = b.ok(&["contacts"]);
    assert!(
        listed.contains("verified") && !listed.contains("not verified"),
        "{listed}"
    );
    let out = b.cmd(&["verify", "nobody"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a name that is not there is a usage error"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no contact named"));
}

/// Whether this test runs as root, as running a client as another user
/// needs; says it skips if not.
fn root_here() -> bool {
    let uid = Command::new("id").arg("-u").output().unwrap();
    let root = String::from_utf8_lossy(&uid.stdout).trim() == "0";
    if !root {
        eprintln!("SKIPPED: running a client as another user needs root");
    }
    root
}

/// A copy of the `strand` binary in `dir` that any user may run (the
/// build's own sits under root's home), run once ([`runnable`]).
fn binary_for_anyone(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("strand");
    std::fs::copy(BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    runnable(&bin, "--help");
    bin
}

/// Waits until the program just written at `program` can be run, running
/// it with `arg` (which must do nothing): another test's thread that
/// forks while the file is being written holds it open for writing until
/// its child runs its own program, and until then running the file fails
/// with "Text file busy" (seen once in CI, for [`binary_for_anyone`]).
fn runnable(program: &Path, arg: &str) {
    for _ in 0..500 {
        match Command::new(program)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(Duration::from_millis(10));
            }
            ran => {
                ran.unwrap();
                return;
            }
        }
    }
    panic!("{} stayed busy", program.display());
}

/// A process of another user gets nothing from the control
/// socket, even when every permission on the way was opened up (the
/// node checks the peer's uid with `SO_PEERCRED`). Needs root, to run the
/// client as `nobody`; skips, saying so, otherwise.
#[test]
fn a_control_client_of_another_user_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !root_here() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (a, _b) = pair(tmp.path());
    let (_run, socket) = run_serving(&a);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the socket is private from the start");
    // Open every door a careless user could: directories, socket, binary.
    let open =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    open(tmp.path(), 0o755);
    open(&a.dir, 0o755);
    open(&socket, 0o666);
    let bin = binary_for_anyone(tmp.path());
    let out = Command::new(&bin)
        .args(["contacts"])
        .env("STRAND_PROFILE", &a.dir)
        .env("STRAND_PASSPHRASE", "not needed")
        .env_remove("STRAND_LOG")
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    // Strand's client sends nothing to a node of another user's.
    assert!(err.contains("served by another user"), "{err}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Any other client of another user is refused by the node: a thread
    // of this test as that user (setresuid changes only the calling
    // thread's credentials, which the socket sees).
    let at = socket.clone();
    let answer = std::thread::spawn(move || {
        // SAFETY: a raw system call changing this thread's own user ids;
        // it touches no memory.
        let dropped = unsafe { libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534) };
        assert_eq!(dropped, 0, "setresuid");
        let mut stream = std::os::unix::net::UnixStream::connect(&at).unwrap();
        std::io::Write::write_all(&mut stream, b"\"Status\"\n").unwrap();
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        line
    })
    .join()
    .unwrap();
    assert!(
        answer.contains("serves only the user who runs it"),
        "{answer}"
    );
    // Its owner is still served.
    assert!(a.ok(&["contacts"]).contains("bob"));
}

/// A request line that is not UTF-8, or longer than a request can be,
/// is answered with why, and the node goes on. Before, the first got no
/// answer (the connection was dropped), and the second was answered
/// after its first 8 MiB and cut off while the client still wrote
/// (a broken pipe, the answer never read).
#[test]
fn a_request_line_that_cannot_be_one_is_answered_why() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _b) = pair(tmp.path());
    let (_run, socket) = run_serving(&a);
    let ask = |line: &[u8]| {
        let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let written = std::io::Write::write_all(&mut stream, line);
        let mut answer = String::new();
        let read = BufReader::new(stream).read_line(&mut answer);
        (
            written.map_err(|e| e.to_string()),
            read.map_err(|e| e.to_string()),
            answer,
        )
    };
    let (written, read, answer) = ask(b"\"Sta\xfftus\"\n");
    assert!(written.is_ok() && read.is_ok(), "{written:?} {read:?}");
    assert!(answer.contains("bad request: not UTF-8"), "{answer:?}");
    let mut long = vec![b'a'; 9 << 20];
    long.push(b'\n');
    let (written, read, answer) = ask(&long);
    assert!(written.is_ok() && read.is_ok(), "{written:?} {read:?}");
    assert!(
        answer.contains("longer than a request can be"),
        "{answer:?}"
    );
    // Still served.
    assert!(a.ok(&["contacts"]).contains("bob"));
}

/// The control socket serves at most `MAX_CONTROL_CONNECTIONS`
/// connections at once, and `RESERVED_CONTROL_CONNECTIONS` more for its
/// status and stopping it: one more than those is answered at once with
/// why (a `refused` error line), whatever it asks, and closed, so
/// `strand` says so and ends rather than wait; once others close,
/// connections are served again. Before, every connection got a task of
/// its own, without bound, and one more was served like the rest.
#[test]
fn past_its_bound_the_control_socket_says_it_is_busy_and_serves_again_later() {
    use strand_node::limits::{MAX_CONTROL_CONNECTIONS, RESERVED_CONTROL_CONNECTIONS};
    let tmp = tempfile::tempdir().unwrap();
    let a = User::init(tmp.path(), "alice");
    let (_run, socket) = run_serving(&a);
    // As many connections as it serves, the reserve too, saying nothing
    // (it waits a minute for the ordinary ones' requests, 5 s for the
    // reserve's: what follows is asked within that), and no other before
    // them: they are taken in the order they came.
    let held = silent_connections(
        &socket,
        MAX_CONTROL_CONNECTIONS + RESERVED_CONTROL_CONNECTIONS,
    );
    // One more asks for the contacts, or how the node is: refused alike.
    for request in ["contacts", "status"] {
        let answer = answer_on(&socket, &format!("{{\"request\":\"{request}\"}}"));
        assert_busy(&answer);
    }
    // `strand` says so, and ends.
    let out = output_within(&a, &["contacts"], Duration::from_secs(60)).expect("strand ended");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("already serving"), "{err}");
    // The others close: served again.
    drop(held);
    eventually(
        "`strand contacts` served again",
        Duration::from_secs(60),
        || a.cmd(&["contacts"]).status.success(),
    );
}

/// With `MAX_CONTROL_CONNECTIONS` connections held (terminals following,
/// a script, a process that connected and says nothing), the node still
/// answers `strand status` and still stops when asked (`strand wipe` asks
/// it to, then wipes the profile), through the few connections it keeps
/// for those (`RESERVED_CONTROL_CONNECTIONS`); anything else asked past
/// the bound is still refused. Before, the next connection was refused
/// whatever it asked: the user could neither stop nor wipe their own
/// node while the connections were held.
#[test]
fn past_its_bound_the_control_socket_still_answers_status_and_stops() {
    use strand_node::limits::MAX_CONTROL_CONNECTIONS;
    let tmp = tempfile::tempdir().unwrap();
    let a = User::init(tmp.path(), "alice");
    let (mut run, socket) = run_serving(&a);
    let held = silent_connections(&socket, MAX_CONTROL_CONNECTIONS);
    // How the node is: answered.
    let status: Value = serde_json::from_str(&a.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["running"], true, "{status}");
    // Anything else: refused, on the socket and by `strand`.
    assert_busy(&answer_on(&socket, "{\"request\":\"contacts\"}"));
    let out = output_within(&a, &["contacts"], Duration::from_secs(60)).expect("strand ended");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("already serving"), "{err}");
    // Stopped and wiped.
    let out = output_within(&a, &["wipe", "--yes"], Duration::from_secs(60)).expect("strand ended");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("the node stopped", Duration::from_secs(30), || {
        run.0.try_wait().unwrap().is_some()
    });
    assert!(!a.dir.exists());
    drop(held);
}

/// Connections that take the reserve and say nothing hold it only
/// briefly: before, each was given the minute every connection has to
/// send its request, so four of them kept the user from stopping their
/// node for that long, again and again.
#[test]
fn silent_connections_hold_the_reserve_only_briefly() {
    use strand_node::limits::{MAX_CONTROL_CONNECTIONS, RESERVED_CONTROL_CONNECTIONS};
    let tmp = tempfile::tempdir().unwrap();
    let a = User::init(tmp.path(), "alice");
    let (_run, socket) = run_serving(&a);
    let held = silent_connections(
        &socket,
        MAX_CONTROL_CONNECTIONS + RESERVED_CONTROL_CONNECTIONS,
    );
    assert_busy(&answer_on(&socket, "{\"request\":\"status\"}"));
    // Well within the minute an ordinary connection has.
    eventually(
        "status answered past the silent ones",
        Duration::from_secs(30),
        || answer_on(&socket, "{\"request\":\"status\"}")["ok"].is_object(),
    );
    drop(held);
}

/// Followers that hang up give their connections back at once, on a node
/// with nothing to tell them: before, each held its connection until the
/// node next had an event for it, which on a quiet node was never, so
/// `MAX_CONTROL_CONNECTIONS` followers ended (`strand read --follow` and
/// Ctrl-C, an app locked) refused every command until the node restarted.
#[test]
fn followers_that_hang_up_give_their_connections_back() {
    use strand_node::limits::MAX_CONTROL_CONNECTIONS;
    let tmp = tempfile::tempdir().unwrap();
    let a = User::init(tmp.path(), "alice");
    let (_run, socket) = run_serving(&a);
    let followers: Vec<_> = (0..MAX_CONTROL_CONNECTIONS)
        .map(|_| {
            let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            std::io::Write::write_all(&mut stream, b"{\"request\":\"follow\"}\n").unwrap();
            let mut answer = String::new();
            BufReader::new(&stream).read_line(&mut answer).unwrap();
            assert!(answer.contains("following"), "{answer:?}");
            stream
        })
        .collect();
    // All held: anything but status and stopping is refused.
    assert_busy(&answer_on(&socket, "{\"request\":\"contacts\"}"));
    drop(followers);
    eventually(
        "the followers' connections given back",
        Duration::from_secs(60),
        || answer_on(&socket, "{\"request\":\"contacts\"}")["ok"].is_object(),
    );
}

/// `count` connections to the control socket at `socket`, made one after
/// another, that say nothing.
fn silent_connections(socket: &Path, count: usize) -> Vec<std::os::unix::net::UnixStream> {
    (0..count)
        .map(|_| std::os::unix::net::UnixStream::connect(socket).unwrap())
        .collect()
}

/// The one line a node answers on its control socket at `socket` to
/// `request` (a JSON request, without its newline), as JSON.
fn answer_on(socket: &Path, request: &str) -> Value {
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // The node may have hung up before the request is written: its
    // answer is there to read all the same.
    let _ = std::io::Write::write_all(&mut stream, format!("{request}\n").as_bytes());
    let mut answer = String::new();
    let read = BufReader::new(stream).read_line(&mut answer);
    assert!(read.is_ok(), "{read:?} {answer:?}");
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer:?}"))
}

/// That `answer` is the control socket's: it serves all it can already.
fn assert_busy(answer: &Value) {
    use strand_node::limits::MAX_CONTROL_CONNECTIONS;
    assert_eq!(answer["error"]["kind"], "refused", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!(
                "already serving {MAX_CONTROL_CONNECTIONS} connections"
            ))),
        "{answer}"
    );
}

/// One request to the node running on the profile in `dir`.
async fn ask_node(
    dir: &Path,
    request: strand_node::runtime::api::Request,
) -> strand_node::runtime::api::Answer {
    strand_node::control::request(dir, &request)
        .await
        .unwrap()
        .expect("a node answers")
        .0
}

/// The addresses the node running on the profile in `dir` dials again
/// and again, as its status says.
async fn peers_dialled(dir: &Path) -> Vec<String> {
    use strand_node::runtime::api::{Answer, Reply, Request};
    match ask_node(dir, Request::Status).await {
        Answer::Ok(Reply::Status(s)) => s.peers,
        other => panic!("{other:?}"),
    }
}

/// Alice in `root`, with Bob as her contact "bob", and `n` texts of hers
/// to him ("m0", "m1", …, a millisecond apart) written into her profile
/// while no node runs.
fn alice_with_texts_to_bob(root: &Path, n: usize) -> User {
    let a = User::init(root, "alice");
    let b = User::init(root, "bob");
    a.ok(&["add", &b.invite(), "--name", "bob"]);
    let p = strand_node::Profile::open(&a.dir, &a.pass).unwrap();
    for i in 0..n {
        p.write(
            "bob",
            &format!("m{i}"),
            1_000 + i as u64,
            &mut strand_node::os_rng(),
        )
        .unwrap();
    }
    a
}

/// A page of a conversation (`Page`, the app's) asks for at most
/// `MAX_PAGE` messages; more is refused as bad input, and the node goes
/// on. Before, any limit was served, `usize::MAX` too: the whole
/// conversation read, decrypted and sent in one answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_more_than_the_most_is_refused() {
    use strand_node::runtime::api::{Answer, FailureKind, Reply, Request, Target, MAX_PAGE};
    let tmp = tempfile::tempdir().unwrap();
    let a = alice_with_texts_to_bob(tmp.path(), MAX_PAGE + 1);
    let (_run, _) = run_serving(&a);
    let page = |limit: usize| Request::Page {
        of: Target::Contact("bob".into()),
        from: strand_node::Position::MIN,
        limit,
    };
    match ask_node(&a.dir, page(MAX_PAGE)).await {
        Answer::Ok(Reply::Stored { messages }) => assert_eq!(messages.len(), MAX_PAGE),
        other => panic!("{other:?}"),
    }
    for limit in [MAX_PAGE + 1, usize::MAX] {
        match ask_node(&a.dir, page(limit)).await {
            Answer::Error(e) => {
                assert_eq!(e.kind, FailureKind::BadInput, "{e}");
                assert!(e.message.contains(&format!("at most {MAX_PAGE}")), "{e}");
            }
            Answer::Ok(Reply::Stored { messages }) => {
                panic!(
                    "a page of {limit} answered with {} messages",
                    messages.len()
                )
            }
            other => panic!("a page of {limit}: {other:?}"),
        }
    }
    // A group's page too.
    match ask_node(
        &a.dir,
        Request::Page {
            of: Target::Group("no such group".into()),
            from: strand_node::Position::MIN,
            limit: usize::MAX,
        },
    )
    .await
    {
        Answer::Error(e) => assert!(e.message.contains(&format!("at most {MAX_PAGE}")), "{e}"),
        other => panic!("{other:?}"),
    }
    // Still served.
    assert!(a.ok(&["contacts"]).contains("bob"));
}

/// `AddPeer` keeps one task an address, however often it is asked (also
/// written with spaces around it), dials at most `MAX_PEERS` addresses
/// and refuses one more with why; `strand status` lists them. Before,
/// every `AddPeer` spawned another task dialling for the node's life:
/// asked twice, an address was dialled by two, and nothing bounded how
/// many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_peer_dials_an_address_once_and_a_bounded_number_of_them() {
    use strand_node::limits::MAX_PEERS;
    use strand_node::runtime::api::{Answer, FailureKind, Reply, Request};
    let tmp = tempfile::tempdir().unwrap();
    let a = User::init(tmp.path(), "alice");
    let (_run, _) = run_serving(&a);
    let dir = a.dir.clone();
    let add = |address: String| ask_node(&dir, Request::AddPeer { address });
    let dialled = || peers_dialled(&dir);
    // Loopback addresses where nothing listens: every dial is refused at
    // once, and dialled again every few seconds.
    let address = |i: usize| format!("/ip4/127.0.1.{}/tcp/9", i + 1);
    for asked in [address(0), address(0), format!("  {}  ", address(0))] {
        match add(asked).await {
            Answer::Ok(Reply::Done) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(dialled().await, vec![address(0)]);

    for i in 1..MAX_PEERS {
        match add(address(i)).await {
            Answer::Ok(Reply::Done) => {}
            other => panic!("{i}: {other:?}"),
        }
    }
    match add(address(MAX_PEERS)).await {
        Answer::Error(e) => {
            assert_eq!(e.kind, FailureKind::Refused, "{e}");
            assert!(
                e.message
                    .contains(&format!("already dials {MAX_PEERS} addresses")),
                "{e}"
            );
        }
        other => panic!("one address more than the most: {other:?}"),
    }
    // One dialled already is still taken: nothing changes.
    match add(address(0)).await {
        Answer::Ok(Reply::Done) => {}
        other => panic!("{other:?}"),
    }
    let now = dialled().await;
    assert_eq!(now.len(), MAX_PEERS, "{now:?}");
    assert!(!now.contains(&address(MAX_PEERS)), "{now:?}");
    let status = a.ok(&["status"]);
    assert!(
        status.contains(&format!("dialling {}", address(0))),
        "{status}"
    );
}

/// An address none of the node's transports dials (another protocol, a
/// port 0) is refused at once as bad input, saying so, and takes none of
/// the `MAX_PEERS` places: more of them than that, all different, leave
/// every place free, and an address the node dials is still taken after
/// them. Before, each was taken and dialled every few seconds until the
/// node stopped, failing every time, and `MAX_PEERS` of them kept every
/// other address out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_no_transport_dials_is_refused_and_takes_no_place() {
    use strand_node::limits::MAX_PEERS;
    // On loopback, each one different: WebRTC and WebSocket, which the
    // node does not speak, and TCP port 0.
    let undialable = (0..=MAX_PEERS).map(|i| match i % 3 {
        0 => format!("/ip4/127.0.1.{}/udp/9/webrtc", i + 1),
        1 => format!("/ip4/127.0.1.{}/tcp/9/ws", i + 1),
        _ => format!("/ip4/127.0.1.{}/tcp/0", i + 1),
    });
    // Loopback, where nothing listens: taken, and dialled.
    refused_then_taken(undialable, "/ip4/127.0.0.1/tcp/9".to_owned()).await;
}

/// A running node asked to dial each of `refused` (AddPeer) refuses each
/// as bad input, saying none of its transports dials it, and dials none;
/// then asked to dial `taken`, it takes it, and dials only that.
async fn refused_then_taken(refused: impl IntoIterator<Item = String>, taken: String) {
    use strand_node::runtime::api::{Answer, FailureKind, Reply, Request};
    let tmp = tempfile::tempdir().unwrap();
    let a = User::init(tmp.path(), "alice");
    let (_run, _) = run_serving(&a);
    let dir = a.dir.clone();
    let add = |address: String| ask_node(&dir, Request::AddPeer { address });
    for address in refused {
        match add(address.clone()).await {
            Answer::Error(e) => {
                assert_eq!(e.kind, FailureKind::BadInput, "{e}");
                assert!(
                    e.message
                        .contains(&format!("none of this node's transports dials {address}")),
                    "{e}"
                );
            }
            other => panic!("{address}: {other:?}"),
        }
    }
    assert_eq!(peers_dialled(&dir).await, Vec::<String>::new());
    match add(taken.clone()).await {
        Answer::Ok(Reply::Done) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(peers_dialled(&dir).await, vec![taken]);
}

/// A circuit address the relay client can never dial (no target id, no
/// relay id or relay address, a second relay, something after the
/// target, a relay at `/ws` or at port 0) is refused at once as bad
/// input, as any address none of the node's transports dials, and takes
/// no place; a circuit as the node makes them (a relay's address and id,
/// `/p2p-circuit`, then the id of whom it reaches) is still taken.
/// Before, the relay transport took every address with a `/p2p-circuit`
/// in it: each of these was taken, listed as dialled, and dialled every
/// few seconds until the node stopped, failing every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_address_the_relay_client_cannot_dial_is_refused() {
    use strand_transport::relay::peer_id_of;
    // A relay on loopback where nothing listens, and someone behind it.
    let (relay, target) = (peer_id_of([1; 32]), peer_id_of([2; 32]));
    let r = format!("/ip4/127.0.0.1/tcp/9/p2p/{relay}");
    let t = format!("/p2p/{target}");
    let undialable = [
        format!("{r}/p2p-circuit"),
        format!("/ip4/127.0.0.1/tcp/9/p2p-circuit{t}"),
        format!("/p2p/{relay}/p2p-circuit{t}"),
        format!("{r}/p2p-circuit{t}/p2p-circuit/p2p/{relay}"),
        format!("{r}/p2p-circuit{t}/tcp/9"),
        format!("/ip4/127.0.0.1/tcp/9/ws/p2p/{relay}/p2p-circuit{t}"),
        format!("/ip4/127.0.0.1/tcp/0/p2p/{relay}/p2p-circuit{t}"),
    ];
    refused_then_taken(undialable, format!("{r}/p2p-circuit{t}")).await;
}

/// Regression: `strand relay add` took a relay address the relay client
/// cannot dial (here at `/ws`) as long as it ended in the relay's id:
/// "Added relay", contacts told it, and every reservation and circuit
/// through it failed for ever. Now it ends in an error saying what a
/// relay address may be, and the list stays empty.
#[test]
fn relay_add_refuses_a_relay_the_client_cannot_dial() {
    let tmp = tempfile::tempdir().unwrap();
    let u = User::init(tmp.path(), "alice");
    let bad = "/ip4/1.2.3.4/tcp/4001/ws/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
    let out = u.cmd(&["relay", "add", bad]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "added: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(err.contains("a relay is reached over TCP"), "{err}");
    let list: Value = serde_json::from_str(&u.ok(&["relay", "list", "--json"])).unwrap();
    assert_eq!(list, serde_json::json!([]), "nothing added");
}

/// Regression: `strand relay --announce` and `strand run
/// --relay-for-contacts --relay-announce` took any address, so a relay
/// told its clients (and a node its contacts) an address no relay client
/// dials (`/ws`, `0.0.0.0`, port 0, or one with an id already). Now each
/// is refused before anything starts, saying what is taken.
#[test]
fn a_relay_is_not_announced_where_no_client_reaches_it() {
    let tmp = tempfile::tempdir().unwrap();
    let u = User::init(tmp.path(), "alice");
    let guard = Duration::from_secs(60);
    for bad in [
        "/ip4/203.0.113.7/tcp/4001/ws",
        "/ip4/0.0.0.0/tcp/4001",
        "/ip4/203.0.113.7/tcp/0",
        "/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
    ] {
        let mut relay = Command::new(BIN);
        relay.env_remove("STRAND_LOG");
        let serve = [
            "relay",
            "--ephemeral",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--announce",
            bad,
        ];
        let mut run = run_args(&[]);
        run.extend([
            "--relay-for-contacts",
            "--relay-listen",
            "/ip4/127.0.0.1/tcp/0",
            "--relay-announce",
            bad,
        ]);
        for (command, args) in [(relay, &serve[..]), (u.command(), &run[..])] {
            let (out, by_itself) = guarded(command, args, guard);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(by_itself, "{args:?} ran");
            assert!(!out.status.success(), "{args:?}: {err}");
            assert!(
                err.contains("a relay cannot be reached at") && err.contains("/tcp/PORT"),
                "{args:?}: {err}"
            );
        }
    }
}

/// Regression: `strand relay --listen` at a TCP port another relay
/// listened at started and shared the port (libp2p's TCP listener sets
/// SO_REUSEPORT), and the system split new connections between the two
/// relays. Now the second stops at once, saying the port is in use by
/// another program, and the first runs on. Before, the second ran until
/// the guard ended it.
#[test]
fn a_relay_at_a_port_another_relay_listens_at_does_not_start() {
    let (mut first, addr) =
        crate::relay::spawn_relay(Command::new(BIN).env_remove("STRAND_LOG").args([
            "relay",
            "--ephemeral",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ]));
    // `/ip4/127.0.0.1/tcp/PORT/p2p/ID`.
    let port = addr
        .split('/')
        .nth(4)
        .unwrap_or_else(|| panic!("no port in {addr}"))
        .to_owned();
    let taken = format!("/ip4/127.0.0.1/tcp/{port}");
    let mut second = Command::new(BIN);
    second.env_remove("STRAND_LOG");
    let args = ["relay", "--ephemeral", "--listen", taken.as_str()];
    let (out, by_itself) = guarded(second, &args, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(by_itself, "the second relay ran: {err}");
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "cannot listen on {taken}: port {port} is in use by another program"
        )),
        "{err}"
    );
    assert!(
        first.0.try_wait().unwrap().is_none(),
        "the first relay stopped"
    );
}

/// `strand ARGS` as `user` (or `command`), ended after `guard` if it has
/// not ended by then (a command that hangs fails its test instead of
/// hanging it): its output, and whether it ended by itself.
fn guarded(mut command: Command, args: &[&str], guard: Duration) -> (Output, bool) {
    let child = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let ended = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watching = ended.clone();
    let watchdog = std::thread::spawn(move || {
        let start = Instant::now();
        while !watching.load(std::sync::atomic::Ordering::SeqCst) {
            if start.elapsed() > guard {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    });
    let out = child.wait_with_output().unwrap();
    ended.store(true, std::sync::atomic::Ordering::SeqCst);
    let by_itself = watchdog.join().unwrap();
    (out, by_itself)
}

/// A node that does not answer (stopped with Ctrl-Z, or stuck) is said
/// so, naming its process, instead of being waited for: `strand status`
/// and `strand wipe` end with an error and the profile is left as it was.
/// Before, every command waited for it for good.
#[test]
fn a_node_that_does_not_answer_is_said_so_not_waited_for() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _b) = pair(tmp.path());
    let (run, _) = a.run(&[]);
    let pid = run.id();
    let run = Killed(run);
    assert!(a.ok(&["contacts"]).contains("bob"));
    let signal = |which: &str| {
        assert!(Command::new("kill")
            .args([which, &pid.to_string()])
            .status()
            .unwrap()
            .success())
    };
    signal("-STOP");
    let guard = Duration::from_secs(120);
    for args in [&["status"][..], &["wipe", "--yes"][..]] {
        let (out, by_itself) = guarded(a.command(), args, guard);
        assert!(by_itself, "strand {args:?} waited for the stopped node");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("did not answer within"), "{args:?}: {err}");
        assert!(err.contains(&format!("process {pid}")), "{args:?}: {err}");
    }
    signal("-CONT");
    // Nothing was wiped.
    assert!(a.ok(&["contacts"]).contains("bob"));
    drop(run);
}

/// A node that stops while a command's request is in progress hangs up
/// without an answer line: `strand` says the node stopped before it
/// answered, and ends with 2 (a failure, not bad input), whether the node
/// had read the request or not. Before, the answer it never got was
/// parsed, and the command ended with "EOF while parsing a value at line
/// 1 column 1".
#[test]
fn a_node_that_stops_before_it_answers_is_said_so() {
    let tmp = tempfile::tempdir().unwrap();
    let a = User::init(tmp.path(), "alice");
    // A node, played here: it answers whether it runs, then hangs up on
    // the command's request without answering, once after reading it and
    // once before.
    let listener = std::os::unix::net::UnixListener::bind(a.dir.join("control.sock")).unwrap();
    let node = std::thread::spawn(move || {
        for reads_the_request in [true, false] {
            let (mut status, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(&status).read_line(&mut line).unwrap();
            assert!(line.contains("\"status\""), "{line}");
            std::io::Write::write_all(&mut status, b"{\"ok\":{\"reply\":\"done\"}}\n").unwrap();
            drop(status);
            let (request, _) = listener.accept().unwrap();
            if reads_the_request {
                let mut line = String::new();
                BufReader::new(&request).read_line(&mut line).unwrap();
                assert!(line.contains("\"contacts\""), "{line}");
            }
            drop(request);
        }
    });
    for reads_the_request in [true, false] {
        let (out, by_itself) = guarded(a.command(), &["contacts"], Duration::from_secs(60));
        assert!(by_itself, "strand waited for the node that stopped");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{reads_the_request}: {err}");
        assert!(
            err.contains("the node stopped before it answered"),
            "{reads_the_request}: {err}"
        );
    }
    node.join().unwrap();
}

/// A control socket another user serves (made in a profile folder they
/// can write to, while no node runs) is told nothing: not a passphrase
/// change, not a text. Before, the client sent its request to whoever
/// listened there.
#[test]
fn a_control_socket_another_user_serves_is_told_nothing() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !root_here() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let a = User::init(tmp.path(), "alice");
    let open =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    open(tmp.path(), 0o755);
    open(&a.dir, 0o777);
    // Root listens where the node's socket would be; the client runs as
    // another user (65534), so the socket is not its own user's.
    let listener = std::os::unix::net::UnixListener::bind(a.dir.join("control.sock")).unwrap();
    open(&a.dir.join("control.sock"), 0o666);
    let told = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut got = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stream, &mut got);
        got.len()
    });
    let bin = binary_for_anyone(tmp.path());
    let mut client = Command::new(&bin);
    client
        .env("STRAND_PROFILE", &a.dir)
        .env("STRAND_PASSPHRASE", &a.pass)
        .env_remove("STRAND_LOG")
        .uid(65534)
        .gid(65534);
    let (out, by_itself) = guarded(client, &["status"], Duration::from_secs(120));
    assert!(by_itself, "the client waited for another user's socket");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("served by another user"), "{err}");
    assert_eq!(told.join().unwrap(), 0, "the request was sent");
}

/// `--passphrase-file` and `strand relay --key` read no more of a file
/// than they need: one that never ends (`/dev/zero`) is refused at once,
/// in words. Before, each was read until memory ran out (here, under a
/// memory cap, until an allocation failed).
#[test]
fn a_file_that_never_ends_is_refused_not_read_for_ever() {
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().unwrap();
    let a = User::init(tmp.path(), "alice");
    // A read without a bound ends the child (an allocation fails) rather
    // than take this machine's memory. RLIMIT_DATA (memory written to)
    // rather than RLIMIT_AS, which also counts address space reserved and
    // never used, as the allocator's 64 MiB arena for each thread of a
    // runtime with a thread per core.
    let capped = |mut command: Command| {
        const CAP: libc::rlim_t = 1 << 30;
        // SAFETY: between fork and exec, one async-signal-safe call that
        // changes only the child's own limit.
        unsafe {
            command.pre_exec(|| {
                let cap = libc::rlimit {
                    rlim_cur: CAP,
                    rlim_max: CAP,
                };
                match libc::setrlimit(libc::RLIMIT_DATA, &cap) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                }
            });
        }
        command
    };
    let guard = Duration::from_secs(60);

    let args = ["--passphrase-file", "/dev/zero", "contacts"];
    let (out, by_itself) = guarded(capped(a.command()), &args, guard);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(by_itself, "still reading /dev/zero after {guard:?}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("too long"), "{err}");

    let mut relay = Command::new(BIN);
    relay.env_remove("STRAND_LOG");
    let args = [
        "relay",
        "--key",
        "/dev/zero",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
    ];
    let (out, by_itself) = guarded(capped(relay), &args, guard);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(by_itself, "still reading /dev/zero after {guard:?}");
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is not a relay key"), "{err}");
}

/// `strand init` calibrates Argon2id on this machine, never under
/// the floor; the passphrase can come from a file; a running node does not
/// keep STRAND_PASSPHRASE in its environment.
#[test]
fn init_calibrates_the_kdf_and_the_passphrase_leaves_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("real");
    let pass_file = tmp.path().join("pass");
    std::fs::write(&pass_file, "correct horse battery\n").unwrap();
    let out = Command::new(BIN)
        .args(["init", "--name", "Real", "--passphrase-file"])
        .arg(&pass_file)
        .env("STRAND_PROFILE", &dir)
        .env_remove("STRAND_PASSPHRASE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kdf = strand_node::Profile::kdf_params(&dir).unwrap();
    assert!(kdf.at_least(&strand_node::KdfParams::FLOOR), "{kdf:?}");
    // Space around a name is not part of it, as everywhere else a name
    // is typed (before: "bad name", after the passphrase was read); a bad
    // name is said before any passphrase is asked for.
    let spaced = tmp.path().join("spaced");
    let init = |dir: &Path, name: &str| {
        Command::new(BIN)
            .args(["init", "--name", name, "--passphrase-file"])
            .arg(&pass_file)
            .env("STRAND_PROFILE", dir)
            .env_remove("STRAND_PASSPHRASE")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = init(&spaced, "  Spaced ");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("for Spaced in"));
    let bad = tmp.path().join("bad");
    let out = init(&bad, "a\u{202e}b");
    assert_eq!(out.status.code(), Some(1));
    assert!(!bad.exists());
    // The file opens it; a wrong one does not.
    let with = |file: &Path| {
        Command::new(BIN)
            .args(["contacts", "--passphrase-file"])
            .arg(file)
            .env("STRAND_PROFILE", &dir)
            .env_remove("STRAND_PASSPHRASE")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    assert!(with(&pass_file).status.success());
    std::fs::write(tmp.path().join("wrong"), "nope\n").unwrap();
    let out = with(&tmp.path().join("wrong"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));

    // A running node's environment holds no passphrase.
    let u = User::init(tmp.path(), "alice");
    let (run, _) = u.run(&[]);
    let run = Killed(run);
    let environ = std::fs::read(format!("/proc/{}/environ", run.0.id())).unwrap();
    assert!(
        !environ
            .windows(u.pass.len())
            .any(|w| w == u.pass.as_bytes()),
        "the passphrase is still readable in the node's environment"
    );
}

/// `strand read` crosses the control socket a page at a time
/// (a page holds at most `READ_PAGE` messages), in order, with nothing
/// lost at page boundaries; a bad cursor is a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_is_paged_over_the_control_socket() {
    use strand_node::control;
    use strand_node::runtime::api::{Answer, Cursor, Reply, Request, READ_PAGE};
    let tmp = tempfile::tempdir().unwrap();
    let n = READ_PAGE * 2 + 37;
    let a = alice_with_texts_to_bob(tmp.path(), n);
    let (run, _) = a.run(&[]);
    let _run = Killed(run);
    let out = a.cmd(&["read", "bob", "--json"]);
    assert!(out.status.success());
    let texts: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(texts, (0..n).map(|i| format!("m{i}")).collect::<Vec<_>>());

    // One request: one bounded page and where the next starts.
    let ask = |from: Option<Cursor>, limit: Option<usize>| {
        let dir = a.dir.clone();
        async move {
            let req = Request::Read {
                contact: "bob".into(),
                from,
                limit,
            };
            control::request(&dir, &req).await.unwrap().unwrap().0
        }
    };
    let page = |a: Answer| match a {
        Answer::Ok(Reply::Page(p)) => p,
        other => panic!("{other:?}"),
    };
    let r = page(ask(None, Some(100_000)).await);
    assert_eq!(r.messages.len(), READ_PAGE);
    let next = r.next.unwrap();
    let page = page(ask(Some(next), Some(10)).await);
    assert_eq!(page.messages[0].text, format!("m{READ_PAGE}"));
    assert_eq!(page.messages.len(), 10);
    let bad = ask(
        Some(Cursor {
            shown: None,
            time: 0,
            id: "zz".into(),
        }),
        None,
    )
    .await;
    match bad {
        Answer::Error(e) => assert!(e.message.contains("bad cursor"), "{e}"),
        other => panic!("{other:?}"),
    }
}

/// Regression: `group_read` answered a whole group in one line, however
/// long (the node built it, and `strand` read it, whole). One request now
/// answers a page of at most `READ_PAGE` texts and where the next starts,
/// as `read` does; `strand group read` asks a page at a time and still
/// prints every text, in order (with `--json`, one a line).
#[test]
fn group_read_is_paged_over_the_control_socket() {
    use strand_node::runtime::api::READ_PAGE;
    let tmp = tempfile::tempdir().unwrap();
    let n = READ_PAGE + 1;
    let a = alice_with_texts_to_bob(tmp.path(), 0);
    a.ok(&["group", "create", "desk", "--with", "bob"]);
    {
        let p = strand_node::Profile::open(&a.dir, &a.pass).unwrap();
        let t0 = strand_node::now();
        for i in 0..n {
            p.write_group(
                "desk",
                &format!("m{i}"),
                t0 + i as u64,
                &mut strand_node::os_rng(),
            )
            .unwrap();
        }
    }
    let (_run, socket) = run_serving(&a);
    // One request: one bounded page, and where the next starts. (Asked
    // as an older client asks, with neither `from` nor `limit`.)
    let answer = answer_on(&socket, r#"{"request":"group_read","group":"desk"}"#);
    let page = &answer["ok"];
    assert_eq!(page["reply"], "group_messages", "{answer}");
    let messages = page["messages"].as_array().unwrap();
    assert_eq!(messages.len(), READ_PAGE);
    assert_eq!(messages[0]["text"], "m0");
    assert!(page["next"]["id"].is_string(), "{}", page["next"]);

    let want: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    let out = a.cmd(&["group", "read", "desk", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let texts: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(texts, want);
    let printed = a.ok(&["group", "read", "desk"]);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), n, "{printed}");
    for (line, text) in lines.iter().zip(&want) {
        assert!(line.ends_with(&format!(": {text}")), "{line}");
    }
}

#[test]
fn read_follow_prints_what_arrives_where_it_is_shown_and_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    b.ok(&["send", "alice", "queued before"]);
    let (b_run, b_addr) = b.run(&[]);
    let _b_run = Killed(b_run);
    let (a_run, _) = a.run(&[&b_addr]);
    let a_run = Killed(a_run);
    eventually("the queued message", Duration::from_secs(60), || {
        a.read("bob").len() == 1
    });
    let mut follow = a
        .command()
        .args(["read", "bob", "--follow", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(follow.stdout.take().unwrap());
    let follow = Killed(follow);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str::<Value>(&line).unwrap());
        }
    });
    let next = || rx.recv_timeout(Duration::from_secs(60)).expect("a line");
    assert_eq!(
        next()["text"],
        "queued before",
        "first the conversation so far"
    );
    b.ok(&["send", "alice", "one"]);
    b.ok(&["send", "alice", "two"]);
    let (one, two) = (next(), next());
    assert_eq!(
        (one["text"].as_str(), two["text"].as_str()),
        (Some("one"), Some("two"))
    );
    for m in [&one, &two] {
        // Read back from the store: its place and when it arrived.
        assert!(m["shown"].as_u64() >= m["time"].as_u64(), "{m}");
        assert!(m["received"].as_u64().is_some(), "{m}");
    }
    assert!(
        rx.recv_timeout(Duration::from_millis(1500)).is_err(),
        "each once"
    );
    // What a drive brings shows too: Bob stops, writes, and hands Alice a
    // bundle, which her running node takes in.
    drop(_b_run);
    b.ok(&["send", "alice", "by stick"]);
    let stick = tmp.path().join("from-bob.strand");
    b.ok(&["export", "alice", "--to", stick.to_str().unwrap()]);
    a.ok(&["import", stick.to_str().unwrap()]);
    assert_eq!(next()["text"], "by stick");
    drop(follow);
    drop(a_run);
    // What --follow printed was marked read.
    let p = strand_node::Profile::open(&a.dir, &a.pass).unwrap();
    let s = p.summaries().unwrap();
    assert_eq!((s[0].name.as_str(), s[0].unread), ("bob", 0));
}

/// Where Bluetooth cannot run (here: an adapter that does not
/// exist, so the test means the same on a machine with BlueZ), `strand
/// run` says why in one line and runs on its other transports; `strand
/// status` says it too; `--no-ble` says nothing.
#[test]
fn a_node_without_bluetooth_says_why_in_one_line_and_runs_on() {
    let tmp = tempfile::tempdir().unwrap();
    let a = User::init(tmp.path(), "alice");
    // The labelled addresses, then one line on Bluetooth.
    let (child, lines) = a.run_printing(
        &[
            "run",
            "--no-mdns",
            "--no-relay",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--ble-adapter",
            "hci99",
        ],
        a.command(),
        |l| l.starts_with("Bluetooth off: "),
    );
    let running = Killed(child);
    assert!(
        lines[0].starts_with("LAN: /ip4/127.0.0.1/tcp/"),
        "{lines:?}"
    );
    let bt: Vec<_> = lines
        .iter()
        .filter(|l| l.starts_with("Bluetooth"))
        .collect();
    assert_eq!(bt.len(), 1, "{lines:?}");
    assert!(bt[0].starts_with("Bluetooth off: "), "{lines:?}");
    let status = a.ok(&["status"]);
    assert!(status.contains("Bluetooth off: "), "{status}");
    assert!(status.contains("transport LAN"), "{status}");
    drop(running);
    // Turned off on purpose: not a word about it.
    let (quiet, _) = a.run_with(
        &[
            "run",
            "--no-mdns",
            "--no-relay",
            "--no-ble",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ],
        a.command(),
    );
    let _quiet = Killed(quiet);
    let status = a.ok(&["status"]);
    assert!(!status.contains("Bluetooth"), "{status}");
}

/// `strand group`: made offline, synced by two `strand run` processes, and
/// bad group input refused with a clear error that changes nothing.
#[test]
fn groups_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    // Offline: the profile directly.
    let out = a.cmd(&["group", "create", "desk", "--with", "nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no contact named \"nobody\""));
    let out = a.cmd(&["group", "send", "desk", "hi"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no group named \"desk\""));
    assert!(a.ok(&["group", "list"]).contains("No groups yet"));
    a.ok(&["group", "create", "desk", "--with", "bob"]);
    a.ok(&["group", "send", "desk", "written offline"]);
    let list: Vec<Value> = serde_json::from_str(&a.ok(&["group", "list", "--json"])).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["members"], 2);
    assert_eq!(list[0]["admin"], true);

    let (b_run, b_addr) = b.run(&[]);
    let _b_run = Killed(b_run);
    let (a_run, _) = a.run(&[&b_addr]);
    let _a_run = Killed(a_run);
    eventually("Bob joins and reads", Duration::from_secs(60), || {
        let out = b.cmd(&["group", "read", "desk", "--json"]);
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("written offline")
    });
    // Through the running nodes now.
    b.ok(&["group", "send", "desk", "from bob"]);
    eventually("Alice reads Bob", Duration::from_secs(60), || {
        a.ok(&["group", "read", "desk"]).contains("bob: from bob")
    });
    // Timers: bad ones refused, admins only in a group.
    let out = a.cmd(&["timer", "bob", "4m"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("between 5 minutes and a year"));
    assert!(a.ok(&["timer", "bob"]).contains("stay (no timer)"));
    assert!(a
        .ok(&["timer", "bob", "1h"])
        .contains("disappear after 1 hour"));
    let out = b.cmd(&["group", "timer", "desk", "1d"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("only an admin"));
    assert!(a
        .ok(&["group", "timer", "desk", "1d"])
        .contains("after 1 day"));
    a.ok(&["group", "send", "desk", "under a timer"]);
    eventually(
        "Bob sees it will disappear",
        Duration::from_secs(60),
        || {
            b.ok(&["group", "read", "desk"])
                .lines()
                .any(|l| l.contains("under a timer") && l.contains("(disappears "))
        },
    );
    assert!(b.ok(&["group", "timer", "desk"]).contains("after 1 day"));
    let members = a.ok(&["group", "members", "desk"]);
    assert!(
        members.contains("me") && members.contains("bob"),
        "{members}"
    );
    // Bob is no admin; removing needs one, leaving a member does not.
    let out = b.cmd(&["group", "remove", "desk", "alice"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only an admin"));
    let out = a.cmd(&["group", "remove", "desk", "carol"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no member \"carol\""));
    // By its id, which names it as its name does: Bob, no admin, only
    // asked to leave, and is told so (not that he left).
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let left = b.ok(&["group", "leave", &id]);
    assert!(left.contains("You asked to leave"), "{left}");
    eventually("Alice sees Bob leave", Duration::from_secs(60), || {
        a.ok(&["group", "list", "--json"])
            .contains("\"members\": 1")
    });
    // Bob is no admin: he asked to leave, and Alice's node removed him.
    eventually("Bob is out", Duration::from_secs(60), || {
        b.ok(&["group", "list"])
            .contains("you are no longer a member")
    });
    let out = b.cmd(&["group", "send", "desk", "still?"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no longer a member"));
}

/// A 50 MiB file between two `strand run` processes, the receiver killed
/// with SIGKILL three times mid-transfer: it resumes each time, and the
/// saved file is byte-identical, its hash checked.
#[test]
fn a_50_mib_file_survives_three_kills_of_the_receiver() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    let size = 50 * 1024 * 1024;
    let mut data = vec![0u8; size];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let path = tmp.path().join("archive.bin");
    std::fs::write(&path, &data).unwrap();
    a.ok(&["send", "bob", "--file", path.to_str().unwrap()]);
    let (a_run, a_addr) = a.run(&[]);
    let _a_run = Killed(a_run);
    let progress = || -> Option<(usize, usize, String)> {
        let out = b.cmd(&["read", "alice", "--json"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|m| {
                let f = m.get("file")?;
                Some((
                    f["have"].as_u64()? as usize,
                    f["total"].as_u64()? as usize,
                    m["id"].as_str()?.to_owned(),
                ))
            })
    };
    // Each round: start Bob, and kill him (SIGKILL) as soon as more of the
    // file is there than before, checking as fast as `strand read` answers.
    let mut kills = 0;
    let mut last = 0;
    while kills < 3 {
        let (b_run, _) = b.run(&[&a_addr]);
        let b_run = Killed(b_run);
        let start = Instant::now();
        while progress().is_none_or(|(have, _, _)| have <= last) {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no progress after kill {kills}"
            );
        }
        drop(b_run);
        let (have, total, _) = progress().unwrap();
        assert!(
            have < total,
            "finished before kill {} ({have} of {total})",
            kills + 1
        );
        assert!(have > last);
        kills += 1;
        last = have;
    }
    let (b_run, _) = b.run(&[&a_addr]);
    let _b_run = Killed(b_run);
    eventually("the whole file", Duration::from_secs(180), || {
        progress().is_some_and(|(have, total, _)| have == total)
    });
    let (_, total, id) = progress().unwrap();
    assert_eq!(total, 200);
    let out_dir = tmp.path().join("out");
    let saved = b.ok(&["save", &id[..12], out_dir.to_str().unwrap()]);
    assert!(saved.contains("archive.bin"), "{saved}");
    let back = std::fs::read(out_dir.join("archive.bin")).unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "byte-identical");
    assert_eq!(strand_sync::file_hash(&back), strand_sync::file_hash(&data));
}

/// Carrying from the command line, three `strand run` processes on
/// loopback: Bob carries; Alice writes to Carol, whom she never meets;
/// Bob brings it, and drops his copy once Carol has it.
#[test]
fn carrying_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    let c = User::init(tmp.path(), "carol");
    for (x, y, yname, xname) in [(&b, &c, "carol", "bob"), (&a, &c, "carol", "alice")] {
        x.ok(&["add", &y.invite(), "--name", yname]);
        y.ok(&["add", &x.invite(), "--name", xname]);
    }
    let status = |u: &User| -> Value { serde_json::from_str(&u.ok(&["carry", "--json"])).unwrap() };
    // Offline: off by default; bad input refused; on.
    assert!(b.ok(&["carry"]).contains("You do not carry"));
    let out = b.cmd(&["carry", "maybe"]);
    assert_eq!(out.status.code(), Some(1), "a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values: on, off"));
    assert_eq!(status(&b)["carrying"], false);
    assert!(b.ok(&["carry", "on"]).contains("You carry sealed messages"));
    assert_eq!(status(&b)["carrying"], true);

    let (b_run, b_addr) = b.run(&[]);
    let _b_run = Killed(b_run);
    let (a_run, _) = a.run(&[&b_addr]);
    let mut a_run = Killed(a_run);
    eventually("Alice learns Bob carries", Duration::from_secs(60), || {
        status(&a)["carriers"] == 1
    });
    a.ok(&["send", "carol", "the meeting moved to nine"]);
    eventually("Bob holds an envelope", Duration::from_secs(60), || {
        status(&b)["held"] == 1
    });
    let _ = a_run.0.kill();
    let _ = a_run.0.wait();

    let (c_run, _) = c.run(&[&b_addr]);
    let _c_run = Killed(c_run);
    eventually(
        "Carol reads Alice's message",
        Duration::from_secs(60),
        || {
            c.read("alice")
                .iter()
                .any(|m| m["text"] == "the meeting moved to nine")
        },
    );
    eventually("Bob drops his copy", Duration::from_secs(60), || {
        status(&b)["held"] == 0
    });
    assert!(c
        .ok(&["carry"])
        .contains("Messages that reached you this way: 1."));
}

/// The mailbox from the command line: `strand mailbox init` on the
/// mailbox, `strand mailbox add` on the owner's device; the owner, away
/// when a contact writes, gets the message from the mailbox alone.
#[test]
fn a_mailbox_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (owen, ann) = pair(tmp.path());
    let max = User::init(tmp.path(), "max");
    assert!(max.ok(&["mailbox"]).contains("No mailbox"));
    let out = max.cmd(&["mailbox", "init", "strand1notacode"]);
    assert!(!out.status.success());
    assert!(max.ok(&["contacts", "--json"]).matches("\"name\"").count() == 0);
    let init = max.ok(&["mailbox", "init", &owen.invite()]);
    assert!(
        init.contains("This device is the mailbox of alice"),
        "{init}"
    );
    let code = init
        .lines()
        .last()
        .unwrap()
        .trim()
        .strip_prefix("strand mailbox add ")
        .unwrap()
        .to_owned();
    let added = owen.ok(&["mailbox", "add", &code]);
    assert!(added.contains("Your mailbox is paired"), "{added}");
    assert!(
        owen.ok(&["carry"]).contains("do not carry"),
        "the owner need not carry"
    );

    let (m_run, m_addr) = max.run(&[]);
    let _m_run = Killed(m_run);
    let (o_run, o_addr) = owen.run(&[&m_addr]);
    let mut o_run = Killed(o_run);
    let (a_run, _) = ann.run(&[&o_addr, &m_addr]);
    let mut a_run = Killed(a_run);
    eventually("Max knows Bob", Duration::from_secs(60), || {
        max.ok(&["contacts", "--json"]).matches("\"name\"").count() == 2
    });
    eventually("Bob knows Alice's mailbox", Duration::from_secs(60), || {
        ann.ok(&["contacts"]).contains("alice's mailbox")
    });
    let _ = o_run.0.kill();
    let _ = o_run.0.wait();
    eventually(
        "Bob learns the mailbox carries",
        Duration::from_secs(60),
        || {
            ann.ok(&["carry"])
                .contains("Contacts who carry for you: 1.")
        },
    );
    ann.ok(&["send", "alice", "left you a note"]);
    eventually("the mailbox holds it", Duration::from_secs(60), || {
        max.ok(&["carry"]).contains(": 1 held")
    });
    let _ = a_run.0.kill();
    let _ = a_run.0.wait();
    let (o_run, _) = owen.run(&[&m_addr]);
    let _o_run = Killed(o_run);
    eventually("Alice reads Bob's note", Duration::from_secs(60), || {
        owen.read("bob")
            .iter()
            .any(|m| m["text"] == "left you a note")
    });
}

/// What a contact writes reaches the terminal as
/// text, never as control. Bob's text carries a line break followed by a
/// forged line under Carol's name, a terminal escape that sets the window
/// title, and a bidi override; his file is named `invoice<U+202E>gpj.sh`.
/// `strand read` shows every one of them visibly and forges no line; the
/// file's name loses the override (here when Bob's `strand` sends it; a
/// hostile client's is dropped by `safe_name` when Alice saves it), so it
/// shows what it is. `strand read --json` keeps the text as Bob wrote it,
/// with everything hidden written as a JSON escape: printed on a terminal,
/// it cannot act either (a C1 CSI, U+009B, starts an escape sequence on
/// some terminals; serde_json writes it, and U+202E, as they are).
#[test]
fn what_a_contact_writes_cannot_drive_the_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    let forged =
        "see you\n2026-11-23 12:00:00 carol: send money to X\x1b]0;pwned\x07 \u{202e}evil \u{9b}2J";
    b.ok(&["send", "alice", forged]);
    let path = tmp.path().join("invoice\u{202e}gpj.sh");
    std::fs::write(&path, b"#!/bin/sh\necho hi\n").unwrap();
    b.ok(&["send", "alice", "--file", path.to_str().unwrap()]);
    let (a_run, a_addr) = a.run(&[]);
    let _a_run = Killed(a_run);
    let (b_run, _) = b.run(&[&a_addr]);
    let _b_run = Killed(b_run);
    eventually(
        "both arrive, the file whole",
        Duration::from_secs(60),
        || {
            let out = a.ok(&["read", "bob"]);
            out.contains("see you") && out.contains("ready: strand save")
        },
    );
    let out = a.ok(&["read", "bob"]);
    assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
    assert!(!out.contains('\u{202e}'), "{out:?}");
    assert!(out.contains("<U+001B>]0;pwned<U+0007>"), "{out}");
    assert!(out.contains("<U+009B>2J"), "{out}");
    let json = a.ok(&["read", "bob", "--json"]);
    assert!(
        !json.contains('\u{202e}') && !json.contains('\u{9b}'),
        "{json:?}"
    );
    assert!(json.contains(r"\u202eevil \u009b2J"), "{json}");
    assert!(a.read("bob").iter().any(|m| m["text"] == forged));
    for line in out.lines() {
        assert!(
            !line.starts_with("2026-11-23 12:00:00 carol"),
            "a forged line: {out}"
        );
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("  │ 2026-11-23 12:00:00 carol")),
        "the break shows as a continuation: {out}"
    );
    let id = a
        .read("bob")
        .iter()
        .find_map(|m| m.get("file").and(m["id"].as_str()).map(str::to_owned))
        .unwrap();
    let out_dir = tmp.path().join("saved");
    a.ok(&["save", &id[..12], out_dir.to_str().unwrap()]);
    let names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["invoicegpj.sh"]);
}

/// A text written with `strand send` while no node runs is
/// carried as one written through a running node. Alice knows Bob
/// carries; she writes to Carol with her node down, then meets only Bob;
/// Bob brings it to Carol. (It used to stay at Alice's: offline sending
/// never sealed it for carriers, and a starting node did not either.)
#[test]
fn a_text_written_offline_is_carried_to_someone_never_met() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    let c = User::init(tmp.path(), "carol");
    for (x, y, yname, xname) in [(&b, &c, "carol", "bob"), (&a, &c, "carol", "alice")] {
        x.ok(&["add", &y.invite(), "--name", yname]);
        y.ok(&["add", &x.invite(), "--name", xname]);
    }
    let status = |u: &User| -> Value { serde_json::from_str(&u.ok(&["carry", "--json"])).unwrap() };
    b.ok(&["carry", "on"]);
    let (b_run, b_addr) = b.run(&[]);
    let _b_run = Killed(b_run);
    {
        let (a_run, _) = a.run(&[&b_addr]);
        let _a_run = Killed(a_run);
        eventually("Alice learns Bob carries", Duration::from_secs(60), || {
            status(&a)["carriers"] == 1
        });
    }
    // Alice's node is down: this goes through a node started for it.
    let sent = a.ok(&["send", "carol", "written with no node running"]);
    assert!(sent.contains("Queued for carol"), "{sent}");
    // Kept to spread at once (Carol is met rarely: nothing holds it back),
    // waiting for a carrier, as none has been met since.
    let s = status(&a);
    assert_eq!(
        (&s["spreading"], &s["held_back"], &s["waiting"]),
        (&Value::from(0), &Value::from(0), &Value::from(1)),
        "{s}"
    );
    {
        let (a_run, _) = a.run(&[&b_addr]);
        let _a_run = Killed(a_run);
        eventually("Bob holds an envelope", Duration::from_secs(60), || {
            status(&b)["held"] == 1
        });
    }
    let s = status(&a);
    assert_eq!(
        (&s["spreading"], &s["waiting"]),
        (&Value::from(1), &Value::from(0)),
        "{s}"
    );
    let (c_run, _) = c.run(&[&b_addr]);
    let _c_run = Killed(c_run);
    eventually("Carol reads it", Duration::from_secs(60), || {
        c.read("alice")
            .iter()
            .any(|m| m["text"] == "written with no node running")
    });
}

/// A text Bob writes to Alice with his node down reaches
/// Alice's mailbox when Bob's node next meets only the mailbox, and Alice
/// gets it from there.
#[test]
fn a_text_written_offline_waits_at_the_mailbox() {
    let tmp = tempfile::tempdir().unwrap();
    let (owen, ann) = pair(tmp.path());
    let max = User::init(tmp.path(), "max");
    let init = max.ok(&["mailbox", "init", &owen.invite()]);
    let code = init
        .lines()
        .last()
        .unwrap()
        .trim()
        .strip_prefix("strand mailbox add ")
        .unwrap()
        .to_owned();
    owen.ok(&["mailbox", "add", &code]);
    let (m_run, m_addr) = max.run(&[]);
    let _m_run = Killed(m_run);
    {
        let (o_run, o_addr) = owen.run(&[&m_addr]);
        let _o_run = Killed(o_run);
        let (a_run, _) = ann.run(&[&o_addr, &m_addr]);
        let _a_run = Killed(a_run);
        eventually(
            "Bob knows the mailbox carries",
            Duration::from_secs(60),
            || {
                ann.ok(&["carry"])
                    .contains("Contacts who carry for you: 1.")
            },
        );
    }
    // Bob's node is down: his text waits for a carrier.
    ann.ok(&["send", "alice", "left with no node running"]);
    let carry = ann.ok(&["carry"]);
    assert!(
        carry.contains("Your messages on their way through them: 0.")
            && carry.contains("Waiting to meet a contact who carries: 1."),
        "{carry}"
    );
    {
        let (a_run, _) = ann.run(&[&m_addr]);
        let _a_run = Killed(a_run);
        eventually("the mailbox holds it", Duration::from_secs(60), || {
            max.ok(&["carry"]).contains(": 1 held")
        });
    }
    let (o_run, _) = owen.run(&[&m_addr]);
    let _o_run = Killed(o_run);
    eventually("Alice reads Bob's note", Duration::from_secs(60), || {
        owen.read("bob")
            .iter()
            .any(|m| m["text"] == "left with no node running")
    });
}

/// Every command gives the same result whether a node runs on
/// the profile or not: the same output (ids, times and the profile's
/// folder aside) and the same exit code, errors included. One profile,
/// copied: the table runs on one copy with no node and on the other
/// through a running `strand run`. (`status` and `relay list` describe
/// the node itself, and `run`, `init`, `wipe`, `demo` are not commands on
/// a profile's device; they are tested elsewhere.)
#[test]
fn every_command_does_the_same_with_or_without_a_node() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    let c = User::init(tmp.path(), "carol");
    a.ok(&["add", &c.invite(), "--name", "carol"]);
    let file = tmp.path().join("notes.txt");
    std::fs::write(&file, b"a few notes\n").unwrap();
    let bundle_from_bob = tmp.path().join("from-bob.strand");
    let (weak, new_pass) = (tmp.path().join("weak"), tmp.path().join("new-pass"));
    std::fs::write(&weak, "123\n").unwrap();
    std::fs::write(&new_pass, "alice keeps a lantern by the quay\n").unwrap();
    b.ok(&["send", "alice", "for the drive"]);
    b.ok(&["export", "alice", "--to", bundle_from_bob.to_str().unwrap()]);
    // Two copies of Alice's profile: one with no node, one with a node.
    let copy = |to: &str| {
        let dir = tmp.path().join(to);
        let status = Command::new("cp")
            .arg("-a")
            .arg(&a.dir)
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success());
        User {
            dir,
            pass: a.pass.clone(),
        }
    };
    let (offline, online) = (copy("alice-offline"), copy("alice-online"));
    let (run, _) = online.run(&[]);
    let _run = Killed(run);
    let saves = |u: &User| u.dir.with_extension("saved");
    let table: Vec<Vec<String>> = [
        "invite",
        "contacts",
        "contacts --json",
        "verify bob",
        "verify bob --confirm",
        "verify nobody",
        "send bob hello",
        "send nobody hello",
        "send bob --file FILE",
        "read bob",
        "read nobody",
        "timer bob 1h",
        "timer bob",
        "timer bob 4m",
        "timer bob 0",
        "timer bob -5m",
        "timer bob 299s",
        "timer bob off",
        "import BUNDLE",
        "import BUNDLE",
        "read bob",
        "export bob --to OUT",
        "export bob --to OUT",
        "group create desk --with bob,carol",
        "group create desk --with nobody",
        "group list",
        "group members desk",
        "group send desk hi",
        "group read desk",
        "group timer desk 1d",
        "group timer desk",
        "group admin desk bob",
        "group remove desk carol",
        "group remove desk nobody",
        "group add desk nobody",
        "group explode desk",
        "group send nowhere hi",
        "group leave desk",
        "group list",
        "carry",
        "carry on",
        "carry --json",
        "carry off",
        "mailbox",
        "mailbox add strand1notacode",
        "relay add /ip4/127.0.0.1/tcp/9/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
        "relay add nonsense",
        "relay remove /ip4/127.0.0.1/tcp/9/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
        "relay remove /ip4/127.0.0.1/tcp/9/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
        "rename-contact carol caroline",
        "rename-contact caroline bob",
        "rename-contact nobody someone",
        "rename-contact caroline car\u{200b}ol",
        "contacts",
        "read caroline",
        "delete-contact caroline",
        "delete-contact nobody --yes",
        "delete-contact caroline --yes",
        "contacts",
        "read caroline",
        "name",
        "name Ally",
        "name al\u{200b}ly",
        "name",
        "name --json",
        "passphrase --new-passphrase-file WEAK",
        // Last: the passphrase the rest of the table gives stops working.
        "passphrase --new-passphrase-file NEWPASS",
    ]
    .iter()
    .map(|l| l.split(' ').map(str::to_owned).collect())
    .collect();
    let hex = |s: &str| {
        let mut out = String::new();
        let mut run = String::new();
        for ch in s.chars() {
            if ch.is_ascii_hexdigit() {
                run.push(ch);
                continue;
            }
            out.push_str(if run.len() >= 8 { "HEX" } else { &run });
            run.clear();
            out.push(ch);
        }
        out.push_str(if run.len() >= 8 { "HEX" } else { &run });
        out
    };
    let normal = |u: &User, text: &[u8]| -> String {
        let text = String::from_utf8_lossy(text)
            .replace(&u.dir.display().to_string(), "PROFILE")
            .replace(&saves(u).display().to_string(), "SAVED");
        let text: String = text
            .lines()
            .map(|l| {
                // Times: "2026-11-23 12:00:00" and ms since the epoch.
                let mut l = l.to_owned();
                while let Some(i) = l.find("20") {
                    let t = &l[i..];
                    if t.len() >= 19 && t.as_bytes()[4] == b'-' && t.as_bytes()[13] == b':' {
                        l.replace_range(i..i + 19, "TIME");
                    } else {
                        break;
                    }
                }
                l
            })
            .collect::<Vec<_>>()
            .join("\n");
        hex(&text)
    };
    let run_table = |u: &User| -> Vec<(Option<i32>, String, String)> {
        let out_file = u.dir.with_extension("bundle");
        table
            .iter()
            .map(|args| {
                let args: Vec<String> = args
                    .iter()
                    .map(|a| match a.as_str() {
                        "FILE" => file.display().to_string(),
                        "BUNDLE" => bundle_from_bob.display().to_string(),
                        "OUT" => out_file.display().to_string(),
                        "WEAK" => weak.display().to_string(),
                        "NEWPASS" => new_pass.display().to_string(),
                        other => other.to_owned(),
                    })
                    .collect();
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let out = u.cmd(&args);
                let text = normal(u, &out.stdout).replace(&out_file.display().to_string(), "OUT");
                let err = normal(u, &out.stderr).replace(&out_file.display().to_string(), "OUT");
                (out.status.code(), text, err)
            })
            .collect()
    };
    let without = run_table(&offline);
    let with = run_table(&online);
    if std::env::var("SHOW_TABLE").is_ok() {
        for ((args, w), o) in table.iter().zip(&with).zip(&without) {
            eprintln!("== {}\n{w:?}\n{o:?}", args.join(" "));
        }
    }
    for ((args, w), o) in table.iter().zip(&with).zip(&without) {
        assert_eq!(
            w,
            o,
            "`strand {}` differs with a node running (left) and without (right)",
            args.join(" ")
        );
    }
    // Bad values are usage errors both ways, and the rest did not fail.
    for ((args, w), o) in table.iter().zip(&with).zip(&without) {
        let line = args.join(" ");
        let bad = line.contains("nobody")
            || line.contains("nowhere")
            || line.contains("explode")
            || line.contains("notacode")
            || line.contains("nonsense")
            || line.contains("WEAK")
            || line.starts_with("rename-contact caroline ")
            || line.starts_with("name al")
            || line == "delete-contact caroline"
            || [
                "timer bob 4m",
                "timer bob 0",
                "timer bob -5m",
                "timer bob 299s",
            ]
            .contains(&line.as_str());
        if bad {
            assert_eq!(
                w.0,
                Some(1),
                "`strand {line}` is refused with a node: {w:?}"
            );
            assert_eq!(o.0, Some(1), "`strand {line}` is refused without: {o:?}");
            if line.starts_with("timer bob") {
                assert!(
                    w.2.contains("between 5 minutes and a year"),
                    "`strand {line}` says the range: {w:?}"
                );
            }
        } else if line.starts_with("rename-contact")
            || line.starts_with("name")
            || line == "delete-contact caroline --yes"
        {
            assert_eq!(w.0, Some(0), "`strand {line}` with a node: {w:?}");
            assert_eq!(o.0, Some(0), "`strand {line}` without: {o:?}");
        }
    }
    // The user's own name, shown, changed, kept on a refusal.
    let at = |line: &str| table.iter().position(|l| l.join(" ") == line).unwrap();
    assert_eq!(with[at("name")].1, "alice");
    assert_eq!(with[at("name Ally")].1, "Ally");
    assert!(with[at("name al\u{200b}ly")].2.contains("invisible"));
    assert_eq!(with[at("name al\u{200b}ly") + 1].1, "Ally");
    let json: Value = serde_json::from_str(&with[at("name --json")].1).unwrap();
    assert_eq!(json, serde_json::json!({ "name": "Ally", "problem": null }));
    // Caroline is there until deleted (without --yes, and with no
    // terminal to type her name in, nothing is), then gone.
    let deleted = table
        .iter()
        .position(|l| l.join(" ") == "delete-contact caroline --yes")
        .unwrap();
    let reads: Vec<usize> = (0..table.len())
        .filter(|i| table[*i].join(" ") == "read caroline")
        .collect();
    assert_eq!(reads.len(), 2);
    assert!(reads[0] < deleted && deleted < reads[1]);
    assert_eq!(with[reads[0]].0, Some(0), "{:?}", with[reads[0]]);
    assert_eq!(with[reads[1]].0, Some(1), "{:?}", with[reads[1]]);
    assert!(
        with[deleted - 2]
            .2
            .contains("refusing to delete a contact without confirmation"),
        "{:?}",
        with[deleted - 2]
    );
    assert!(
        with[deleted].1.contains("Deleted \"caroline\""),
        "{:?}",
        with[deleted]
    );
    assert!(
        !with[deleted + 1].1.contains("caroline"),
        "{:?}",
        with[deleted + 1]
    );
    assert_eq!(table[deleted - 4].join(" "), "contacts");
    assert!(
        with[deleted - 4].1.contains("caroline"),
        "{:?}",
        with[deleted - 4]
    );
    // And it did what it says, both ways: the new passphrase opens the
    // profile, the old one no longer does.
    drop(_run);
    let renew = |u: &User| User {
        dir: u.dir.clone(),
        pass: "alice keeps a lantern by the quay".into(),
    };
    for u in [&offline, &online] {
        let out = u.cmd(&["contacts"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));
    }
    let (offline, online) = (renew(&offline), renew(&online));
    for u in [&offline, &online] {
        assert!(u
            .read("bob")
            .iter()
            .any(|m| m["text"] == "hello" && m["from"] == "me"));
        assert!(u.read("bob").iter().any(|m| m["text"] == "for the drive"));
    }
}

/// `--json` answers the commands that change something too, with the
/// device's reply: `send` gives the message's id (which `read --json`
/// shows), `add` the contact, a group change what it did. Before, they
/// printed their sentences whatever was asked, and no form had the id.
#[test]
fn changes_answer_in_json_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _b) = pair(tmp.path());
    let c = User::init(tmp.path(), "carol");
    let v = |args: &[&str]| -> Value {
        let out = a.ok(&[args, &["--json"]].concat());
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("`strand {}` printed no JSON ({e}): {out}", args.join(" ")))
    };
    let sent = v(&["send", "bob", "hello"]);
    assert_eq!(sent["reply"], "written");
    let id = sent["id"].as_str().unwrap();
    assert!(a
        .read("bob")
        .iter()
        .any(|m| m["id"] == id && m["text"] == "hello"));
    let file = tmp.path().join("notes.txt");
    std::fs::write(&file, b"a few notes").unwrap();
    let sent = v(&["send", "bob", "--file", file.to_str().unwrap()]);
    assert!(a.read("bob").iter().any(|m| m["id"] == sent["id"]));
    assert!(v(&["invite"])["code"]
        .as_str()
        .unwrap()
        .starts_with("strand1"));
    assert_eq!(
        v(&["add", &c.invite(), "--name", "carol"])["contact"]["name"],
        "carol"
    );
    assert_eq!(v(&["timer", "bob", "1h"])["label"], "1 hour");
    assert_eq!(
        v(&["group", "create", "desk", "--with", "bob"])["name"],
        "desk"
    );
    assert_eq!(v(&["group", "timer", "desk", "1d"])["label"], "1 day");
    assert_eq!(v(&["group", "send", "desk", "hi"])["reply"], "written");
    for change in [
        &["group", "add", "desk", "carol"][..],
        &["group", "admin", "desk", "bob"],
        &["group", "remove", "desk", "carol"],
    ] {
        assert_eq!(v(change)["outcome"], "changed", "{change:?}");
    }
    assert_eq!(v(&["group", "leave", "desk"])["outcome"], "left");
    let relay = "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
    assert_eq!(v(&["relay", "add", relay])["address"], relay);
    assert_eq!(v(&["relay", "remove", relay])["address"], relay);
}

/// What a node logs names no contact, group or file: a journal keeps
/// it (a service's output goes there), and who a user talks to, and when,
/// is theirs. Before, every session logged "contact=… session up". With
/// `--quiet`, which `strand service install` runs, nothing that arrives
/// is printed either (no sender's name, no file's).
#[test]
fn the_node_log_names_no_contact_group_or_file() {
    let tmp = tempfile::tempdir().unwrap();
    let a = User::init(tmp.path(), "alice");
    let b = User::init(tmp.path(), "bob");
    a.ok(&["add", &b.invite(), "--name", "Quillon"]);
    b.ok(&["add", &a.invite(), "--name", "Zebedee"]);
    a.ok(&["group", "create", "Lanternclub", "--with", "Quillon"]);
    a.ok(&["group", "send", "Lanternclub", "hi all"]);
    let file = tmp.path().join("Marmalade.bin");
    std::fs::write(&file, vec![7u8; 600_000]).unwrap();
    a.ok(&["send", "Quillon", "--file", file.to_str().unwrap()]);
    let (run_b, addr_b) = b.run_also(&[], &["--quiet"]);
    let _b = Killed(run_b);
    let (run_a, _) = a.run(&[&addr_b]);
    let _a = Killed(run_a);
    eventually(
        "Bob has the group's text and the file",
        Duration::from_secs(90),
        || {
            String::from_utf8_lossy(&b.cmd(&["group", "read", "Lanternclub"]).stdout)
                .contains("hi all")
                && b.read("Zebedee").iter().any(|m| {
                    m["file"]["total"].as_u64().is_some_and(|t| t > 1)
                        && m["file"]["have"] == m["file"]["total"]
                })
        },
    );
    a.ok(&["send", "Quillon", "and a text"]);
    eventually("and a text after", Duration::from_secs(60), || {
        b.read("Zebedee").iter().any(|m| m["text"] == "and a text")
    });
    for (who, log) in [("alice", a.log()), ("bob", b.log())] {
        for name in ["Quillon", "Zebedee", "Lanternclub", "Marmalade"] {
            assert!(!log.contains(name), "{who}'s log names {name}:\n{log}");
        }
    }
    assert!(a.log().contains("session up"), "{}", a.log());
}

/// A profile whose making fails partway (here the disk fills: the
/// process may write no file past 32 KiB) leaves nothing behind, and
/// `strand init` works once there is room. Before, the half-made file
/// stayed: `init` said a profile existed, and opening it said it was
/// damaged, until the user deleted the folder by hand.
#[test]
fn a_profile_that_could_not_be_made_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let u = User {
        dir: tmp.path().join("ann"),
        pass: "ann passphrase".into(),
    };
    // As a full disk does: writes past the limit (dash's 64 blocks of 512
    // bytes) fail (SIGXFSZ ignored, so they fail with EFBIG rather than
    // killing the process).
    let out = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 64; exec \"$0\" \"$@\"")
        .arg(BIN)
        .args(["init", "--name", "ann"])
        .env("STRAND_PROFILE", &u.dir)
        .env("STRAND_PASSPHRASE", &u.pass)
        .env("STRAND_INSECURE_KDF_FOR_TESTS", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        !u.dir.join(strand_node::schema::DB_FILE).exists(),
        "a half-made profile was left"
    );
    let out = u.cmd(&["init", "--name", "ann"]);
    assert!(out.status.success(), "{out:?}");
    assert!(u.ok(&["invite"]).starts_with("strand1"));
}

/// `strand init` and `strand passphrase` check a new passphrase's
/// strength as the app does, and take a weak one only when told; a wrong
/// current passphrase changes nothing.
#[test]
fn weak_passphrases_are_refused_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let weak = User {
        dir: tmp.path().join("weak"),
        pass: "123".into(),
    };
    let out = weak.cmd(&["init", "--name", "Wes"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("too weak") && err.contains("--allow-weak"),
        "{err}"
    );
    assert!(!weak.dir.exists(), "nothing written");
    weak.ok(&["init", "--name", "Wes", "--allow-weak"]);

    let file = tmp.path().join("new");
    std::fs::write(&file, "password\n").unwrap();
    let out = weak.cmd(&[
        "passphrase",
        "--new-passphrase-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("too weak"));
    let wrong = User {
        dir: weak.dir.clone(),
        pass: "not it".into(),
    };
    std::fs::write(&file, "wes rows past the old grain mill\n").unwrap();
    let out = wrong.cmd(&[
        "passphrase",
        "--new-passphrase-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));
    weak.ok(&["contacts"]);
    weak.ok(&[
        "passphrase",
        "--new-passphrase-file",
        file.to_str().unwrap(),
    ]);
    let out = weak.cmd(&["contacts"]);
    assert_eq!(out.status.code(), Some(2), "the old passphrase is gone");
    let renewed = User {
        dir: weak.dir.clone(),
        pass: "wes rows past the old grain mill".into(),
    };
    renewed.ok(&["contacts"]);
    // A weak one, allowed.
    std::fs::write(&file, "123456\n").unwrap();
    renewed.ok(&[
        "passphrase",
        "--new-passphrase-file",
        file.to_str().unwrap(),
        "--allow-weak",
    ]);
    User {
        dir: weak.dir.clone(),
        pass: "123456".into(),
    }
    .ok(&["contacts"]);
}

/// `strand run` labels every address it listens on, LAN first with the
/// line to give another device; with only `--listen`, hole punching
/// listens on the same interface (not on every one); `strand status`
/// labels the relay transport's addresses too.
#[test]
fn run_labels_its_addresses_and_hole_punching_follows_listen() {
    let tmp = tempfile::tempdir().unwrap();
    let a = User::init(tmp.path(), "alice");
    let (child, lines) = a.run_printing(
        &[
            "run",
            "--no-mdns",
            "--no-ble",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ],
        a.command(),
        |l| l.starts_with("Another device"),
    );
    let _running = Killed(child);
    let lan = lines[0]
        .strip_prefix("LAN: ")
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(lan.starts_with("/ip4/127.0.0.1/tcp/"), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("hole punching: /ip4/127.0.0.1/tcp/")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .all(|l| !l.contains("0.0.0.0") && !l.contains("/udp/")),
        "only --listen's interface and protocol: {lines:?}"
    );
    assert_eq!(
        lines.last().unwrap(),
        &format!("Another device on this network can dial this one: strand run --peer {lan}")
    );
    let status = a.ok(&["status"]);
    assert!(status.contains("(hole punching)"), "{status}");
}

/// The words of an `ExecStart=` line as systemd reads them (double-quoted
/// arguments; `\`, `%%` and `$$` escapes).
fn exec_start_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' => {}
            '"' => {
                let mut w = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => w.extend(chars.next()),
                        '%' | '$' if chars.peek() == Some(&c) => {
                            chars.next();
                            w.push(c);
                        }
                        _ => w.push(c),
                    }
                }
                words.push(w);
            }
            other => {
                let mut w = String::from(other);
                while let Some(&c) = chars.peek() {
                    if c == ' ' {
                        break;
                    }
                    w.push(c);
                    chars.next();
                }
                words.push(w);
            }
        }
    }
    words
}

/// `strand service install` writes a user unit that systemd accepts and
/// whose command runs the node with no terminal (systemd's user manager
/// does not run here: its `ExecStart` line is run as systemd would);
/// a passphrase file others can read is refused; `remove` removes it.
#[test]
fn the_node_as_a_user_service() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let a = User::init(tmp.path(), "alice");
    let config = tmp.path().join("config");
    let pass = tmp.path().join("pass");
    std::fs::write(&pass, format!("{}\n", a.pass)).unwrap();
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let service = |args: &[&str]| {
        a.command()
            .env("XDG_CONFIG_HOME", &config)
            .env_remove("STRAND_PASSPHRASE")
            .args(["--passphrase-file", pass.to_str().unwrap(), "service"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let unit = config.join("systemd/user/strand.service");
    let out = service(&["install", "--no-start"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
    assert!(!unit.exists(), "nothing written");
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = service(&["install", "--no-start", "--", "--frobnicate"]);
    assert_eq!(out.status.code(), Some(1), "not a flag of strand run");
    let run_flags = [
        "--no-mdns",
        "--no-relay",
        "--no-ble",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
    ];
    let mut args = vec!["install", "--no-start", "--"];
    args.extend(run_flags);
    let out = service(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&unit).unwrap();
    // systemd accepts it (syntax, and an ExecStart it can run); scripts/env.sh
    // installs systemd.
    let v = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let exec = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let words = exec_start_words(exec);
    assert_eq!(
        &words[1..7],
        [
            "--profile",
            a.dir.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
            "run",
            "--quiet"
        ]
    );
    // Run as systemd would: no terminal, no passphrase in the environment.
    let mut child = Command::new(&words[0])
        .args(&words[1..])
        .env_clear()
        .env("STRAND_INSECURE_KDF_FOR_TESTS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let _running = Killed(child);
    assert!(line.starts_with("LAN: /ip4/127.0.0.1/tcp/"), "{line:?}");
    let status = service(&["status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("Installed: ") && status.contains("A node runs"),
        "{status}"
    );
    let out = service(&["remove"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!unit.exists());
}

/// A `systemctl` that only writes down what it is asked, one line a call,
/// first on the `PATH` its tests give `strand`: the service tests never
/// reach the user manager of whoever runs them.
struct FakeSystemctl {
    /// `PATH` with it first.
    path: String,
    asked: PathBuf,
}

impl FakeSystemctl {
    fn new(root: &Path) -> FakeSystemctl {
        use std::os::unix::fs::PermissionsExt;
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let asked = root.join("asked");
        let fake = bin.join("systemctl");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\n[ \"$1\" = --probe ] && exit 0\necho \"$@\" >> '{}'\n",
                asked.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        // `strand` runs it as another test's thread forks: the fork may
        // still hold it open for writing.
        runnable(&fake, "--probe");
        FakeSystemctl {
            path: format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            asked,
        }
    }

    /// What it was asked, a line a call.
    fn asked(&self) -> String {
        std::fs::read_to_string(&self.asked).unwrap_or_default()
    }
}

/// A home for service tests: its own configuration folder (where the unit
/// goes) and a [`FakeSystemctl`], under `root`.
struct ServiceHome {
    root: PathBuf,
    config: PathBuf,
    systemctl: FakeSystemctl,
}

impl ServiceHome {
    fn new(root: &Path) -> ServiceHome {
        ServiceHome {
            root: root.to_path_buf(),
            config: root.join("config"),
            systemctl: FakeSystemctl::new(root),
        }
    }

    /// `strand` as `user`, here, with no passphrase in its environment.
    fn strand(&self, user: &User, args: &[&str]) -> Output {
        user.command()
            .env("XDG_CONFIG_HOME", &self.config)
            .env("PATH", &self.systemctl.path)
            .env_remove("STRAND_PASSPHRASE")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// A file `name` holding `text`, only its owner can read.
    fn private(&self, name: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let file = self.root.join(name);
        std::fs::write(&file, text).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        file
    }

    /// `strand service install --no-start` for `user`, reading `pass`.
    fn install(&self, user: &User, pass: &Path) {
        let pass = pass.to_str().unwrap();
        let out = self.strand(
            user,
            &[
                "--passphrase-file",
                pass,
                "service",
                "install",
                "--no-start",
            ],
        );
        assert!(out.status.success(), "{}", said(&out));
    }
}

/// `strand service install` over a service that runs already (installed
/// before, maybe for another profile or with other flags) restarts it,
/// so the node runs as the new unit says. Before, `enable --now` left a
/// running service as it was, and the command said "started".
#[test]
fn installing_the_service_again_restarts_it() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let a = User::init(tmp.path(), "alice");
    let config = tmp.path().join("config");
    let pass = tmp.path().join("pass");
    std::fs::write(&pass, format!("{}\n", a.pass)).unwrap();
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let systemctl = FakeSystemctl::new(tmp.path());
    let install = |flags: &[&str]| {
        let out = a
            .command()
            .env("XDG_CONFIG_HOME", &config)
            .env("PATH", &systemctl.path)
            .env_remove("STRAND_PASSPHRASE")
            .args([
                "--passphrase-file",
                pass.to_str().unwrap(),
                "service",
                "install",
                "--",
            ])
            .args(flags)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("Enabled and started"));
    };
    install(&["--no-ble"]);
    install(&["--no-ble", "--no-mdns"]);
    let asked = systemctl.asked();
    let restarts = asked
        .lines()
        .filter(|l| *l == "--user restart strand.service")
        .count();
    assert_eq!(restarts, 2, "{asked}");
    assert!(!asked.contains("--now"), "{asked}");
    let unit = std::fs::read_to_string(config.join("systemd/user/strand.service")).unwrap();
    assert!(unit.contains("--no-mdns"), "{unit}");
}

/// `strand service install --passphrase-file FILE` checks that the
/// file's passphrase opens the profile before anything is written, as
/// `--keyring` does, and says so in the words of a normal unlock. Before,
/// a wrong one was installed (exit 0, and "Enabled and started" without
/// `--no-start`), and the service failed at every start, systemd starting
/// it again every 10 s, each time with a full Argon2id run.
#[test]
fn a_wrong_service_passphrase_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let a = User::init(tmp.path(), "alice");
    let home = ServiceHome::new(tmp.path());
    let unit = home.config.join("systemd/user/strand.service");
    let wrong = home.private("pass", "not alice's passphrase\n");
    let wrong = wrong.to_str().unwrap();
    for install in [&["install", "--no-start"][..], &["install"][..]] {
        let mut args = vec!["--passphrase-file", wrong, "service"];
        args.extend(install);
        let out = home.strand(&a, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", said(&out));
        assert!(
            said(&out).contains("wrong passphrase"),
            "{args:?}: {}",
            said(&out)
        );
        assert!(!unit.exists(), "{args:?}: nothing written");
    }
    assert_eq!(home.systemctl.asked(), "", "systemd was not asked");
    // The right one is installed.
    let right = home.private("right", &format!("{}\n", a.pass));
    home.install(&a, &right);
    assert!(unit.exists());
}

/// `strand service install` refuses a profile folder whose name a unit
/// cannot hold (not UTF-8, or with a line break), before writing
/// anything. Before, it wrote (exit 0) a unit naming the folder with
/// U+FFFD in place of its bytes, so the service failed at every start, or
/// one whose `ExecStart=` line the line break cut in two.
#[test]
fn a_profile_folder_a_unit_cannot_name_is_refused() {
    use std::os::unix::ffi::OsStringExt;
    let tmp = tempfile::tempdir().unwrap();
    let home = ServiceHome::new(tmp.path());
    let unit = home.config.join("systemd/user/strand.service");
    let cases: [(&[u8], &str); 2] = [
        (b"p\xff", "not UTF-8"),
        (b"line\nbreak", "control character"),
    ];
    for (name, why) in cases {
        let a = User {
            dir: tmp.path().join(std::ffi::OsString::from_vec(name.to_vec())),
            pass: "alice passphrase".to_owned(),
        };
        let out = a.cmd(&["init", "--name", "alice"]);
        assert!(out.status.success(), "{}", said(&out));
        let pass = home.private("pass", &format!("{}\n", a.pass));
        let out = a
            .command()
            .env("XDG_CONFIG_HOME", &home.config)
            .env("PATH", &home.systemctl.path)
            .env_remove("STRAND_PASSPHRASE")
            .arg("--profile")
            .arg(&a.dir)
            .args(["--passphrase-file", pass.to_str().unwrap()])
            .args(["service", "install", "--no-start"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{:?}: {}", a.dir, said(&out));
        assert!(said(&out).contains(why), "{:?}: {}", a.dir, said(&out));
        assert!(!unit.exists(), "{:?}: nothing written", a.dir);
    }
}

#[test]
fn notification_settings_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, _bob) = pair(tmp.path());
    let shown = alice.ok(&["notifications"]);
    assert!(shown.contains("not the text"), "{shown}");
    assert!(shown.contains("Nothing is muted"), "{shown}");

    let shown = alice.ok(&["notifications", "--text", "show", "--mute", "bob"]);
    assert!(shown.contains("who wrote and the text"), "{shown}");
    assert!(shown.contains("Muted: bob."), "{shown}");

    // Someone who is no contact, and --group alone: refused, nothing
    // changed.
    let out = alice.cmd(&["notifications", "--text", "hide", "--mute", "Mallory"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Mallory"));
    let out = alice.cmd(&["notifications", "--group"]);
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_str(&alice.ok(&["--json", "notifications"])).unwrap();
    assert_eq!(json["show_text"], true, "{json}");
    assert_eq!(json["show_names"], true, "{json}");
    assert_eq!(json["muted_contacts"][0], "bob", "{json}");

    let shown = alice.ok(&["notifications", "--unmute", "bob"]);
    assert!(shown.contains("Nothing is muted"), "{shown}");

    // Who wrote: named at first, then hidden (with the text, or alone),
    // kept, and named again.
    let shown = alice.ok(&["notifications", "--names", "hide"]);
    assert!(shown.contains("the text, not who wrote"), "{shown}");
    let shown = alice.ok(&["notifications", "--text", "hide"]);
    assert!(shown.contains("only that a message came"), "{shown}");
    let json: Value = serde_json::from_str(&alice.ok(&["--json", "notifications"])).unwrap();
    assert_eq!(json["show_names"], false, "{json}");
    let shown = alice.ok(&["notifications", "--names", "show"]);
    assert!(shown.contains("who wrote, not the text"), "{shown}");

    // A muted group is listed with the id `strand group list` shows (two
    // may share its name).
    // A group named as desk's 8 digits makes desk's listed id longer, so
    // that it still names desk alone (typed in either case).
    alice.ok(&["group", "create", "desk", "--with", "bob"]);
    let listed =
        || -> Value { serde_json::from_str(&alice.ok(&["--json", "group", "list"])).unwrap() };
    let key = listed()[0]["key"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 64);
    assert_eq!(listed()[0]["id"], key[..8]);
    alice.ok(&["group", "create", &key[..8], "--with", "bob"]);
    let all = listed();
    let desk = all
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == key.as_str())
        .unwrap();
    let id = desk["id"].as_str().unwrap().to_owned();
    assert_eq!(id, key[..10], "{all}");
    let shown = alice.ok(&["notifications", "--group", "--mute", &id.to_uppercase()]);
    assert!(
        shown.contains(&format!("Muted: desk (group {id}).")),
        "{shown}"
    );
}

/// Each side shows the conversation in its own order (a text dated
/// before what the user wrote shows when it arrived), so with more than a
/// few messages each way the demo's check must compare what the logs hold,
/// not the order shown: it failed with "the logs differ" at 20.
#[test]
fn the_demo_syncs_many_messages_each_way() {
    let out = Command::new(BIN)
        .args(["demo", "--messages", "25"])
        .env_remove("STRAND_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("OK: 51 messages in both logs"), "{said}");
}

/// Progress of files: sealing one to send and saving one show progress on
/// stderr (plain lines, stderr not being a terminal here; nothing with
/// --json), and `strand run` shows one arriving and says when it is all
/// there and how to save it.
#[test]
fn files_show_their_progress() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    let data: Vec<u8> = (0..2_500_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let path = tmp.path().join("payload.bin");
    std::fs::write(&path, &data).unwrap();
    let sent = a.cmd(&["send", "bob", "--file", path.to_str().unwrap()]);
    assert!(sent.status.success());
    let said = String::from_utf8_lossy(&sent.stderr);
    assert!(said.contains("Sealing payload.bin: 0%"), "{said}");
    assert!(
        said.contains("Sealing payload.bin: 100% (2.4 of 2.4 MiB)"),
        "{said}"
    );
    let quiet = a.cmd(&["--json", "send", "bob", "--file", path.to_str().unwrap()]);
    assert!(quiet.status.success());
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains('%'));

    let (a_run, a_addr) = a.run(&[]);
    let _a_run = Killed(a_run);
    let mut b_run = b
        .command()
        .args(run_args(&[&a_addr]))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(b.dir.with_extension("log")).unwrap())
        .spawn()
        .unwrap();
    let out = BufReader::new(b_run.stdout.take().unwrap());
    let _b_run = Killed(b_run);
    let printed = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let lines = printed.clone();
    std::thread::spawn(move || {
        for l in out.lines().map_while(|l| l.ok()) {
            lines.lock().unwrap().push(l);
        }
    });
    let received = || {
        printed
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("Received payload.bin from alice (2.4 MiB): strand save "))
            .count()
    };
    let start = Instant::now();
    while received() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "not both received: {:?}\n{}",
            printed.lock().unwrap(),
            b.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = b.log();
    assert!(log.contains("payload.bin from alice: 100%"), "{log}");

    // Saving one shows its progress too.
    let line = printed
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.starts_with("Received"))
        .cloned()
        .unwrap();
    let id = line
        .split("strand save ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let out_dir = tmp.path().join("out");
    let saved = b.cmd(&["save", id, out_dir.to_str().unwrap()]);
    assert!(saved.status.success(), "{saved:?}");
    assert!(String::from_utf8_lossy(&saved.stderr).contains("Saving: 100%"));
    assert_eq!(std::fs::read(out_dir.join("payload.bin")).unwrap(), data);
}

/// A command showing progress ends when its task does, whatever else the
/// node says meanwhile. Before, a last report read before the answer was
/// taken as still to come: the command waited for the node's events to
/// stop for half a second, and a busy node (renames here; texts or a file
/// arriving) kept it waiting for as long as it stayed busy.
#[test]
fn a_command_showing_progress_ends_while_the_node_is_busy() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _b) = pair(tmp.path());
    let c = User::init(tmp.path(), "carol");
    a.ok(&["add", &c.invite(), "--name", "carol"]);
    let path = tmp.path().join("small.bin");
    std::fs::write(&path, vec![7u8; 300_000]).unwrap();
    let (a_run, _) = a.run(&[]);
    let _a_run = Killed(a_run);
    // The node busy: Carol renamed and back until the sends are done
    // (or 3,000 times: a send that waits for the node to go quiet waits
    // for that).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let renamer = {
        let u = User {
            dir: a.dir.clone(),
            pass: a.pass.clone(),
        };
        let stop = stop.clone();
        std::thread::spawn(move || {
            for i in 0..3000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let (from, to) = if i % 2 == 0 {
                    ("carol", "carla")
                } else {
                    ("carla", "carol")
                };
                u.ok(&["rename-contact", from, to]);
            }
        })
    };
    for _ in 0..5 {
        let sent = a.cmd(&["send", "bob", "--file", path.to_str().unwrap()]);
        assert!(sent.status.success(), "{sent:?}");
        let said = String::from_utf8_lossy(&sent.stderr);
        assert!(said.contains("Sealing small.bin: 100%"), "{said}");
        assert!(
            !renamer.is_finished(),
            "the send waited until the node went quiet"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    renamer.join().unwrap();
}

/// A private session bus with a real desktop keyring (GNOME Keyring's
/// Secret Service) on it, unlocked; both go when dropped. Its `strand`
/// commands reach it, keep their units in a configuration folder of the
/// test's own, and ask a [`FakeSystemctl`].
struct Keyring {
    // The keyring daemon leaves with its bus.
    bus: Bus,
    /// `XDG_CONFIG_HOME` of the commands: the unit is written under it.
    config: PathBuf,
    systemctl: FakeSystemctl,
}

impl Keyring {
    fn start(root: &Path) -> Keyring {
        let home = root.join("keyring-home");
        let run = root.join("keyring-run");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&run).unwrap();
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let env = |c: &mut Command| {
            c.env("HOME", &home)
                .env("XDG_RUNTIME_DIR", &run)
                .env("XDG_DATA_HOME", home.join("data"))
                .env("XDG_CONFIG_HOME", home.join("config"));
        };
        let bus = Bus::start_with(env);
        let address = bus.address.clone();
        // Makes and unlocks the login keyring with this password (from
        // stdin), as a desktop login does.
        let mut unlock = Command::new("gnome-keyring-daemon");
        env(&mut unlock);
        let mut unlock = unlock
            .args(["--unlock", "--components=secrets"])
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "gnome-keyring-daemon (Debian package gnome-keyring; scripts/env.sh installs it)",
            );
        std::io::Write::write_all(unlock.stdin.as_mut().unwrap(), b"login keyring password")
            .unwrap();
        drop(unlock.stdin.take());
        assert!(unlock.wait().unwrap().success());
        Keyring {
            bus,
            config: root.join("config"),
            systemctl: FakeSystemctl::new(root),
        }
    }

    /// The unit `strand service install` writes.
    fn unit(&self) -> PathBuf {
        self.config.join("systemd/user/strand.service")
    }

    /// `strand` for `user` with this keyring, its configuration folder and
    /// systemctl, no terminal, and `pass` (if any) as STRAND_PASSPHRASE.
    fn command(&self, user: &User, pass: Option<&str>) -> Command {
        let mut c = user.command();
        c.env("DBUS_SESSION_BUS_ADDRESS", &self.bus.address)
            .env("XDG_CONFIG_HOME", &self.config)
            .env("PATH", &self.systemctl.path)
            .env_remove("STRAND_PASSPHRASE")
            .stdin(Stdio::null());
        if let Some(p) = pass {
            c.env("STRAND_PASSPHRASE", p);
        }
        c
    }

    /// `strand ARGS`, as [`Keyring::command`].
    fn strand(&self, user: &User, args: &[&str], pass: Option<&str>) -> Output {
        self.command(user, pass).args(args).output().unwrap()
    }
}

/// What a command printed, both streams.
fn said(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `strand service install --keyring` keeps the passphrase in the desktop
/// keyring (a real GNOME Keyring on a private bus), the unit reads it from
/// there, a wrong passphrase is refused before anything is kept, and
/// `strand service remove` takes it out again.
#[test]
fn the_service_passphrase_in_the_desktop_keyring() {
    let tmp = tempfile::tempdir().unwrap();
    let keyring = Keyring::start(tmp.path());
    let alice = User::init(tmp.path(), "alice");
    let strand = |args: &[&str], pass: Option<&str>| keyring.strand(&alice, args, pass);

    // Nothing kept yet.
    let out = strand(&["--passphrase-keyring", "status"], None);
    assert!(!out.status.success());
    assert!(said(&out).contains("holds no passphrase"), "{}", said(&out));

    // A wrong passphrase: refused, nothing kept, no unit.
    let out = strand(
        &["service", "install", "--keyring", "--no-start"],
        Some("wrong"),
    );
    assert!(!out.status.success(), "{}", said(&out));
    let out = strand(&["--passphrase-keyring", "status"], None);
    assert!(said(&out).contains("holds no passphrase"), "{}", said(&out));
    let unit = keyring.unit();
    assert!(!unit.exists());

    let out = strand(
        &["service", "install", "--keyring", "--no-start"],
        Some(&alice.pass),
    );
    assert!(out.status.success(), "{}", said(&out));
    assert!(said(&out).contains("Kept the passphrase in the desktop keyring"));
    let text = std::fs::read_to_string(&unit).unwrap();
    let exec = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    assert!(exec.contains("\"--passphrase-keyring\" \"run\""), "{exec}");
    assert!(!exec.contains("--passphrase-file"), "{exec}");

    // What the unit runs opens the profile with the kept passphrase.
    let out = strand(&["--passphrase-keyring", "status"], None);
    assert!(out.status.success(), "{}", said(&out));
    assert!(said(&out).contains("alice"), "{}", said(&out));

    // Both at once is a usage error.
    let file = tmp.path().join("pass");
    std::fs::write(&file, &alice.pass).unwrap();
    let out = strand(
        &[
            "--passphrase-file",
            file.to_str().unwrap(),
            "service",
            "install",
            "--keyring",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));

    let out = strand(&["service", "remove"], None);
    assert!(
        said(&out).contains("Removed the passphrase from the desktop keyring"),
        "{}",
        said(&out)
    );
    let out = strand(&["--passphrase-keyring", "status"], None);
    assert!(said(&out).contains("holds no passphrase"), "{}", said(&out));

    // No keyring at all: says so.
    let out = alice
        .command()
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .env_remove("STRAND_PASSPHRASE")
        .args(["--passphrase-keyring", "status"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        said(&out).contains("no desktop keyring answers"),
        "{}",
        said(&out)
    );
}

/// A service installed over one that read another profile's passphrase
/// from the desktop keyring (or that read this profile's from there, now
/// from a file) takes that passphrase out: nothing reads it any more, and
/// `service remove` would not find it. Before, it stayed in the keyring
/// for good.
#[test]
fn a_service_installed_over_another_takes_its_keyring_passphrase_out() {
    let tmp = tempfile::tempdir().unwrap();
    let keyring = Keyring::start(tmp.path());
    let alice = User::init(tmp.path(), "alice");
    let work = User::init(tmp.path(), "work");
    let kept = |user: &User| {
        let out = keyring.strand(user, &["--passphrase-keyring", "status"], None);
        out.status.success()
    };
    // `strand [GLOBAL] service install --no-start [FLAGS]` as `user`.
    let install = |user: &User, global: &[&str], flags: &[&str]| {
        let mut all = global.to_vec();
        all.extend(["service", "install", "--no-start"]);
        all.extend(flags);
        let out = keyring.strand(user, &all, Some(&user.pass));
        assert!(out.status.success(), "{}", said(&out));
        said(&out)
    };
    install(&alice, &[], &["--keyring"]);
    assert!(kept(&alice));

    // The same profile again, through the keyring: kept.
    install(&alice, &[], &["--keyring"]);
    assert!(kept(&alice));

    // Another profile's service: Alice's passphrase goes.
    let said_now = install(&work, &[], &["--keyring"]);
    assert!(
        said_now.contains("which the service ran before"),
        "{said_now}"
    );
    assert!(!kept(&alice), "the replaced service's passphrase stayed");
    assert!(kept(&work));

    // The same profile from a file: its keyring copy goes.
    let file = tmp.path().join("work-pass");
    std::fs::write(&file, &work.pass).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let said_now = install(&work, &["--passphrase-file", file.to_str().unwrap()], &[]);
    assert!(
        said_now.contains("which the service ran before"),
        "{said_now}"
    );
    assert!(!kept(&work), "a copy no service reads stayed");
}

/// `strand service install --keyring` checks the passphrase while a node
/// holds the profile too (against the file's header, which the node's
/// lock does not keep from being read): a wrong one is refused in the
/// words of a normal unlock, and nothing is kept in the keyring or
/// written; the right one is kept.
#[test]
fn the_service_keyring_passphrase_is_checked_while_a_node_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let keyring = Keyring::start(tmp.path());
    let alice = User::init(tmp.path(), "alice");
    let strand = |args: &[&str], pass: Option<&str>| keyring.strand(&alice, args, pass);
    let unit = keyring.unit();
    let install = ["service", "install", "--keyring", "--no-start"];

    // A wrong passphrase while a node holds the profile: refused.
    let (run, _) = alice.run(&[]);
    let run = Killed(run);
    assert!(strand_node::Profile::in_use(&alice.dir));
    let out = strand(&install, Some("wrong"));
    assert_eq!(out.status.code(), Some(2), "{}", said(&out));
    assert!(said(&out).contains("wrong passphrase"), "{}", said(&out));
    assert!(
        !said(&out).contains("Kept the passphrase"),
        "{}",
        said(&out)
    );
    assert!(!unit.exists());
    // Nothing kept: with no node to answer, the unit's command finds no
    // passphrase in the keyring.
    drop(run);
    let out = strand(&["--passphrase-keyring", "status"], None);
    assert!(!out.status.success(), "{}", said(&out));
    assert!(said(&out).contains("holds no passphrase"), "{}", said(&out));

    // The right one while a node holds the profile: kept.
    let (run, _) = alice.run(&[]);
    let run = Killed(run);
    let out = strand(&install, Some(&alice.pass));
    assert!(out.status.success(), "{}", said(&out));
    assert!(said(&out).contains("Kept the passphrase in the desktop keyring"));
    assert!(unit.exists());
    drop(run);
    let out = strand(&["--passphrase-keyring", "status"], None);
    assert!(out.status.success(), "{}", said(&out));
    assert!(said(&out).contains("alice"), "{}", said(&out));
}

/// `strand service install --keyring` whose unit cannot be written (a
/// folder stands where it goes) fails and takes the passphrase it kept
/// out of the desktop keyring again. Before, the passphrase stayed there:
/// nothing read it, and `service remove`, finding no unit, could not
/// find it.
#[test]
fn a_service_whose_unit_cannot_be_written_keeps_no_passphrase() {
    let tmp = tempfile::tempdir().unwrap();
    let keyring = Keyring::start(tmp.path());
    let alice = User::init(tmp.path(), "alice");
    std::fs::create_dir_all(keyring.unit()).unwrap();
    let out = keyring.strand(
        &alice,
        &["service", "install", "--keyring", "--no-start"],
        Some(&alice.pass),
    );
    assert!(!out.status.success(), "{}", said(&out));
    assert!(said(&out).contains("strand.service"), "{}", said(&out));
    assert!(
        !said(&out).contains("Kept the passphrase"),
        "{}",
        said(&out)
    );
    let out = keyring.strand(&alice, &["--passphrase-keyring", "status"], None);
    assert!(
        said(&out).contains("holds no passphrase"),
        "the passphrase stayed in the keyring: {}",
        said(&out)
    );
}

/// Passphrases for the passphrase-change tests: strong enough to pass
/// the strength check.
const NEW_PASS: &str = "a heron stands where the canal bends";
const NEWER_PASS: &str = "the ferry waits for the last bicycle";

/// A file holding `pass` on its first line, for `--new-passphrase-file`.
fn pass_file(root: &Path, name: &str, pass: &str) -> PathBuf {
    let file = root.join(name);
    std::fs::write(&file, format!("{pass}\n")).unwrap();
    file
}

/// `strand passphrase` replaces the passphrase the service keeps in the
/// desktop keyring, so the service opens the profile at its next start.
/// Before, the keyring kept the old one: the service failed at every
/// start, and systemd started it again every 10 s for ever. With no
/// keyring to answer, the passphrase changes all the same and the
/// command says the service's copy is stale and how to fix it; a later
/// change, with the keyring there, replaces that stale copy.
#[test]
fn a_passphrase_change_replaces_the_service_passphrase_in_the_keyring() {
    let tmp = tempfile::tempdir().unwrap();
    let keyring = Keyring::start(tmp.path());
    let alice = User::init(tmp.path(), "alice");
    let out = keyring.strand(
        &alice,
        &["service", "install", "--keyring", "--no-start"],
        Some(&alice.pass),
    );
    assert!(out.status.success(), "{}", said(&out));
    let new = pass_file(tmp.path(), "new", NEW_PASS);
    let newer = pass_file(tmp.path(), "newer", NEWER_PASS);

    // No keyring answers: changed, and the stale copy said.
    let out = keyring
        .command(&alice, Some(&alice.pass))
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .args(["passphrase", "--new-passphrase-file", new.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", said(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("was not changed"), "{stderr}");
    assert!(
        stderr.contains("strand service install --keyring"),
        "{stderr}"
    );
    assert!(said(&out).contains("Passphrase changed"), "{}", said(&out));
    let out = keyring.strand(&alice, &["status"], Some(NEW_PASS));
    assert!(
        out.status.success(),
        "the new one is in force: {}",
        said(&out)
    );
    let out = keyring.strand(&alice, &["--passphrase-keyring", "status"], None);
    assert!(!out.status.success(), "the keyring kept the old one");

    // The keyring answers: its copy is the new one, and the service's
    // command opens the profile with it.
    let out = keyring.strand(
        &alice,
        &[
            "passphrase",
            "--new-passphrase-file",
            newer.to_str().unwrap(),
        ],
        Some(NEW_PASS),
    );
    assert!(out.status.success(), "{}", said(&out));
    assert!(
        said(&out).contains("The service's passphrase in the desktop keyring is the new one too"),
        "{}",
        said(&out)
    );
    let out = keyring.strand(&alice, &["--passphrase-keyring", "status"], None);
    assert!(out.status.success(), "{}", said(&out));
    assert!(said(&out).contains("alice"), "{}", said(&out));
}

/// `strand service remove` and `status`, given another profile (or none,
/// the default one), act on the profile the installed unit runs. Before,
/// they took the profile they were given: `remove` left the keyring item
/// of the service's profile behind, and `status` said whether a node ran
/// on the other profile.
#[test]
fn service_remove_and_status_follow_the_profile_the_unit_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let keyring = Keyring::start(tmp.path());
    let alice = User::init(tmp.path(), "alice");
    let out = keyring.strand(
        &alice,
        &["service", "install", "--keyring", "--no-start"],
        Some(&alice.pass),
    );
    assert!(out.status.success(), "{}", said(&out));
    // The same commands, asked about another profile.
    let elsewhere = |args: &[&str]| {
        keyring
            .command(&alice, None)
            .env("STRAND_PROFILE", tmp.path().join("bob"))
            .args(args)
            .output()
            .unwrap()
    };

    let (run, _) = alice.run(&[]);
    let run = Killed(run);
    let out = elsewhere(&["--json", "service", "status"]);
    assert!(out.status.success(), "{}", said(&out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["installed"], true, "{status}");
    assert_eq!(status["profile"], alice.dir.to_str().unwrap(), "{status}");
    assert_eq!(status["node_running"], true, "{status}");
    drop(run);

    let out = elsewhere(&["service", "remove"]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(
        said(&out).contains("Removed the passphrase from the desktop keyring"),
        "{}",
        said(&out)
    );
    assert!(!keyring.unit().exists());
    let out = keyring.strand(&alice, &["--passphrase-keyring", "status"], None);
    assert!(said(&out).contains("holds no passphrase"), "{}", said(&out));

    // None installed: both say so.
    let out = elsewhere(&["service", "remove"]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(
        said(&out).contains("No Strand service is installed"),
        "{}",
        said(&out)
    );
    let out = elsewhere(&["service", "status"]);
    assert!(said(&out).contains("Not installed"), "{}", said(&out));
}

/// `strand passphrase` rewrites the passphrase file the service reads
/// (the unit's `--passphrase-file`) when its first line is the old
/// passphrase: at once (a new file renamed over it), as private as it
/// was, its target if it is a link (the link stays), and any lines after
/// the first kept. Before, the file kept the old passphrase and the
/// service failed at every start. A file that holds something else is
/// left as it is and the command says so; another profile's change does
/// not touch it.
#[test]
fn a_passphrase_change_rewrites_the_service_passphrase_file() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let alice = User::init(tmp.path(), "alice");
    let home = ServiceHome::new(tmp.path());
    let strand = |user: &User, args: &[&str]| home.strand(user, args);
    // The service's file, through a link.
    let secrets = tmp.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let real = secrets.join("passphrase");
    std::fs::write(&real, format!("{}\nkept\n", alice.pass)).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = tmp.path().join("pass");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let link = link.to_str().unwrap();
    let out = strand(
        &alice,
        &[
            "--passphrase-file",
            link,
            "service",
            "install",
            "--no-start",
        ],
    );
    assert!(out.status.success(), "{}", said(&out));

    let new = pass_file(tmp.path(), "new", NEW_PASS);
    let new = new.to_str().unwrap();
    let out = strand(
        &alice,
        &[
            "--passphrase-file",
            link,
            "passphrase",
            "--new-passphrase-file",
            new,
        ],
    );
    assert!(out.status.success(), "{}", said(&out));
    assert!(
        said(&out).contains("Wrote the new passphrase to"),
        "{}",
        said(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&real).unwrap(),
        format!("{NEW_PASS}\nkept\n")
    );
    let mode = std::fs::metadata(&real).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let linked = std::fs::symlink_metadata(tmp.path().join("pass")).unwrap();
    assert!(linked.file_type().is_symlink());
    let leftovers: Vec<_> = std::fs::read_dir(&secrets).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file stays");
    // What the unit runs opens the profile.
    let out = strand(&alice, &["--passphrase-file", link, "status"]);
    assert!(out.status.success(), "{}", said(&out));

    // Another profile's change leaves it be.
    let bob = User::init(tmp.path(), "bob");
    let bob_pass = pass_file(tmp.path(), "bob-pass", &bob.pass);
    let out = strand(
        &bob,
        &[
            "--passphrase-file",
            bob_pass.to_str().unwrap(),
            "passphrase",
            "--new-passphrase-file",
            new,
        ],
    );
    assert!(out.status.success(), "{}", said(&out));
    assert!(!said(&out).contains("service"), "{}", said(&out));
    assert_eq!(
        std::fs::read_to_string(&real).unwrap(),
        format!("{NEW_PASS}\nkept\n")
    );

    // A file holding something else: left as it is, and said; the
    // passphrase changed all the same.
    std::fs::write(&real, "something else\n").unwrap();
    let newer = pass_file(tmp.path(), "newer", NEWER_PASS);
    let out = strand(
        &alice,
        &[
            "--passphrase-file",
            new,
            "passphrase",
            "--new-passphrase-file",
            newer.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", said(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("holds neither the old passphrase nor the new one")
            && stderr.contains("put the new passphrase on the first line of"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&real).unwrap(), "something else\n");
    let out = strand(
        &alice,
        &["--passphrase-file", newer.to_str().unwrap(), "status"],
    );
    assert!(out.status.success(), "{}", said(&out));
}

/// `strand wipe` of the profile the user service runs removes the
/// service with it: the passphrase file the unit reads (overwritten, then
/// deleted) and the unit, and systemd is asked to disable the service and
/// stop it. Before, the wipe left both: the passphrase opened any copy of
/// the profile that outlived the wipe (a backup, a snapshot), and the unit
/// named the profile and would start a node on it. A file that holds more
/// than the passphrase, reached through a link, loses its first line
/// only, and the link stays; a wipe of another profile leaves the service
/// as it is.
#[test]
fn a_wipe_removes_the_service_passphrase_file_and_unit() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let home = ServiceHome::new(tmp.path());
    let unit = home.config.join("systemd/user/strand.service");
    let systemctl = &home.systemctl;
    let strand = |user: &User, args: &[&str]| home.strand(user, args);
    let private = |name: &str, text: &str| home.private(name, text);
    let install = |user: &User, pass: &Path| home.install(user, pass);
    let alice = User::init(tmp.path(), "alice");
    let bob = User::init(tmp.path(), "bob");
    let alice_pass = private("alice-pass", &format!("{}\n", alice.pass));
    install(&alice, alice_pass.as_path());
    let text = std::fs::read_to_string(&unit).unwrap();

    // Another profile's wipe: the service is left as it is.
    let out = strand(&bob, &["wipe", "--yes"]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(!bob.dir.exists());
    assert_eq!(std::fs::read_to_string(&unit).unwrap(), text);
    assert_eq!(
        std::fs::read_to_string(&alice_pass).unwrap(),
        format!("{}\n", alice.pass)
    );
    assert_eq!(systemctl.asked(), "", "systemd is not asked");

    // The service's profile: the passphrase file and the unit go.
    let out = strand(&alice, &["wipe", "--yes"]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(!alice.dir.exists());
    assert!(!alice_pass.exists(), "{}", said(&out));
    assert!(!unit.exists(), "{}", said(&out));
    let asked = systemctl.asked();
    assert!(
        asked
            .lines()
            .any(|l| l == "--user disable --now strand.service"),
        "{asked}"
    );
    assert!(
        asked.lines().any(|l| l == "--user daemon-reload"),
        "{asked}"
    );
    assert!(
        said(&out).contains("Overwrote and removed the service's passphrase file"),
        "{}",
        said(&out)
    );
    assert!(
        !said(&out).contains("Left after the wipe"),
        "{}",
        said(&out)
    );

    // A file holding more than the passphrase, through a link: its first
    // line goes; the rest, its mode and the link stay.
    let carol = User::init(tmp.path(), "carol");
    let shared = private("secrets", &format!("{}\nsomething else\n", carol.pass));
    let link = tmp.path().join("carol-pass");
    std::os::unix::fs::symlink(&shared, &link).unwrap();
    install(&carol, link.as_path());
    let out = strand(&carol, &["wipe", "--yes"]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(!unit.exists(), "{}", said(&out));
    assert_eq!(
        std::fs::read_to_string(&shared).unwrap(),
        "something else\n"
    );
    let mode = std::fs::metadata(&shared).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let linked = std::fs::symlink_metadata(&link).unwrap();
    assert!(linked.file_type().is_symlink());
    let temporary = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".strand-passphrase-")
        });
    assert!(!temporary, "no temporary file stays");
}

/// A wipe acts only on what it can tell: a service that ran the profile
/// through a link to its folder is still found (it is looked for before
/// the folder goes); a unit a drop-in changes is left whole, with a
/// warning, since the drop-in may run another profile; and a masked
/// unit is no Strand service, so it stays. Before, the link's service
/// kept its passphrase with nothing said, the drop-in's unit could lose
/// another profile's passphrase, and the mask was deleted.
#[test]
fn a_wipe_removes_only_what_it_can_tell_is_the_profile_s_service() {
    let tmp = tempfile::tempdir().unwrap();
    let home = ServiceHome::new(tmp.path());
    let units = home.config.join("systemd/user");
    let unit = units.join("strand.service");
    let systemctl = &home.systemctl;
    let strand = |user: &User, args: &[&str]| home.strand(user, args);
    let private = |name: &str, text: &str| home.private(name, text);
    let install = |user: &User, pass: &Path| home.install(user, pass);

    // The unit names a link to the profile's folder; the wipe names the
    // folder itself.
    let alice = User::init(tmp.path(), "alice");
    let link = tmp.path().join("alice-link");
    std::os::unix::fs::symlink(&alice.dir, &link).unwrap();
    let through_link = User {
        dir: link.clone(),
        pass: alice.pass.clone(),
    };
    let alice_pass = private("alice-pass", &format!("{}\n", alice.pass));
    install(&through_link, &alice_pass);
    let out = strand(&alice, &["wipe", "--yes"]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(!alice.dir.exists());
    assert!(!alice_pass.exists(), "{}", said(&out));
    assert!(!unit.exists(), "{}", said(&out));

    // A drop-in may run another profile: nothing is touched, and the
    // wipe says what may be left.
    let bob = User::init(tmp.path(), "bob");
    let bob_pass = private("bob-pass", &format!("{}\n", bob.pass));
    install(&bob, &bob_pass);
    let text = std::fs::read_to_string(&unit).unwrap();
    std::fs::create_dir_all(units.join("strand.service.d")).unwrap();
    std::fs::write(
        units.join("strand.service.d/override.conf"),
        "[Service]\nEnvironment=STRAND_PROFILE=/somewhere/else\n",
    )
    .unwrap();
    let asked = systemctl.asked();
    let out = strand(&bob, &["wipe", "--yes"]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(!bob.dir.exists());
    assert_eq!(std::fs::read_to_string(&unit).unwrap(), text);
    assert_eq!(
        std::fs::read_to_string(&bob_pass).unwrap(),
        format!("{}\n", bob.pass)
    );
    assert_eq!(systemctl.asked(), asked, "systemd is not asked");
    assert!(said(&out).contains("cannot be told"), "{}", said(&out));
    std::fs::remove_dir_all(units.join("strand.service.d")).unwrap();

    // A masked unit is no Strand service: neither a wipe nor `service
    // remove` deletes the mask.
    std::fs::remove_file(&unit).unwrap();
    std::os::unix::fs::symlink("/dev/null", &unit).unwrap();
    let carol = User::init(tmp.path(), "carol");
    let out = strand(&carol, &["wipe", "--yes"]);
    assert!(out.status.success(), "{}", said(&out));
    let out = strand(&carol, &["service", "remove"]);
    assert!(out.status.success(), "{}", said(&out));
    let masked = std::fs::symlink_metadata(&unit).unwrap();
    assert!(masked.file_type().is_symlink(), "{}", said(&out));
    assert_eq!(systemctl.asked(), asked, "systemd is not asked");
}

/// `strand wipe` of the profile the user service runs with
/// `--passphrase-keyring` takes its passphrase out of the desktop keyring
/// (a real GNOME Keyring on a private bus), removes the unit, and asks
/// systemd to disable the service and stop it. Before, the item stayed:
/// it opened any copy of the profile that outlived the wipe (here, a new
/// profile in the same folder with the same passphrase). A wipe of
/// another profile touches neither the service nor its item.
#[test]
fn a_wipe_removes_the_service_passphrase_from_the_keyring() {
    let tmp = tempfile::tempdir().unwrap();
    let keyring = Keyring::start(tmp.path());
    let alice = User::init(tmp.path(), "alice");
    let bob = User::init(tmp.path(), "bob");
    let out = keyring.strand(
        &alice,
        &["service", "install", "--keyring", "--no-start"],
        Some(&alice.pass),
    );
    assert!(out.status.success(), "{}", said(&out));
    let unit = keyring.unit();
    let text = std::fs::read_to_string(&unit).unwrap();

    // Another profile's wipe: nothing of the service is touched.
    let out = keyring.strand(&bob, &["wipe", "--yes"], None);
    assert!(out.status.success(), "{}", said(&out));
    assert!(!bob.dir.exists());
    assert_eq!(std::fs::read_to_string(&unit).unwrap(), text);
    assert_eq!(keyring.systemctl.asked(), "", "systemd is not asked");
    let out = keyring.strand(&alice, &["--passphrase-keyring", "status"], None);
    assert!(out.status.success(), "the item stays: {}", said(&out));

    // The service's profile: the item and the unit go.
    let out = keyring.strand(&alice, &["wipe", "--yes"], None);
    assert!(out.status.success(), "{}", said(&out));
    assert!(
        said(&out).contains("Removed the service's passphrase from the desktop keyring"),
        "{}",
        said(&out)
    );
    assert!(!alice.dir.exists());
    assert!(!unit.exists(), "{}", said(&out));
    let asked = keyring.systemctl.asked();
    assert!(
        asked
            .lines()
            .any(|l| l == "--user disable --now strand.service"),
        "{asked}"
    );
    // A profile made again in that folder, with the same passphrase: the
    // keyring holds nothing for it.
    let alice = User::init(tmp.path(), "alice");
    let out = keyring.strand(&alice, &["--passphrase-keyring", "status"], None);
    assert!(!out.status.success(), "the item outlived the wipe");
    assert!(said(&out).contains("holds no passphrase"), "{}", said(&out));
}

/// `strand ARGS` for `user`, killed if it has not finished within `within`
/// (a command stuck on a node that does not answer fails the test rather
/// than hanging it). `None` if it was killed.
fn output_within(user: &User, args: &[&str], within: Duration) -> Option<Output> {
    let mut child = user
        .command()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(child.wait_with_output().unwrap())
}

/// A node out of file handles keeps running: its control socket logs the
/// failed accepts and accepts again once handles are free, and `strand
/// status` reaches it. (Before, the first failed accept ended the control
/// socket, and `strand run` stopped with "the control socket failed".)
/// Once running, the node is left `SPARE` file handles more than it has
/// open (its limit lowered with `prlimit`), and the test holds more
/// connections than that open on its socket, idle: fewer than the
/// control socket serves at once (`MAX_CONTROL_CONNECTIONS`), past which
/// it would answer and close them rather than run out. A Unix socket's
/// `connect` does not fail when the server is out of handles (the
/// connection waits in the backlog), so the test opens a fixed number,
/// well under the backlog, rather than until one fails.
#[test]
fn a_node_out_of_file_handles_keeps_running() {
    const SPARE: usize = 16;
    const HELD: usize = SPARE + 32;
    const _: () = assert!(HELD < strand_node::limits::MAX_CONTROL_CONNECTIONS);
    let tmp = tempfile::tempdir().unwrap();
    let a = User::init(tmp.path(), "alice");
    let (run, _) = a.run_also(&[], &["--no-ble"]);
    let mut run = Killed(run);
    let pid = run.0.id();
    let socket = a.dir.join("control.sock");
    eventually("the control socket", Duration::from_secs(20), || {
        socket.exists()
    });
    assert!(
        output_within(&a, &["status"], Duration::from_secs(20)).is_some_and(|o| o.status.success())
    );
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let limit = (open + SPARE) as libc::rlim_t;
    let lowered = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: a system call that lowers the file handle limit of the
    // node, a child process of this user's; it reads `lowered` and writes
    // nothing here.
    let set = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &lowered,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(set, 0, "prlimit: {}", std::io::Error::last_os_error());
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or_default()
        .to_owned();
    assert_eq!(nofile, limit.to_string(), "{limits}");

    // More idle connections than the node has handles left.
    let held: Vec<std::os::unix::net::UnixStream> = (0..HELD)
        .map(|_| std::os::unix::net::UnixStream::connect(&socket).unwrap())
        .collect();
    eventually(
        "the node out of file handles",
        Duration::from_secs(30),
        || a.log().contains("could not accept a connection") || run.0.try_wait().unwrap().is_some(),
    );
    assert!(
        run.0.try_wait().unwrap().is_none(),
        "the node stopped: {}",
        a.log()
    );
    assert!(a.log().contains("Too many open files"), "{}", a.log());

    // Handles free again: the node answers, and still runs.
    drop(held);
    eventually(
        "`strand status` answered by the node",
        Duration::from_secs(60),
        || {
            output_within(&a, &["status"], Duration::from_secs(10))
                .is_some_and(|o| o.status.success())
        },
    );
    assert!(
        run.0.try_wait().unwrap().is_none(),
        "the node stopped: {}",
        a.log()
    );
    assert!(strand_node::Profile::in_use(&a.dir));
}

/// Logind on a private bus that stands in for the system bus: the test
/// says what logind would.
struct Logind(zbus::blocking::Connection);

impl Logind {
    fn on(bus: &Bus) -> Logind {
        let c = zbus::blocking::connection::Builder::address(bus.address.as_str())
            .unwrap()
            .name("org.freedesktop.login1")
            .unwrap()
            .build()
            .unwrap();
        Logind(c)
    }

    /// What logind says before the system sleeps (`true`) and after it
    /// wakes (`false`).
    fn prepare_for_sleep(&self, going: bool) {
        self.prepare_for_sleep_saying(&going);
    }

    /// The same signal with any body.
    fn prepare_for_sleep_saying<B>(&self, body: &B)
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        self.0
            .emit_signal(
                None::<()>,
                "/org/freedesktop/login1",
                "org.freedesktop.login1.Manager",
                "PrepareForSleep",
                body,
            )
            .unwrap();
    }
}

/// A node whose system sleeps: logind's `PrepareForSleep` on the system bus
/// (a private bus here). On waking it closes the links it had (their far
/// ends may be gone), and the contact is linked again and synced with at
/// once; nothing is lost or doubled.
#[test]
fn a_node_renews_its_links_when_the_system_wakes() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    let bus = Bus::start();
    let (b_run, b_addr) = b.run(&[]);
    let _b_run = Killed(b_run);
    let mut command = a.command();
    command
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .env("STRAND_LOG", "info");
    let (a_run, _) = a.run_with(&run_args(&[&b_addr]), command);
    let _a_run = Killed(a_run);
    a.ok(&["send", "bob", "before the sleep"]);
    eventually(
        "delivered before the sleep",
        Duration::from_secs(60),
        || b.read("alice").len() == 1,
    );
    // The LAN's peer id now: waking takes a new one.
    let lan_id = || {
        let v: Value = serde_json::from_str(&a.ok(&["--json", "status"])).unwrap();
        v["transports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["kind"] == "LAN")
            .and_then(|t| t["ephemeral_id"].as_str())
            .map(str::to_owned)
            .expect("a LAN id")
    };
    let before = lan_id();
    let logind = Logind::on(&bus);
    // The node subscribes once it runs; say it until it is heard.
    logind.prepare_for_sleep(true);
    let woke = |n: u64| {
        let s = a.ok(&["status"]);
        s.contains(&format!("woke from sleep {n} time"))
    };
    eventually("the node hears the wake", Duration::from_secs(30), || {
        logind.prepare_for_sleep(false);
        std::thread::sleep(Duration::from_millis(300));
        woke(1) || woke(2) || woke(3)
    });
    assert!(a.log().contains("woke from sleep: closing"), "{}", a.log());
    // Another LAN identity: the one from before the sleep (whose
    // rotation's clock stood still in it) does not follow the device to
    // the network it woke on. Before, it stayed until the next rotation.
    eventually("a new LAN id", Duration::from_secs(30), || {
        lan_id() != before
    });
    // Linked again, and synced both ways, once each.
    a.ok(&["send", "bob", "after the sleep"]);
    b.ok(&["send", "alice", "good morning"]);
    eventually("synced after waking", Duration::from_secs(60), || {
        b.read("alice").len() == 3 && a.read("bob").len() == 3
    });
    for m in [a.read("bob"), b.read("alice")] {
        let mut texts: Vec<&str> = m.iter().map(|m| m["text"].as_str().unwrap()).collect();
        texts.sort();
        assert_eq!(
            texts,
            ["after the sleep", "before the sleep", "good morning"],
            "each once"
        );
    }
    // A signal of another shape on the same name changes nothing.
    let wakes = |s: String| {
        s.lines()
            .find(|l| l.contains("woke from sleep"))
            .map(str::to_owned)
    };
    let before = wakes(a.ok(&["status"]));
    assert!(before.is_some());
    logind.prepare_for_sleep_saying(&"not a bool");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(wakes(a.ok(&["status"])), before);
}

/// Wi-Fi drops in the middle of a sync and comes back: two nodes in
/// network namespaces of their own, joined by a veth pair (the Wi-Fi);
/// Bob's end goes down while a 20 MiB file and 100 texts are on their
/// way, twice. Everything arrives once, the file byte for byte.
#[test]
fn wifi_going_down_and_up_mid_sync_loses_and_duplicates_nothing() {
    let (_guard, [n1, n2], [v1, v2]) =
        veth_pair("w", "10.201.0").expect("network namespaces (root, iproute2)");
    // A Wi-Fi's pace, 8 Mbit/s each way, so the file takes a while.
    for (ns, dev) in [(&n1, &v1), (&n2, &v2)] {
        let shaped = Command::new("ip")
            .args([
                "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root",
            ])
            .args([
                "tbf", "rate", "8mbit", "burst", "32kbit", "latency", "400ms",
            ])
            .status()
            .is_ok_and(|s| s.success());
        assert!(shaped, "tc tbf on {dev}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    let size = 20 * 1024 * 1024;
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let data: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let path = tmp.path().join("footage.bin");
    std::fs::write(&path, &data).unwrap();
    a.ok(&["send", "bob", "--file", path.to_str().unwrap()]);
    for i in 0..100 {
        a.ok(&["send", "bob", &format!("on the way {i}")]);
    }
    let in_ns = |u: &User, ns: &str| {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, BIN])
            .env("STRAND_PROFILE", &u.dir)
            .env("STRAND_PASSPHRASE", &u.pass)
            .env_remove("STRAND_LOG");
        c
    };
    let (a_run, a_addr) = a.run_with(
        &[
            "run",
            "--no-mdns",
            "--no-relay",
            "--no-ble",
            "--listen",
            "/ip4/10.201.0.1/tcp/0",
        ],
        in_ns(&a, &n1),
    );
    let _a_run = Killed(a_run);
    let (b_run, _) = b.run_with(
        &[
            "run",
            "--no-mdns",
            "--no-relay",
            "--no-ble",
            "--listen",
            "/ip4/10.201.0.2/tcp/0",
            "--peer",
            &a_addr,
        ],
        in_ns(&b, &n2),
    );
    let _b_run = Killed(b_run);
    let file = || -> Option<(u64, u64, String)> {
        b.read("alice").iter().find_map(|m| {
            let f = m.get("file")?;
            Some((
                f["have"].as_u64()?,
                f["total"].as_u64()?,
                m["id"].as_str()?.to_owned(),
            ))
        })
    };
    // Twice: as soon as more of the file is there, the Wi-Fi goes for 4 s.
    let mut last = 0;
    for drop_no in 1..=2 {
        eventually("more of the file", Duration::from_secs(120), || {
            file().is_some_and(|(have, _, _)| have > last)
        });
        assert!(ip(&["-n", &n2, "link", "set", &v2, "down"]));
        let (have, total, _) = file().unwrap();
        assert!(
            have < total,
            "finished before drop {drop_no} ({have} of {total})"
        );
        last = have;
        std::thread::sleep(Duration::from_secs(4));
        assert!(ip(&["-n", &n2, "link", "set", &v2, "up"]));
    }
    eventually(
        "the whole file and every text",
        Duration::from_secs(240),
        || {
            let m = b.read("alice");
            m.len() == 101 && file().is_some_and(|(have, total, _)| have == total)
        },
    );
    let m = b.read("alice");
    let mut ids: Vec<&str> = m.iter().map(|m| m["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 101, "each once");
    for i in 0..100 {
        let text = format!("on the way {i}");
        assert_eq!(m.iter().filter(|m| m["text"] == text).count(), 1, "{text}");
    }
    let (_, _, id) = file().unwrap();
    let out_dir = tmp.path().join("out");
    b.ok(&["save", &id[..12], out_dir.to_str().unwrap()]);
    let back = std::fs::read(out_dir.join("footage.bin")).unwrap();
    assert!(back == data, "byte-identical");
}

/// The Bluetooth battery setting: kept in the profile, changed from the
/// command line with or without a node, and followed by a running node
/// at once (its status says which it follows). A setting that does not
/// exist is refused with the choices and changes nothing.
#[test]
fn the_bluetooth_scan_setting_is_kept_and_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, _bob) = pair(tmp.path());
    let shown = alice.ok(&["bluetooth"]);
    assert!(shown.contains("Bluetooth scans: balanced"), "{shown}");
    assert!(shown.contains("radio on 20.1 %"), "{shown}");
    let shown = alice.ok(&["bluetooth", "--scan", "saver"]);
    assert!(shown.contains("Bluetooth scans: saver"), "{shown}");

    let out = alice.cmd(&["bluetooth", "--scan", "fast"]);
    assert_eq!(out.status.code(), Some(1), "a usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fast") && err.contains("[possible values: always, balanced, saver]"),
        "{err}"
    );
    let help = alice.ok(&["bluetooth", "--help"]);
    assert!(
        help.contains("[possible values: always, balanced, saver]"),
        "{help}"
    );
    let json: Value = serde_json::from_str(&alice.ok(&["--json", "bluetooth"])).unwrap();
    assert_eq!(json["scan"], "saver", "{json}");

    // A node started now follows what the profile keeps, and a change
    // made while it runs.
    let (run, _) = alice.run(&[]);
    let _run = Killed(run);
    let scan = |a: &User| {
        let s: Value = serde_json::from_str(&a.ok(&["--json", "status"])).unwrap();
        s["bluetooth_scan"].as_str().unwrap().to_owned()
    };
    assert_eq!(scan(&alice), "saver");
    alice.ok(&["bluetooth", "--scan", "always"]);
    assert_eq!(scan(&alice), "always");
}

/// Regression: `strand run` listened for SIGTERM only once it had printed
/// its addresses, so a SIGTERM once its control socket was there (it is
/// bound before they are printed) ended the process at once: the node
/// was not shut down and `control.sock` was left behind. It listens
/// before the socket is bound, so the node stops cleanly and removes its
/// socket.
///
/// With no transports, the node waits its whole wait for a listening
/// address (10 s) between binding its socket and printing: the signal
/// comes then.
#[test]
fn sigterm_once_the_control_socket_is_there_stops_the_node_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let a = User::init(tmp.path(), "alice");
    let log = std::fs::File::create(a.dir.with_extension("log")).unwrap();
    let run = a
        .command()
        .args(["run", "--no-lan", "--no-relay", "--no-ble"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut run = Killed(run);
    let socket = a.dir.join("control.sock");
    eventually("the control socket", Duration::from_secs(20), || {
        socket.exists()
    });
    assert!(Command::new("kill")
        .args(["-TERM", &run.0.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = run.0.wait().unwrap();
    assert!(status.success(), "{status:?}: {}", a.log());
    assert!(!socket.exists(), "control.sock left behind");
    assert!(!strand_node::Profile::in_use(&a.dir));
}

/// Regression: a SIGTERM while `strand run` waited for its addresses (up
/// to 10 s, once its control socket is bound) was acted on only once they
/// were printed. It stops the node then: nothing the wait ends with is
/// printed, and the node stops cleanly (exit status 0, its socket
/// removed, the profile let go, no starting marker left).
///
/// The LAN listens only on 192.0.2.1 (TEST-NET-1), which no interface
/// here has: it binds nothing and sends nothing, so the node waits its
/// whole wait and would then print that the LAN is not listening. (The
/// signal is sent as soon as the socket shows, well within those 10 s.)
#[test]
fn sigterm_while_the_node_waits_for_its_addresses_stops_it_then() {
    match std::net::TcpListener::bind("192.0.2.1:0") {
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {}
        other => panic!(
            "this test needs 192.0.2.1 (TEST-NET-1) to be unbindable here; is \
             net.ipv4.ip_nonlocal_bind set or the address assigned? (binding it gave \
             {other:?})"
        ),
    }
    let tmp = tempfile::tempdir().unwrap();
    let a = User::init(tmp.path(), "alice");
    let log = std::fs::File::create(a.dir.with_extension("log")).unwrap();
    let out = a.dir.with_extension("out");
    let run = a
        .command()
        .args([
            "run",
            "--listen",
            "/ip4/192.0.2.1/tcp/0",
            "--no-mdns",
            "--no-relay",
            "--no-ble",
        ])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut run = Killed(run);
    let socket = a.dir.join("control.sock");
    eventually("the control socket", Duration::from_secs(20), || {
        socket.exists()
    });
    assert!(Command::new("kill")
        .args(["-TERM", &run.0.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = run.0.wait().unwrap();
    let printed = std::fs::read_to_string(&out).unwrap();
    assert!(status.success(), "{status:?}: {}", a.log());
    assert!(
        !printed.contains("LAN"),
        "printed what the wait ends with, so the signal waited for it: {printed}"
    );
    assert!(!socket.exists(), "control.sock left behind");
    assert!(
        !a.dir.join(strand_node::runtime::starting::MARKER).exists(),
        "the starting marker left behind"
    );
    assert!(!strand_node::Profile::in_use(&a.dir));
}
