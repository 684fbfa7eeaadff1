//! The local control socket: how `strand` commands and the desktop app
//! reach a running node (`strand run`, or the app's own).
//!
//! A Unix socket `control.sock` in the profile directory, mode 0600 from
//! the moment it exists (the profile directory is 0700 as well), and the
//! node serves only processes of its own user, checked with `SO_PEERCRED`
//! on every connection, so a loosened permission does not open it. (So
//! any process of that user may use a running node without the
//! passphrase: the socket trusts the user, as the user's files do.) One
//! JSON object per line each way: a [`Request`], then one [`Answer`] (or,
//! for `follow`, a stream of [`crate::NodeEvent`] lines after it, through
//! a socket that holds little unread, [`FOLLOWER_SEND_BUFFER`]). A client
//! that leaves a line unread for a minute ([`READS_WITHIN`]), its answer
//! as much as a follower its events, is hung up: else it held its
//! connection for as long as it lived. A follower sends nothing after its
//! request and keeps its end of the connection open while it follows (the
//! client here does: [`request`]); the node watches that end, so a
//! follower that hangs up is let go at once, not when the node next has
//! an event for it (on a quiet node, never: closed followers held every
//! connection, and every command was refused). One that only shuts down
//! its writing and reads on (an older `strand`, a script) is followed
//! still, and let go when writing to it fails. A request the client
//! cannot write as JSON (a path that is not UTF-8) is refused before
//! anything is sent. A request line holds at most [`MAX_REQUEST`]; one
//! longer than [`SHORT_REQUEST`] is read into a request only while no
//! other such line is ([`parse`]), as reading one takes many times its
//! length in memory. The node's copy of a line is wiped once it is read,
//! as a client's is once sent: a line may carry passphrases. `strand` and
//! the app give up on the answer to a read (and to the status, stopping
//! the node, moving a read mark forward, or following its events, whose
//! stream comes after that answer) after [`ANSWER_WITHIN`], saying the
//! node did not answer ([`may_give_up_on`], applied by
//! [`request_or_give_up`]); what else changes something is waited for as
//! long as it takes. What each request does is [`Node::handle`]'s. At
//! most [`MAX_CONTROL_CONNECTIONS`] connections are served at once, and
//! [`RESERVED_CONTROL_CONNECTIONS`] more only to ask the node's status or
//! stop it ([`reserved_for`]): so the user can stop their own node while
//! every other connection is held. A connection in that reserve asking
//! anything else, and one more past the reserve too (at once, before its
//! request is read), is answered with a
//! [`FailureKind::Refused`](super::api::FailureKind) error line saying so,
//! and closed.

use std::path::{Path, PathBuf};

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::api::{Answer, Failure, Reply, Request};
use super::limits::{MAX_CONTROL_CONNECTIONS, RESERVED_CONTROL_CONNECTIONS};
use super::starting::Starting;
use crate::{hex, Node};

/// File name of the control socket in a profile directory.
pub const SOCKET: &str = "control.sock";

/// Longest request line accepted (a message of 1 MiB, JSON-escaped).
const MAX_REQUEST: usize = 8 * 1024 * 1024;

/// Longest request line read into a [`Request`] as soon as it has come,
/// on its connection's task. A longer one waits its turn, and only
/// [`LONG_REQUESTS_PARSED_AT_ONCE`] are read at once ([`parse`]). Every
/// request but a long text or a long list is far shorter, a status or a
/// shutdown (what the reserve serves) always, so those are never held up
/// behind long ones. All [`MAX_CONTROL_CONNECTIONS`] and the reserve
/// reading lines this long at once take some 70 MiB at the most.
const SHORT_REQUEST: usize = 64 * 1024;

/// Request lines longer than [`SHORT_REQUEST`] read into a [`Request`]
/// at once. serde holds every field of such a line in a form of its own
/// while it reads it (`Request` is told by a field, `"request"`, that
/// may come last, so nothing can be read into its type before the whole
/// line is), some 16 times the line's length for a line of small
/// numbers: a line of [`MAX_REQUEST`] takes 128 MiB while it is read.
/// One at a time, connections reading such lines at once take that much,
/// not [`MAX_CONTROL_CONNECTIONS`] times as much (8 GiB).
const LONG_REQUESTS_PARSED_AT_ONCE: usize = 1;

/// How much of a request line is read before the buffer for it first
/// grows (it doubles, up to [`MAX_REQUEST`]): most requests are far
/// shorter.
const FIRST_READ: usize = 4 * 1024;

/// The socket path for a profile.
pub fn socket_path(profile: &Path) -> PathBuf {
    profile.join(SOCKET)
}

/// The longest path a Unix socket's address holds (`sun_path`: 108 bytes
/// with the closing NUL).
const MAX_SOCKET_PATH: usize = 107;

/// An address for the socket `name` in folder `dir` that fits a Unix
/// socket's: `dir/name` itself where it fits, else the same file through
/// a handle on `dir` (`/proc/self/fd/N/name`, as systemd reaches long
/// paths), kept open while the address is used. So a profile in a deep
/// folder is served and reached (the kernel refuses a longer address).
struct SocketAddress {
    path: PathBuf,
    _dir: Option<std::fs::File>,
}

impl SocketAddress {
    fn of(dir: &Path, name: &str) -> std::io::Result<SocketAddress> {
        use std::os::fd::AsRawFd;
        let path = dir.join(name);
        if path.as_os_str().len() <= MAX_SOCKET_PATH {
            return Ok(SocketAddress { path, _dir: None });
        }
        let dir = std::fs::File::open(dir)?;
        Ok(SocketAddress {
            path: Path::new("/proc/self/fd")
                .join(dir.as_raw_fd().to_string())
                .join(name),
            _dir: Some(dir),
        })
    }
}

/// Binds the control socket at `path` with no moment in which anyone else
/// could connect: the socket is made inside a fresh directory only this
/// user can enter, given mode 0600 there, then renamed into place. (A
/// umask would do it too, but the umask is the whole process's.) Returns
/// the listener and the uid that owns the socket: this process's.
fn bind_private(
    path: &Path,
    rng: &mut impl rand_core::RngCore,
) -> std::io::Result<(UnixListener, u32)> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let parent = path.parent().unwrap_or(Path::new("."));
    let mut nonce = [0u8; 8];
    rng.fill_bytes(&mut nonce);
    let private = parent.join(format!(".control-{}", hex(&nonce)));
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let made = (|| {
        let inner = private.join(SOCKET);
        let listener = UnixListener::bind(&SocketAddress::of(&private, SOCKET)?.path)?;
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o600))?;
        let uid = std::fs::symlink_metadata(&inner)?.uid();
        std::fs::rename(&inner, path)?;
        Ok((listener, uid))
    })();
    let _ = std::fs::remove_dir_all(&private);
    made
}

/// The control socket bound in a profile and not yet served: clients
/// that connect wait in its backlog until [`serve`] accepts them. Bound
/// before the node says it runs (`strand run` prints its addresses), so
/// a command run as soon as that is printed reaches the node rather than
/// find the profile locked and no socket there.
pub struct Bound {
    listener: UnixListener,
    owner: u32,
}

/// Binds the control socket for `node` in the profile directory
/// `profile`, replacing a socket file left there (we hold the profile's
/// lock, so such a file is stale), then removes the marker `starting`
/// that said the node was starting (see [`super::starting`]): from then
/// on a command reaches the node, or, if binding failed, finds the
/// profile in use rather than wait for a socket that will not come.
/// Needs a tokio runtime.
pub fn bind(node: &Node, profile: &Path, starting: Starting) -> std::io::Result<Bound> {
    let path = socket_path(profile);
    let _ = std::fs::remove_file(&path);
    let bound = bind_private(&path, &mut node.shared.rng());
    drop(starting);
    let (listener, owner) = bound?;
    Ok(Bound { listener, owner })
}

/// Serves the control socket [`bind`] made until the task is dropped, or returns
/// `Ok(())` once a client asked for [`Request::Shutdown`] (and was
/// answered). Only processes of the user who runs the node are served
/// (`SO_PEERCRED`), whatever the file's permissions, and at most
/// [`MAX_CONTROL_CONNECTIONS`] at once, whoever they are; past them,
/// [`RESERVED_CONTROL_CONNECTIONS`] more have their request read and are
/// served only if it is one [`reserved_for`] (status, shutdown), else
/// told so; past those too, one more is told so at once and closed, with
/// no task of its own. A connection that
/// cannot be accepted (the process out of file handles, say) is logged
/// and accepting goes on shortly after, so the node keeps running; only
/// a socket that cannot serve at all (not a listening socket any more)
/// ends it with the error.
pub async fn serve(node: Node, bound: Bound) -> std::io::Result<()> {
    let Bound { listener, owner } = bound;
    let stop = tokio_util::sync::CancellationToken::new();
    let mut failing = Failing::default();
    let served = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONTROL_CONNECTIONS));
    let reserve = std::sync::Arc::new(tokio::sync::Semaphore::new(RESERVED_CONTROL_CONNECTIONS));
    let parsing = std::sync::Arc::new(tokio::sync::Semaphore::new(LONG_REQUESTS_PARSED_AT_ONCE));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.cancelled() => return Ok(()),
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                failing.recovered();
                stream
            }
            Err(e) if fatal_accept_error(&e) => return Err(e),
            Err(e) => {
                failing.failed(&e);
                // Out of file handles (or memory), the connection waits in
                // the backlog and accepting again at once fails again:
                // some time for handles to be closed. A client that gave
                // up before it was accepted is no reason to wait.
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::Interrupted
                ) {
                    tokio::select! {
                        _ = tokio::time::sleep(ACCEPT_RETRY) => {}
                        _ = stop.cancelled() => return Ok(()),
                    }
                }
                continue;
            }
        };
        // Each connection served holds a permit until its task ends: an
        // ordinary one while there is one, else one of the reserve (whose
        // connections are served only what `reserved_for` lets through),
        // else none, and it is refused at once.
        let (permit, reserved) = match served.clone().try_acquire_owned() {
            Ok(permit) => (permit, false),
            Err(_) => match reserve.clone().try_acquire_owned() {
                Ok(permit) => (permit, true),
                Err(_) => {
                    refuse_busy(stream);
                    continue;
                }
            },
        };
        let node = node.clone();
        let stop = stop.clone();
        let parsing = parsing.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match stream.peer_cred().map(|c| c.uid()) {
                Ok(uid) if uid == owner => {
                    if let Err(e) = handle(node, stream, stop, reserved, parsing).await {
                        tracing::debug!("control connection: {e}");
                    }
                }
                other => {
                    tracing::warn!(
                        "refused a control connection from uid {:?}: only uid {owner} is served",
                        other.ok()
                    );
                    let _ = refuse_stranger(stream).await;
                }
            }
        });
    }
}

/// How long the control socket waits before accepting again after an
/// accept failed (out of file handles, say).
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// How often, at most, a run of failed accepts is logged again.
const ACCEPT_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a client of this user has, once connected, to send its
/// request line: a client that connected and said nothing would
/// otherwise hold a file handle of the node's for as long as it lives.
/// Every client sends its request as soon as it is connected; `follow`'s
/// events after it are not bounded by this.
const REQUEST_WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

/// [`REQUEST_WITHIN`] for a connection of the reserve
/// ([`RESERVED_CONTROL_CONNECTIONS`]): `strand` and the app write their
/// request as soon as they are connected, so a few seconds are plenty, and
/// connections that say nothing hold the reserve (and keep the user from
/// stopping the node) for no longer than this.
const RESERVED_REQUEST_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a client may leave a line the node writes to it unread
/// before it is let go: an answer, or one of a follower's (`strand read
/// --follow`, the app attached) events. A terminal scrolled back or a
/// suspended `strand` takes it; a follower can follow again. Without a
/// bound, a client that did not read its answer (one larger than the
/// socket holds: a page of long texts, an error repeating a long request)
/// held its connection, and the answer, for as long as it lived.
const READS_WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

/// Why a client that left its answer unread for [`READS_WITHIN`] was hung
/// up on.
const ANSWER_UNREAD: &str = "a client left its answer unread: hung up";

/// The send buffer the node asks of the kernel for a follower's
/// connection (`SO_SNDBUF`), in bytes; Linux doubles it for its own
/// bookkeeping, so a follower's socket holds at most 32 KiB as Linux
/// counts it (less if `net.core.wmem_max` is set lower), whatever the
/// system's default.
///
/// What the node writes to a follower and the follower has not read
/// stays in the kernel, counted against the node's end only (on a Unix
/// stream socket the receiver's buffer bounds nothing): with the
/// default (`net.core.wmem_default`, 208 KiB on Linux, megabytes on
/// hosts tuned for throughput) a follower that stops reading held that
/// much for the minute before it is let go ([`READS_WITHIN`]),
/// for each of up to [`MAX_CONTROL_CONNECTIONS`] followers. The socket
/// need not hold more: events wait for a follower in the node's own ring
/// (`EVENT_BUFFER` of them) while it reads, so the socket only keeps the
/// node from waiting on a follower line by line, and 32 KiB holds a
/// dozen or more events that carry a text's start (over 1.2 KB each in
/// the worst case) or hundreds of the smaller ones. It also makes a
/// follower's socket fill after the same events on every host, which is
/// when a stopped follower starts to be let go.
pub const FOLLOWER_SEND_BUFFER: usize = 16 * 1024;

/// Whether an error from `accept` on the control socket means the socket
/// itself is unusable (a bug: the handle is not a listening socket), so
/// serving ends. Everything else (out of file handles or memory, a client
/// that gave up, a signal) passes: the node goes on, and so does serving.
fn fatal_accept_error(e: &std::io::Error) -> bool {
    // EBADF, ENOTSOCK, EOPNOTSUPP, EFAULT: named where libc is linked.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    let broken: &[i32] = &[libc::EBADF, libc::ENOTSOCK, libc::EOPNOTSUPP, libc::EFAULT];
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let broken: &[i32] = &[];
    // EINVAL: the socket is not listening.
    e.kind() == std::io::ErrorKind::InvalidInput
        || e.raw_os_error().is_some_and(|code| broken.contains(&code))
}

/// A run of failed accepts, logged once when it starts, again at most
/// every [`ACCEPT_LOG_EVERY`] while it lasts, and once when it ends.
#[derive(Default)]
struct Failing {
    /// Failures in this run.
    count: u64,
    /// When this run was last logged.
    logged: Option<std::time::Instant>,
}

impl Failing {
    fn failed(&mut self, e: &std::io::Error) {
        self.count += 1;
        let due = self
            .logged
            .is_none_or(|at| at.elapsed() >= ACCEPT_LOG_EVERY);
        if due {
            tracing::warn!(
                failures = self.count,
                "the control socket could not accept a connection ({}); trying again",
                crate::io_words(e)
            );
            self.logged = Some(std::time::Instant::now());
        }
    }

    fn recovered(&mut self) {
        if self.count > 0 {
            tracing::info!(
                failures = self.count,
                "the control socket accepts connections again"
            );
        }
        *self = Failing::default();
    }
}

/// Tells a process of another user why it gets nothing, and hangs up. Its
/// request is read (bounded, and dropped unread) first, so the answer is
/// not lost to a reset while the client is still writing.
async fn refuse_stranger(mut stream: UnixStream) -> std::io::Result<()> {
    let mut line = Vec::new();
    let mut rd = BufReader::new(&mut stream).take(MAX_REQUEST as u64);
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        rd.read_until(b'\n', &mut line),
    )
    .await;
    let answer = Answer::Error(Failure::refused(
        "this node serves only the user who runs it",
    ));
    send_within(&mut stream, &answer, ANSWER_UNREAD).await?;
    stream.shutdown().await
}

/// Whether `request` may be served on a connection of the reserve
/// ([`RESERVED_CONTROL_CONNECTIONS`]), past the ordinary bound: asking
/// whether the node runs and how ([`Request::Status`]: every command asks
/// it first, `strand status`) and stopping it ([`Request::Shutdown`]:
/// `strand wipe`, the app's wipe). Each is answered at once and ends its
/// connection, so the reserve is never held for long by them; and so a
/// client waits for their answer no longer than [`ANSWER_WITHIN`]
/// ([`may_give_up_on`]).
pub(crate) fn reserved_for(request: &Request) -> bool {
    matches!(request, Request::Status | Request::Shutdown)
}

/// Whether a client may stop waiting for the answer to `request` once
/// [`ANSWER_WITHIN`] has passed, and say the node did not answer
/// ([`Device::call`](super::device::Device::call),
/// [`Device::follow`](super::device::Device::follow), through
/// [`request_or_give_up`]). Given up on are the requests whose outcome
/// the user need not know: what the reserve serves ([`reserved_for`]);
/// every read, which changes nothing stored and is answered at once
/// (from the store, off the node's workers, or from what the node
/// holds); [`Request::Follow`], whose answer (that the node follows) is
/// sent at once, and whose events after it are read for as long as the
/// node runs; and [`Request::MarkRead`], which only moves a
/// conversation's read mark forward (never back), and which the app asks
/// again at its next refresh of the conversation, so done late or twice
/// it changes nothing the user was told. A node that answers
/// none of them in that time is stopped (Ctrl-Z) or stuck. Before, only
/// the status was given up on: the other requests an app attached to a
/// running node makes at every refresh (the contact list, a
/// conversation's positions and pages, the mark of what it showed, ...)
/// waited for a stopped node for good, and its window with them, as
/// the follow did an app attaching to a node stopped right after its
/// status.
///
/// A request whose outcome the user is told is waited for as long as it
/// takes: given up on, it could still be done once the node goes on,
/// after the user was told it failed (a text sent twice when they send
/// it again). Stopping the node is the exception it always was: one that
/// does not take it is to be ended all the same, which the error says.
/// Every request is named here, so a new one is sorted when it is added.
pub fn may_give_up_on(request: &Request) -> bool {
    match request {
        Request::Status | Request::Shutdown => true,
        Request::Contacts
        | Request::Groups
        | Request::GroupMembers { .. }
        | Request::Relays
        | Request::Summaries
        | Request::GroupSummaries
        | Request::Positions { .. }
        | Request::Page { .. } => true,
        // Asked with nothing to change, each only reads.
        Request::Verify { verified, .. } => verified.is_none(),
        Request::Timer { set, .. } => set.is_none(),
        Request::Carry { set } => set.is_none(),
        Request::Preferences { set } => set.is_empty(),
        // The invite (and the mailbox pairing, which shows it while none
        // is paired) stores the profile's relay seed the first time it is
        // asked: made once, by whichever ask comes first, and the same
        // for every ask after it, so nothing the user sees depends on
        // which.
        Request::Invite => true,
        Request::Mailbox { action } => action.is_none(),
        // Only moves a read mark forward, and the app asks it again at
        // its next refresh of the conversation.
        Request::MarkRead { .. } => true,
        // Writes, and what takes as long as its file does.
        Request::Add { .. }
        | Request::Send { .. }
        | Request::SendFile { .. }
        | Request::Save { .. }
        | Request::Export { .. }
        | Request::Import { .. }
        | Request::GroupCreate { .. }
        | Request::GroupChange { .. }
        | Request::RelayAdd { .. }
        | Request::RelayRemove { .. }
        | Request::RenameContact { .. }
        | Request::DeleteContact { .. }
        | Request::Rename { .. }
        | Request::ChangePassphrase { .. }
        | Request::AddPeer { .. } => false,
        // A page of `strand read`: it marks the conversation read up to
        // its last message.
        Request::Read { .. } | Request::GroupRead { .. } => false,
        // Only reads. Its answer comes at once; its events, after it,
        // are read for as long as the node runs
        // ([`Device::follow`](super::device::Device::follow)).
        Request::Follow => true,
    }
}

/// What a client that comes while [`MAX_CONTROL_CONNECTIONS`] others are
/// served is told (unless it asks for what the reserve serves).
fn busy() -> Answer {
    Answer::Error(Failure::refused(format!(
        "the node is already serving {MAX_CONTROL_CONNECTIONS} connections on its control socket, the most it serves at once for anything but its status or stopping it (commands still running, `strand read --follow`, the app): try again once one of them has ended"
    )))
}

/// Tells a client that came while [`MAX_CONTROL_CONNECTIONS`] others are
/// served, and the [`RESERVED_CONTROL_CONNECTIONS`] as well, why it gets
/// nothing, and hangs up: no task, no wait, so past the bound a
/// connection costs the node this and nothing more. The line is
/// written before the request is read (never read): a socket just
/// accepted has room for it, and it stays for the client to read after
/// its request, even once writing that failed because the node hung up
/// (the clients here read it then: [`request`]).
fn refuse_busy(stream: UnixStream) {
    let mut line = serde_json::to_vec(&busy()).expect("serialisable");
    line.push(b'\n');
    match stream.into_std() {
        Ok(mut stream) => {
            // Non-blocking: a client that cannot take one line is not
            // waited for.
            if let Err(e) = std::io::Write::write_all(&mut stream, &line) {
                tracing::debug!("refusing a control connection: {e}");
            }
        }
        Err(e) => tracing::debug!("refusing a control connection: {e}"),
    }
    // Not a warning: a script that opens connections without end would
    // fill the log with it; the client itself is told.
    tracing::debug!(
        "refused a control connection: {MAX_CONTROL_CONNECTIONS} are served already, and {RESERVED_CONTROL_CONNECTIONS} kept for status and stopping"
    );
}

/// Writes one line of JSON.
async fn send(
    out: &mut (impl tokio::io::AsyncWrite + Unpin),
    line: &impl Serialize,
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(line).expect("serialisable");
    bytes.push(b'\n');
    out.write_all(&bytes).await
}

/// [`send`], hung up (an error of kind `TimedOut`, saying `unread`) if the
/// client leaves the line unread for [`READS_WITHIN`]: every line the node
/// writes to a client of this user's, answers and events alike.
async fn send_within(
    out: &mut (impl tokio::io::AsyncWrite + Unpin),
    line: &impl Serialize,
    unread: &'static str,
) -> std::io::Result<()> {
    tokio::time::timeout(READS_WITHIN, send(out, line))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, unread))?
}

/// Serves one connection: reads its request line, answers it. One that
/// holds a permit of the reserve (`reserved`) is served only a request
/// [`reserved_for`] it, and told the node is busy otherwise. A long
/// request line waits for one of the turns `parsing` holds to be read
/// ([`parse`]).
async fn handle(
    node: Node,
    stream: UnixStream,
    stop: tokio_util::sync::CancellationToken,
    reserved: bool,
    parsing: std::sync::Arc<tokio::sync::Semaphore>,
) -> std::io::Result<()> {
    let (mut rd, mut wr) = stream.into_split();
    let within = if reserved {
        RESERVED_REQUEST_WITHIN
    } else {
        REQUEST_WITHIN
    };
    let line = tokio::time::timeout(within, request_line(&mut rd))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no request line in time: hung up",
            )
        })??;
    let request = match line {
        Ok(line) => parse(line, &parsing).await?,
        Err(why) => Err(why),
    };
    let answer = match request {
        Err(why) => Answer::Error(Failure::bad_input(format!("bad request: {why}"))),
        Ok(request) if reserved && !reserved_for(&request) => {
            tracing::debug!(
                "refused a control request past the {MAX_CONTROL_CONNECTIONS} connections served: only status and stopping are served there"
            );
            busy()
        }
        Ok(Request::Follow) => {
            bound_send_buffer(wr.as_ref());
            let mut events = node.subscribe();
            send_within(&mut wr, &Answer::Ok(Reply::Following), ANSWER_UNREAD).await?;
            // The follower's end is watched until it hangs up (then it is
            // let go at once) or only shuts down its writing (then it is
            // let go once writing to it fails).
            let mut watching = true;
            loop {
                let event = tokio::select! {
                    event = events.recv() => match event {
                        Ok(e) => e,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(count)) => {
                            crate::NodeEvent::Missed { count }
                        }
                        Err(_) => return Ok(()),
                    },
                    hung_up = follower_done(&mut rd), if watching => {
                        if hung_up {
                            return Ok(());
                        }
                        watching = false;
                        continue;
                    }
                };
                // A follower that stops reading is let go: its receiver
                // would keep the node's last events (message texts among
                // them) in memory for as long as it stayed.
                send_within(&mut wr, &event, "a follower stopped reading: hung up").await?;
            }
        }
        Ok(Request::Shutdown) => {
            send_within(&mut wr, &Answer::Ok(Reply::Done), ANSWER_UNREAD).await?;
            stop.cancel();
            return Ok(());
        }
        Ok(request) => node.handle(request).await.into(),
    };
    send_within(&mut wr, &answer, ANSWER_UNREAD).await
}

/// Waits until the follower at the other end of `rd` is done writing to
/// its connection, and says whether it hung up: closed its end, or the
/// connection failed (`true`), rather than only shut down its writing and
/// reads on (`false`). A follower sends nothing after its request; what
/// one sends all the same is dropped unread. Cancel-safe: it only reads.
async fn follower_done(rd: &mut tokio::net::unix::OwnedReadHalf) -> bool {
    let mut dropped = [0u8; 64];
    loop {
        match rd.read(&mut dropped).await {
            Ok(0) => {
                let stream: &UnixStream = (*rd).as_ref();
                return closed(stream);
            }
            Ok(_) => {}
            Err(_) => return true,
        }
    }
}

/// Whether the other end of `stream`, which has shut down its writing,
/// closed the connection altogether: the kernel says so (`POLLHUP`) once
/// the connection is shut both ways, as it is from the moment the other
/// end is closed. A client that shut down its writing only (an older
/// `strand`'s did after its request) is not: it may read on.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn closed(stream: &impl std::os::fd::AsFd) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut asked = [PollFd::new(stream, PollFlags::empty())];
    // At once: the answer is the connection's state now.
    poll(&mut asked, Some(&Timespec::default())).is_ok()
        && asked[0].revents().contains(PollFlags::HUP)
}

/// [`closed`] where it is not asked (systems other than Linux and
/// Android): not known, so `false`, and such a follower is let go once
/// writing to it fails.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn closed(_stream: &impl std::os::fd::AsFd) -> bool {
    false
}

/// Asks the kernel to hold at most [`FOLLOWER_SEND_BUFFER`] (twice that
/// as Linux counts it) of what the node wrote to the follower at the
/// other end of `stream` and it has not read yet. Where that cannot be
/// set, the follower is served with the system's buffer, and that is
/// logged.
fn bound_send_buffer(stream: &UnixStream) {
    if let Err(e) = socket2::SockRef::from(stream).set_send_buffer_size(FOLLOWER_SEND_BUFFER) {
        tracing::debug!(
            "a follower's send buffer is left as the system sets it: {}",
            crate::io_words(&e)
        );
    }
}

/// A client's request line (with its `\n`, if it ends in one rather
/// than with the stream), or why it is none: longer than [`MAX_REQUEST`]
/// (read to its end and dropped, so the client is not cut off while it
/// still writes, and reads the answer). What a client sends after its
/// line is dropped: nothing but the request is read as one (a follower
/// sends nothing more; what it sends all the same is dropped unread).
///
/// A line may carry passphrases ([`Request::ChangePassphrase`]), so it
/// is read straight into memory that is wiped when it is dropped: read
/// without a buffered reader (whose own buffer would keep a copy), into a
/// buffer grown by moving what it holds into a larger one and wiping the
/// smaller, never by reallocating it (which frees the old memory
/// unwiped). The line is wiped once it is parsed ([`parse`]).
async fn request_line(
    rd: &mut (impl tokio::io::AsyncRead + Unpin),
) -> std::io::Result<Result<zeroize::Zeroizing<Vec<u8>>, String>> {
    let mut line = zeroize::Zeroizing::new(vec![0u8; FIRST_READ]);
    let mut filled = 0;
    loop {
        if filled == line.len() {
            if filled == MAX_REQUEST {
                // Too long: the rest of it is read through the same
                // buffer and dropped.
                loop {
                    let read = rd.read(&mut line[..]).await?;
                    if read == 0 || line[..read].contains(&b'\n') {
                        break;
                    }
                }
                return Ok(Err(format!(
                    "longer than a request can be ({} MiB)",
                    MAX_REQUEST >> 20
                )));
            }
            let mut larger = zeroize::Zeroizing::new(vec![0u8; (2 * filled).min(MAX_REQUEST)]);
            larger[..filled].copy_from_slice(&line[..filled]);
            // The smaller buffer is wiped as it is dropped.
            line = larger;
        }
        let read = rd.read(&mut line[filled..]).await?;
        if read == 0 {
            break;
        }
        let start = filled;
        filled += read;
        if let Some(end) = line[start..filled].iter().position(|b| *b == b'\n') {
            filled = start + end + 1;
            break;
        }
    }
    // What came after the line stays in the spare room, wiped with it.
    line.truncate(filled);
    Ok(Ok(line))
}

/// `line` read into a [`Request`], or why it is none (in words for the
/// client: not UTF-8, or serde's). A line longer than [`SHORT_REQUEST`]
/// waits for one of the turns `parsing` holds
/// ([`LONG_REQUESTS_PARSED_AT_ONCE`]), and is read on a thread for
/// blocking work, not on one of the runtime's, which reading 8 MiB would
/// hold for a while. `line` is wiped once read, whichever way: a
/// passphrase in it goes on in the request's [`Secret`], wiped when the
/// request is dropped. (Not wiped: the copy serde_json makes, in a buffer
/// of its own, of a string it has to unescape, so of a passphrase with a
/// quote, a backslash or a control character in it.)
///
/// [`Secret`]: super::api::Secret
async fn parse(
    line: zeroize::Zeroizing<Vec<u8>>,
    parsing: &std::sync::Arc<tokio::sync::Semaphore>,
) -> std::io::Result<Result<Request, String>> {
    if line.len() <= SHORT_REQUEST {
        return Ok(request_of(&line));
    }
    let turn = parsing
        .clone()
        .acquire_owned()
        .await
        .expect("the semaphore of turns to parse is never closed");
    tokio::task::spawn_blocking(move || {
        // Given back once the line is read, even if the connection's task
        // is gone meanwhile (the node stopping): the memory is in use
        // until then.
        let _turn = turn;
        request_of(&line)
    })
    .await
    .map_err(std::io::Error::other)
}

/// [`parse`]'s reading itself.
fn request_of(line: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// How long a node is given to answer whether it runs (`Status`), to
/// take a `Shutdown`, to answer a read or that it follows
/// ([`may_give_up_on`]): it answers those at once, unless it is stopped
/// (Ctrl-Z) or stuck.
pub const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// This process's (effective) user: the owner of a file it makes.
pub(crate) fn own_uid() -> std::io::Result<u32> {
    // Asked of the kernel on Linux and Android alike (before, Android
    // made a temporary file per request, which failed where the
    // temporary folder cannot be written, and read as a refusal).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return Ok(rustix::process::geteuid().as_raw());
    // Elsewhere: a file it makes.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        use std::os::unix::fs::MetadataExt;
        Ok(tempfile::tempfile()?.metadata()?.uid())
    }
}

/// Sends one request to a running node. `Ok(None)` if no node answers on
/// this profile's socket; an error of kind `UnexpectedEof`, saying so, if
/// the node hangs up without answering (it stopped meanwhile).
pub async fn request(
    profile: &Path,
    request: &Request,
) -> std::io::Result<Option<(Answer, BufReader<tokio::net::unix::OwnedReadHalf>)>> {
    ask(profile, request, None).await
}

/// [`request`], for a request a node answers at once: an error, naming
/// the node's process, if no answer comes within `within`.
pub async fn request_within(
    profile: &Path,
    request: &Request,
    within: std::time::Duration,
) -> std::io::Result<Option<Answer>> {
    Ok(ask(profile, request, Some(within)).await?.map(|(a, _)| a))
}

/// [`request`], given up on as [`may_give_up_on`] says: a request that
/// may be given up on fails (an error of kind `TimedOut`, naming the
/// node's process) once [`ANSWER_WITHIN`] has passed with no answer;
/// any other is waited for as long as it takes. Only the answer is
/// bounded: what comes after it (a follow's events, read from the reader
/// returned) is not. [`Device`](super::device::Device) asks a running
/// node through this, its calls and its follow alike, so the rule is
/// applied in one place.
pub async fn request_or_give_up(
    profile: &Path,
    request: &Request,
) -> std::io::Result<Option<(Answer, BufReader<tokio::net::unix::OwnedReadHalf>)>> {
    let within = may_give_up_on(request).then_some(ANSWER_WITHIN);
    ask(profile, request, within).await
}

/// Whether an error on the control socket is the node hanging up.
fn hung_up(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::BrokenPipe | K::ConnectionReset | K::ConnectionAborted | K::UnexpectedEof
    )
}

/// What a client is told when the node hung up without answering: it
/// stopped while the request was in progress (or, a bug, the task
/// answering it panicked). What was asked may have been done or not: the
/// node may have stopped before or after doing it.
fn stopped_before_answering() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "the node stopped before it answered, or failed answering: what was asked may or may not have been done",
    )
}

/// `request` as the line a client writes, in a buffer that is wiped when
/// it is dropped, and made at its full size at once (its length is
/// counted first): one grown as it is written (as `serde_json::to_vec`
/// grows its own) leaves what it held in the memory it moved out of,
/// freed unwiped, and a request may carry passphrases
/// ([`Request::ChangePassphrase`]). The node wipes its copy of the line
/// as well ([`request_line`]).
fn line_of(request: &Request) -> serde_json::Result<zeroize::Zeroizing<Vec<u8>>> {
    /// Counts the bytes written to it, and keeps none.
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, request)?;
    let mut line = zeroize::Zeroizing::new(Vec::with_capacity(count.0 + 1));
    serde_json::to_writer(&mut *line, request)?;
    line.push(b'\n');
    Ok(line)
}

async fn ask(
    profile: &Path,
    request: &Request,
    within: Option<std::time::Duration>,
) -> std::io::Result<Option<(Answer, BufReader<tokio::net::unix::OwnedReadHalf>)>> {
    // What cannot be written as JSON is refused before anything is sent
    // (it made the client panic): a path that is not UTF-8, said as the
    // node says it, and anything else that does not serialise.
    if let Some(path) = request.path() {
        super::commands::utf8_path(path)
            .map_err(|f| std::io::Error::new(std::io::ErrorKind::InvalidInput, f.message))?;
    }
    let line =
        line_of(request).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let Ok(address) = SocketAddress::of(profile, SOCKET) else {
        return Ok(None);
    };
    let Ok(stream) = UnixStream::connect(&address.path).await else {
        return Ok(None);
    };
    drop(address);
    // Only a node of this user's is told anything: a socket another user
    // made (in a profile folder they can write to) would be told a
    // passphrase change or a text, and could answer anything.
    let served_by = stream.peer_cred()?;
    if served_by.uid() != own_uid()? {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} is served by another user (uid {}), not by a node of yours: nothing was sent to it. If no node of yours runs on this profile, remove that file",
                socket_path(profile).display(),
                served_by.uid()
            ),
        ));
    }
    let exchange = async {
        let (rd, mut wr) = stream.into_split();
        let written = wr.write_all(&line).await;
        // The connection stays open both ways until the reader returned
        // is dropped, rather than being shut for writing now (as dropping
        // the writing half does): to the node, a follower that shut down
        // its writing may read on, and is let go only once writing to it
        // fails; one whose end is closed is let go at once.
        wr.forget();
        let mut rd = BufReader::new(rd);
        let mut answer = String::new();
        let read = rd.read_line(&mut answer).await;
        // A node serving all it can answers before it reads the request
        // and hangs up ([`refuse_busy`]), so writing the request may have
        // failed (a broken pipe) with its answer waiting to be read: a
        // whole line is the answer, whatever else failed. With none, the
        // node hung up without answering: it stopped (before it read the
        // request, a broken pipe or a reset; after, the end of the
        // stream), and there is no answer to parse.
        if !answer.ends_with('\n') {
            for e in [written.err(), read.err()].into_iter().flatten() {
                if !hung_up(&e) {
                    return Err(e);
                }
            }
            return Err(stopped_before_answering());
        }
        let response = serde_json::from_str(&answer)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        Ok(Some((response, rd)))
    };
    let Some(within) = within else {
        return exchange.await;
    };
    tokio::time::timeout(within, exchange).await.unwrap_or_else(|_| {
        let which = served_by
            .pid()
            .map(|pid| format!(" (process {pid})"))
            .unwrap_or_default();
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "the node running on this profile{which} did not answer within {} s: is it stopped (Ctrl-Z) or stuck? Let it go on (`kill -CONT`) or end it, then try again",
                within.as_secs()
            ),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A follower's socket holds at most twice [`FOLLOWER_SEND_BUFFER`]
    /// unread (as Linux counts it), not the system's default (212,992
    /// bytes on Linux, more where tuned), which a stopped follower made
    /// the kernel hold for a minute. Fails with the `set_send_buffer_size`
    /// in [`bound_send_buffer`] taken out.
    #[tokio::test]
    async fn a_followers_send_buffer_is_bounded() {
        let (node_end, _follower) = UnixStream::pair().unwrap();
        bound_send_buffer(&node_end);
        let size = socket2::SockRef::from(&node_end)
            .send_buffer_size()
            .unwrap();
        assert!(
            size <= 2 * FOLLOWER_SEND_BUFFER,
            "a send buffer of {size} bytes"
        );
    }

    /// As many turns to read long request lines as [`serve`] gives its
    /// connections.
    fn turns_to_parse() -> std::sync::Arc<tokio::sync::Semaphore> {
        std::sync::Arc::new(tokio::sync::Semaphore::new(LONG_REQUESTS_PARSED_AT_ONCE))
    }

    /// A status request, padded with spaces (which JSON allows) to
    /// `len` bytes.
    fn status_line(len: usize) -> zeroize::Zeroizing<Vec<u8>> {
        let mut line = b"{\"request\":\"status\"".to_vec();
        line.resize(len - 1, b' ');
        line.push(b'}');
        zeroize::Zeroizing::new(line)
    }

    /// A long request line is read into a request only while no other
    /// one is: serde holds a line's fields in a form of its own while it
    /// reads them, some 16 times the line's length, so 64 connections
    /// sending 8 MiB lines at once took gibibytes. Here the one turn is
    /// held, as by a connection whose line is being read, and a long line
    /// waits for it: an hour of paused time passes (it passes only while
    /// nothing else runs, not while a line is read on a blocking thread)
    /// and the line is not read; a short one is read at once meanwhile;
    /// once the turn is given back, the long one is read. Fails with the
    /// `acquire_owned` in [`parse`] taken out (and `_turn` with it): the
    /// long line is read at once.
    #[tokio::test(start_paused = true)]
    async fn a_long_request_line_waits_while_another_is_read() {
        let turns = turns_to_parse();
        let long = status_line(SHORT_REQUEST + 1);
        let other = turns.clone().acquire_owned().await.unwrap();
        let waited = tokio::time::timeout(
            std::time::Duration::from_secs(3600),
            parse(long.clone(), &turns),
        )
        .await;
        assert!(waited.is_err(), "read while another was: {waited:?}");
        let short = tokio::time::timeout(
            std::time::Duration::from_secs(3600),
            parse(status_line(SHORT_REQUEST), &turns),
        )
        .await;
        assert!(
            matches!(short, Ok(Ok(Ok(Request::Status)))),
            "a short line waited: {short:?}"
        );
        drop(other);
        let read = parse(long, &turns).await.unwrap();
        assert_eq!(read, Ok(Request::Status));
    }

    /// A request line is read whole into the buffer that grows for it,
    /// however many reads it takes, up to its `\n` and no further; one
    /// longer than [`MAX_REQUEST`] is refused, and read to its end.
    #[tokio::test]
    async fn a_request_line_is_read_whole_and_no_further() {
        let line = status_line(3 * FIRST_READ + 5);
        let mut sent = line.to_vec();
        sent.extend_from_slice(b"\nnext\n");
        let read = request_line(&mut &sent[..]).await.unwrap().unwrap();
        assert_eq!(&read[..], &sent[..line.len() + 1]);
        assert_eq!(request_of(&read), Ok(Request::Status));

        let mut sent = vec![b' '; MAX_REQUEST + 10];
        sent.push(b'\n');
        let mut rd = &sent[..];
        let refused = request_line(&mut rd).await.unwrap();
        assert!(
            matches!(&refused, Err(why) if why.contains("longer than a request can be")),
            "{:?}",
            refused.as_ref().map(|l| l.len())
        );
        assert!(rd.is_empty(), "{} bytes left unread", rd.len());
    }

    /// A path that is not UTF-8, under `dir`: absolute, and a name JSON
    /// cannot carry.
    fn not_utf8(dir: &Path) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        dir.join(std::ffi::OsStr::from_bytes(b"caf\xe9"))
    }

    /// A node, played on `profile`'s socket by a thread: for each of
    /// `answers`, it takes one connection, reads its request line, writes
    /// the answer, and hangs up, but for the last connection, which it
    /// returns open.
    fn played_node(
        profile: &Path,
        answers: Vec<Answer>,
    ) -> std::thread::JoinHandle<std::os::unix::net::UnixStream> {
        let listener = std::os::unix::net::UnixListener::bind(socket_path(profile)).unwrap();
        std::thread::spawn(move || {
            let count = answers.len();
            for (i, answer) in answers.into_iter().enumerate() {
                let (stream, _) = listener.accept().unwrap();
                let mut line = String::new();
                std::io::BufRead::read_line(&mut std::io::BufReader::new(&stream), &mut line)
                    .unwrap();
                let mut bytes = serde_json::to_vec(&answer).unwrap();
                bytes.push(b'\n');
                std::io::Write::write_all(&mut &stream, &bytes).unwrap();
                if i + 1 == count {
                    return stream;
                }
            }
            panic!("no answer to give")
        })
    }

    /// A follower that hangs up is let go at once, not when the node next
    /// has an event for it: a quiet node has none, so closed followers
    /// (`strand read --follow` ended with Ctrl-C, the app locked) held
    /// their connections for good, and `MAX_CONTROL_CONNECTIONS` of them
    /// refused every command. Fails with the `follower_done` branch of
    /// the follow loop's `select!` taken out: the task then waits for an
    /// event that never comes (an offline node with nothing to do has
    /// none), and the hour of paused time runs out.
    #[tokio::test(start_paused = true)]
    async fn a_follower_that_hangs_up_is_let_go_without_an_event() {
        let tmp = tempfile::tempdir().unwrap();
        let node = crate::runtime::test_node(tmp.path(), crate::NodeConfig::offline()).await;
        let (node_end, follower) = UnixStream::pair().unwrap();
        let served = tokio::spawn(handle(
            node.clone(),
            node_end,
            tokio_util::sync::CancellationToken::new(),
            false,
            turns_to_parse(),
        ));
        let (rd, mut wr) = follower.into_split();
        wr.write_all(b"{\"request\":\"follow\"}\n").await.unwrap();
        let mut line = String::new();
        BufReader::new(rd).read_line(&mut line).await.unwrap();
        assert!(line.contains("following"), "{line}");
        // Its reading half is gone already: this closes the connection.
        drop(wr);
        let ended = tokio::time::timeout(std::time::Duration::from_secs(3600), served).await;
        assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
        node.shutdown().await;
    }

    /// A follower that only shuts down its writing after its request (as
    /// `strand` did before it kept its connection open, and as a script
    /// may) reads on, and is sent events still: the node tells it from
    /// one that hung up. Fails if the end of a follower's writing is taken
    /// for it hanging up (`closed` in `follower_done` made `true`).
    #[tokio::test(start_paused = true)]
    async fn a_follower_that_only_stops_writing_is_followed_still() {
        let tmp = tempfile::tempdir().unwrap();
        let node = crate::runtime::test_node(tmp.path(), crate::NodeConfig::offline()).await;
        let (node_end, follower) = UnixStream::pair().unwrap();
        let served = tokio::spawn(handle(
            node.clone(),
            node_end,
            tokio_util::sync::CancellationToken::new(),
            false,
            turns_to_parse(),
        ));
        let (rd, mut wr) = follower.into_split();
        wr.write_all(b"{\"request\":\"follow\"}\n").await.unwrap();
        // Shuts the connection for writing; its reading half reads on.
        drop(wr);
        let mut rd = BufReader::new(rd);
        let mut line = String::new();
        rd.read_line(&mut line).await.unwrap();
        assert!(line.contains("following"), "{line}");
        // Time goes on only once the node has nothing left to do: it has
        // seen the follower's writing end.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert!(!served.is_finished(), "the follower was let go");
        node.shared
            .events
            .send(crate::NodeEvent::GroupsChanged)
            .unwrap();
        line.clear();
        rd.read_line(&mut line).await.unwrap();
        assert!(line.contains("groups_changed"), "{line:?}");
        drop(rd);
        node.shutdown().await;
    }

    /// A client keeps its connection open both ways for as long as the
    /// reader [`request`] returns lives, and closed once that is dropped:
    /// so the node lets a follower go as soon as it drops its events (the
    /// app locked, say). Before, dropping the writing half shut the
    /// connection for writing at once, which to the node is a follower
    /// that reads on, let go only when the node next writes to it. Fails
    /// with the `wr.forget()` in `ask` taken out.
    #[tokio::test]
    async fn a_client_keeps_its_connection_open_until_it_is_done_reading() {
        let tmp = tempfile::tempdir().unwrap();
        let node = played_node(tmp.path(), vec![Answer::Ok(Reply::Following)]);
        let (answer, reader) = request(tmp.path(), &Request::Follow)
            .await
            .unwrap()
            .expect("the node answers");
        assert!(matches!(answer, Answer::Ok(Reply::Following)), "{answer:?}");
        let node_end = node.join().unwrap();
        node_end.set_nonblocking(true).unwrap();
        let read = std::io::Read::read(&mut &node_end, &mut [0; 8]);
        assert!(
            matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "the client is done writing: {read:?}"
        );
        assert!(!closed(&node_end));
        drop(reader);
        assert!(closed(&node_end), "the client closed its end");
    }

    /// An answer its client leaves unread is given up after
    /// [`READS_WITHIN`], as a follower's event is: before, a client that
    /// did not read an answer larger than its socket holds (here an error
    /// that repeats a long request) held its connection, and the answer,
    /// for as long as it lived. Fails with the last `send_within` in
    /// [`handle`] made a plain `send` (the task then waits for good, and
    /// twice the bound of paused time runs out).
    #[tokio::test(start_paused = true)]
    async fn an_answer_left_unread_is_given_up() {
        let tmp = tempfile::tempdir().unwrap();
        let node = crate::runtime::test_node(tmp.path(), crate::NodeConfig::offline()).await;
        let (node_end, client) = UnixStream::pair().unwrap();
        // Little room for what is left unread (Linux raises 1 byte to its
        // least, some 4.6 KB): the answer below does not fit.
        socket2::SockRef::from(&node_end)
            .set_send_buffer_size(1)
            .unwrap();
        let served = tokio::spawn(handle(
            node.clone(),
            node_end,
            tokio_util::sync::CancellationToken::new(),
            false,
            turns_to_parse(),
        ));
        // Never read.
        let (_rd, mut wr) = client.into_split();
        let request = format!(
            "{{\"request\":\"add_peer\",\"address\":\"{}\"}}\n",
            "x".repeat(64 * 1024)
        );
        wr.write_all(request.as_bytes()).await.unwrap();
        let ended = tokio::time::timeout(2 * READS_WITHIN, served).await;
        assert!(
            matches!(&ended, Ok(Ok(Err(e))) if e.kind() == std::io::ErrorKind::TimedOut),
            "{ended:?}"
        );
        node.shutdown().await;
    }

    /// A request naming a path that is not UTF-8 (a downloads folder so
    /// named, in the app attached to a running node) is refused by the
    /// client before anything is sent, in the node's words: JSON cannot
    /// carry it, and writing it made the client panic ("serialisable").
    /// Fails with the `utf8_path` check at the top of `ask` taken out
    /// (serde's words, or with the `expect` back, the panic).
    #[tokio::test]
    async fn a_path_that_is_not_utf8_is_refused_before_it_is_sent() {
        let tmp = tempfile::tempdir().unwrap();
        // A node of this user's, played: a socket never answered.
        let _node = std::os::unix::net::UnixListener::bind(socket_path(tmp.path())).unwrap();
        let save = Request::Save {
            id: "00000000".into(),
            dir: not_utf8(tmp.path()),
            task: None,
        };
        let e = request_within(tmp.path(), &save, ANSWER_WITHIN)
            .await
            .expect_err("refused");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
        assert!(
            e.to_string().contains("use a path that is valid UTF-8"),
            "{e}"
        );
    }

    /// A follower let go (it left its events unread a minute) that is told
    /// the node is busy when it follows again asks again, rather than take
    /// the node for stopped: `strand read --follow` ended, and the app said
    /// the node had stopped, while it ran serving all it could. Fails with
    /// the `Refused` arm of [`Events::next`](super::super::device::Events::next)'s
    /// following again taken out.
    #[tokio::test]
    async fn a_follower_told_busy_when_it_follows_again_asks_again() {
        let tmp = tempfile::tempdir().unwrap();
        // It follows, lets go, is busy, then follows again.
        let node = played_node(
            tmp.path(),
            vec![
                Answer::Ok(Reply::Following),
                busy(),
                Answer::Ok(Reply::Following),
            ],
        );
        let device = super::super::device::Device::Running(tmp.path().to_path_buf());
        let mut events = device.follow().await.expect("following");
        let next = events.next().await;
        assert!(
            matches!(next, Some(crate::NodeEvent::Missed { count: 0 })),
            "{next:?}"
        );
        let _following = node.join().unwrap();
    }
}
