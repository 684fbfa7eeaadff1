//! One way into a device: a [`Device`] is either the profile's running
//! node, reached over its control socket, or a node started for the
//! command on the profile (offline: its writer and carrier, no
//! transports). Every `strand` command and every action of the desktop
//! app is one [`Device::call`]; both kinds answer it with
//! [`Node::handle`], so nothing has a second implementation.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt;

use super::api::{Answer, Failure, Reply, Request};
use super::{control, starting};
use crate::{Node, NodeConfig, NodeError, NodeEvent, Profile, ProfileError};

/// A profile's device: its running node, or one started for the caller.
#[derive(Debug, Clone)]
pub enum Device {
    /// A node runs on the profile (`strand run`, the app): requests go
    /// over its control socket.
    Running(PathBuf),
    /// No node ran: this one was started offline on the profile, and
    /// holds it until [`Device::close`].
    Offline(Node),
    /// A node this process runs with its transports (the desktop app).
    Local(Node),
}

/// Why a device could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The profile could not be opened (none there, a wrong passphrase,
    /// in use by a node that did not answer).
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The node could not start.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The running node's socket failed.
    #[error("talking to the running node")]
    Control(#[source] std::io::Error),
    /// The passphrase could not be had (it is asked for only when no node
    /// runs).
    #[error("{0}")]
    Passphrase(String),
    /// The running node was asked to stop and still holds the profile.
    #[error("the running node did not stop within {} s; stop it, then try again", STOP_WAIT.as_secs())]
    StillRunning,
}

/// How long [`Device::stop_running`] waits for a running node to let go of
/// its profile.
pub const STOP_WAIT: Duration = Duration::from_secs(30);

/// How long, at most, a client waits for a node that says it is starting
/// on its profile ([`starting`]) and does not answer on the control
/// socket yet: one binds its socket only after its transports started.
/// One still starting after this (its start hangs) is said to be in use.
pub const START_WAIT: Duration = Duration::from_secs(10);

/// How often a client asks again for a node that is starting.
const START_ASK_EVERY: Duration = Duration::from_millis(100);

/// Asks `ask` whether it reached the profile's node; while it did not and
/// a node says it is starting on the profile
/// ([`starting::node_starting`]), asks again every [`START_ASK_EVERY`]
/// for up to [`START_WAIT`]. Returns whether it reached the node; an
/// error `ask` gives ends it. A profile held with no node starting (by a
/// command's offline node, a process that hangs) is not waited for.
///
/// The marker is looked at before each ask: it goes only once the socket
/// is bound, so a marker gone by then means a node the ask reaches, or
/// none starting. The profile's lock is tested once, and only for a
/// marker that names a running process (which could be another process
/// given the id of one killed while it started): the test takes the lock
/// for a moment, and a `Profile::open` in that moment (a restart of
/// `strand run`) would be told the profile is in use.
async fn while_starting<E, F, Fut>(dir: &Path, mut ask: F) -> Result<bool, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, E>>,
{
    let start = Instant::now();
    let mut held = false;
    loop {
        let node_starting = starting::node_starting(dir);
        if ask().await? {
            return Ok(true);
        }
        if !node_starting || start.elapsed() >= START_WAIT {
            return Ok(false);
        }
        if !held {
            if !Profile::in_use(dir) {
                return Ok(false);
            }
            held = true;
        }
        tokio::time::sleep(START_ASK_EVERY).await;
    }
}

impl Device {
    /// The device of the profile in `dir`: its running node if one
    /// answers on the control socket (waiting for one that is starting,
    /// [`Device::running_or_starting`]); else the profile, unlocked with
    /// the passphrase `passphrase` gives, with a node started offline on
    /// it. A profile held with no node answering is said to be in use
    /// before the passphrase is asked for.
    pub async fn open(
        dir: &Path,
        passphrase: impl FnOnce() -> Result<zeroize::Zeroizing<String>, String>,
    ) -> Result<Device, OpenError> {
        let running = || async {
            Self::running_or_starting(dir)
                .await
                .map_err(OpenError::Control)
        };
        if running().await? {
            return Ok(Device::Running(dir.to_path_buf()));
        }
        if !Profile::exists(dir) {
            return Err(ProfileError::NotFound(dir.to_path_buf()).into());
        }
        if Profile::in_use(dir) {
            return Err(ProfileError::InUse(dir.to_path_buf()).into());
        }
        let pass = passphrase().map_err(OpenError::Passphrase)?;
        let profile = match Profile::open(dir, &pass) {
            Ok(profile) => profile,
            // A node started while the passphrase was asked for: it is
            // reached once it answers.
            Err(e @ ProfileError::InUse(_)) => {
                if running().await? {
                    return Ok(Device::Running(dir.to_path_buf()));
                }
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        let node = Node::start(profile, NodeConfig::offline()).await?;
        Ok(Device::Offline(node))
    }

    /// Whether a node answers on `dir`'s control socket (asked once).
    pub async fn running(dir: &Path) -> std::io::Result<bool> {
        Ok(
            control::request_within(dir, &Request::Status, control::ANSWER_WITHIN)
                .await?
                .is_some(),
        )
    }

    /// Whether a node answers on `dir`'s control socket, waiting for one
    /// that is starting: while none answers and a node says it is
    /// starting on the profile ([`starting`]), it is asked again for up to
    /// [`START_WAIT`]. A node starting (`strand run`, the user service,
    /// the app) holds the profile from the moment it opens it, and binds
    /// its socket only once its transports started, which can take
    /// seconds (Bluetooth over D-Bus); asked once in between, a command
    /// found the profile in use by another process. A profile held by
    /// anything else (a command's offline node) is not waited for: the
    /// answer is `false` at once, and the caller finds the profile in use.
    pub async fn running_or_starting(dir: &Path) -> std::io::Result<bool> {
        while_starting(dir, || Self::running(dir)).await
    }

    /// Stops the node running on the profile in `dir`, if one does, and
    /// waits until it let go of the profile (its lock and its key), so
    /// that this process can open it: `strand wipe` and the app's wipe.
    /// A node that is still starting may not answer yet, so while it
    /// says it is starting ([`starting`]) it is asked again for up to
    /// [`START_WAIT`]. Returns whether a node was stopped.
    pub async fn stop_running(dir: &Path) -> Result<bool, OpenError> {
        let start = Instant::now();
        // A node that does not answer (stopped, stuck), is another
        // user's, or refuses (serving all the connections it can) is said
        // so; one gone between connect and answer is not asked.
        let ask = || async {
            match control::request_within(dir, &Request::Shutdown, control::ANSWER_WITHIN).await {
                Ok(Some(Answer::Error(refused))) => {
                    Err(OpenError::Control(std::io::Error::other(refused)))
                }
                Ok(answer) => Ok(answer.is_some()),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::TimedOut | std::io::ErrorKind::PermissionDenied
                    ) =>
                {
                    Err(OpenError::Control(e))
                }
                Err(_) => Ok(false),
            }
        };
        if !while_starting(dir, ask).await? {
            return Ok(false);
        }
        while Profile::in_use(dir) {
            if start.elapsed() > STOP_WAIT {
                return Err(OpenError::StillRunning);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(true)
    }

    /// Whether a node with transports answers (not one started offline).
    pub fn is_running(&self) -> bool {
        !matches!(self, Device::Offline(_))
    }

    /// Answers one request. A running node is given
    /// [`control::ANSWER_WITHIN`] to answer what it answers at once (its
    /// status, and every read: [`control::may_give_up_on`]), and said not
    /// to answer after that, naming its process; a request that changes
    /// something (a text sent, a contact added, a file sent, an import, a
    /// passphrase change) is waited for as long as it takes, since one
    /// given up on could still be done later. Before, a node stopped with
    /// Ctrl-Z (or stuck) made an app attached to it wait for good on its
    /// next status (asked every few seconds), then on the reads of its
    /// next refresh (the contact list, a conversation's pages), and
    /// everything after them, quitting too.
    pub async fn call(&self, request: Request) -> Result<Reply, Failure> {
        match self {
            Device::Running(dir) => match control::request_or_give_up(dir, &request).await {
                Ok(Some((answer, _))) => answer.into(),
                Ok(None) => Err(Failure::failed(
                    "the running node stopped (start it again, or run the command again)",
                )),
                Err(e) => Err(talking_failed(e)),
            },
            Device::Offline(node) | Device::Local(node) => node.handle(request).await,
        }
    }

    /// The node's events from now on, one at a time, until it stops (an
    /// offline node has no links to hear from, but reports the progress
    /// of what it is asked to do). A running node is given
    /// [`control::ANSWER_WITHIN`] to answer that it follows, as for a
    /// read ([`control::may_give_up_on`]), and said not to answer after
    /// that, as [`Device::call`] says it; its events are then read for as
    /// long as it runs. Before, a node stopped with Ctrl-Z (or stuck)
    /// between the status an app attaching to it asks first and this
    /// follow held the app's core thread, and quitting, for good.
    pub async fn follow(&self) -> Result<Events, Failure> {
        match self {
            Device::Running(dir) => {
                match control::request_or_give_up(dir, &Request::Follow).await {
                    Ok(Some((Answer::Ok(_), reader))) => Ok(Events::Socket {
                        profile: dir.clone(),
                        lines: reader.lines(),
                    }),
                    Ok(Some((Answer::Error(e), _))) => Err(e),
                    Ok(None) => Err(Failure::failed("the running node stopped")),
                    Err(e) => Err(talking_failed(e)),
                }
            }
            Device::Local(node) | Device::Offline(node) => Ok(Events::Local(node.subscribe())),
        }
    }

    /// Lets go of the profile: an offline node stops (what it wrote is
    /// committed); a running one goes on.
    pub async fn close(self) {
        if let Device::Offline(node) = self {
            node.shutdown().await;
        }
    }
}

/// What a client is told when talking to the running node failed. A
/// node that did not answer in time ([`control::request_or_give_up`])
/// is said so with a kind of its own ([`Failure::unanswered`]), in the
/// words of the error: which process did not answer in how long, and
/// what to do.
fn talking_failed(e: std::io::Error) -> Failure {
    if e.kind() == std::io::ErrorKind::TimedOut {
        Failure::unanswered(e)
    } else {
        Failure::failed(format!("talking to the running node: {e}"))
    }
}

/// A device's events ([`Device::follow`]).
pub enum Events {
    /// Lines from a running node's control socket.
    Socket {
        /// The profile the node runs, to follow it again.
        profile: PathBuf,
        /// What it sends.
        lines: tokio::io::Lines<tokio::io::BufReader<tokio::net::unix::OwnedReadHalf>>,
    },
    /// A node in this process.
    Local(tokio::sync::broadcast::Receiver<NodeEvent>),
}

impl Events {
    /// The next event; `None` once the node stopped. Events dropped for a
    /// slow listener come as one [`NodeEvent::Missed`]. Cancel-safe: in a
    /// `select!` or under a timeout, nothing is lost.
    pub async fn next(&mut self) -> Option<NodeEvent> {
        match self {
            Events::Socket { profile, lines } => loop {
                match lines.next_line().await {
                    Ok(Some(line)) => {
                        if let Ok(e) = serde_json::from_str(&line) {
                            return Some(e);
                        }
                    }
                    // The node hung up: it stopped, or it let go of this
                    // follower for leaving its events unread a minute (a
                    // terminal scrolled back, a suspended `strand`). If
                    // it still runs, it is followed again, and what was
                    // missed meanwhile is said (`count` 0: not known).
                    Ok(None) | Err(_) => loop {
                        /// How often a node that is serving all the
                        /// connections it can is asked again.
                        const ASK_AGAIN_EVERY: Duration = Duration::from_secs(1);
                        // Waited for as long as it takes, as the events
                        // are (only their reader waits on it): a node
                        // stopped meanwhile is followed again once it
                        // goes on.
                        match control::request(profile, &Request::Follow).await {
                            Ok(Some((Answer::Ok(_), reader))) => {
                                *lines = reader.lines();
                                return Some(NodeEvent::Missed { count: 0 });
                            }
                            // Refused: it serves all the connections it
                            // can (commands, followers), so it still runs,
                            // and is asked again until one ends. Before,
                            // that read as the node having stopped
                            // (`strand read --follow` ended, the app said
                            // the node stopped).
                            Ok(Some((Answer::Error(e), _)))
                                if e.kind == super::api::FailureKind::Refused =>
                            {
                                tokio::time::sleep(ASK_AGAIN_EVERY).await;
                            }
                            _ => return None,
                        }
                    },
                }
            },
            Events::Local(rx) => match rx.recv().await {
                Ok(e) => Some(e),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(count)) => {
                    Some(NodeEvent::Missed { count })
                }
                Err(_) => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::runtime::api::{FailureKind, Target, TimerSetting};
    use crate::runtime::starting::{Starting, MARKER};

    /// Asks as [`while_starting`] would, never reaching a node, and
    /// counts the asks; `reached_on`: the ask that reaches one.
    async fn asks(dir: &Path, reached_on: Option<u32>) -> (bool, u32) {
        let asked = Cell::new(0);
        let reached = while_starting(dir, || {
            asked.set(asked.get() + 1);
            std::future::ready(Ok::<bool, ()>(Some(asked.get()) == reached_on))
        })
        .await
        .unwrap();
        (reached, asked.get())
    }

    /// Regression: a profile held by something that never binds a
    /// socket (another command's offline node, a process that hangs) was
    /// asked again every 100 ms for 10 s before it was said to be in use,
    /// and the app waited as long at launch. With no node saying it is
    /// starting, it is asked once. (Fails before: asked about 100 times.)
    #[tokio::test]
    async fn a_held_profile_with_no_node_starting_is_asked_once() {
        let tmp = tempfile::tempdir().unwrap();
        let (_held, _, _) = crate::profile::alice_with_bob(tmp.path());
        assert!(Profile::in_use(tmp.path()));
        assert_eq!(asks(tmp.path(), None).await, (false, 1));
    }

    /// A marker left by a process that is gone (killed while its node
    /// started) is ignored: the held profile is asked once. One naming a
    /// process that runs is waited for, until the node answers.
    #[tokio::test]
    async fn a_marker_of_a_process_that_is_gone_is_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let (held, _, _) = crate::profile::alice_with_bob(tmp.path());
        // A process that ran and was reaped: its id names none now.
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let pid = gone.id();
        assert!(gone.wait().unwrap().success());
        std::fs::write(tmp.path().join(MARKER), format!("{pid}\n")).unwrap();
        assert!(!starting::node_starting(tmp.path()));
        assert_eq!(asks(tmp.path(), None).await, (false, 1));

        // This process's marker (it runs): asked again until the third
        // ask reaches the node.
        let marked = Starting::mark(&held);
        assert!(starting::node_starting(tmp.path()));
        assert_eq!(asks(tmp.path(), Some(3)).await, (true, 3));
        drop(marked);
        assert_eq!(asks(tmp.path(), None).await, (false, 1));
    }

    /// A running node that does not answer its status (stopped with
    /// Ctrl-Z, or stuck) is said not to answer, naming its process, after
    /// [`control::ANSWER_WITHIN`]: before, an app attached to it waited
    /// for good on the status it asks every few seconds, and so did
    /// everything after it (quitting too). The node is played by a socket
    /// of this process's that is never accepted: connecting to it works
    /// (the connection waits in its backlog), and no answer comes. Time
    /// is paused, and goes on whenever nothing is left to do. Fails with
    /// [`Device::call`] asking through `control::request` for every
    /// request (no bound): the outer timeout then runs out.
    #[tokio::test(start_paused = true)]
    async fn a_running_node_that_does_not_answer_its_status_is_said_so() {
        let tmp = tempfile::tempdir().unwrap();
        let _node =
            std::os::unix::net::UnixListener::bind(control::socket_path(tmp.path())).unwrap();
        let device = Device::Running(tmp.path().to_path_buf());
        let asked =
            tokio::time::timeout(2 * control::ANSWER_WITHIN, device.call(Request::Status)).await;
        let failure = asked.expect("answered within the bound").unwrap_err();
        assert!(
            failure.message.contains(&format!(
                "did not answer within {} s",
                control::ANSWER_WITHIN.as_secs()
            )),
            "{failure:?}"
        );
        // The socket's process: this one, which made it listen.
        assert!(
            failure
                .message
                .contains(&format!("(process {})", std::process::id())),
            "{failure:?}"
        );
    }

    /// Requests an app attached to a running node makes at every
    /// refresh: the open conversation's timer, positions and a page of it,
    /// the mark of what it showed, the contact and group lists, the
    /// preferences.
    fn refresh_reads() -> Vec<Request> {
        let of = Target::Contact("Bob".into());
        vec![
            Request::Page {
                of: of.clone(),
                from: crate::Position::MIN,
                limit: 50,
            },
            Request::Positions { of: of.clone() },
            Request::MarkRead {
                of: of.clone(),
                up_to: crate::Position::MIN,
            },
            Request::Timer { of, set: None },
            Request::Summaries,
            Request::Contacts,
            Request::GroupSummaries,
            Request::Preferences { set: Vec::new() },
        ]
    }

    /// A running node that does not answer a read (stopped with Ctrl-Z,
    /// or stuck) is said not to answer, naming its process, after
    /// [`control::ANSWER_WITHIN`], as it is for its status: before, only
    /// the status was given up on, and an app attached to the node waited
    /// for good on the other reads of its refresh (a conversation's
    /// positions and pages, the contact list), and so did its window and
    /// quitting. The same holds for the mark of what a refresh showed
    /// ([`Request::MarkRead`]), which only moves forward and is asked
    /// again at the next refresh. The node is played as in
    /// [`a_running_node_that_does_not_answer_its_status_is_said_so`], and
    /// time is paused the same way. Fails with [`Device::call`] bounding
    /// only what [`control::reserved_for`] lets through (its
    /// `control::may_give_up_on` made `control::reserved_for`): the outer
    /// timeout then runs out on the first read, the page. Fails on the
    /// mark with `Request::MarkRead` among the writes of
    /// `control::may_give_up_on`, as it was.
    #[tokio::test(start_paused = true)]
    async fn a_running_node_that_does_not_answer_a_read_is_said_so() {
        let tmp = tempfile::tempdir().unwrap();
        let _node =
            std::os::unix::net::UnixListener::bind(control::socket_path(tmp.path())).unwrap();
        let device = Device::Running(tmp.path().to_path_buf());
        for read in refresh_reads() {
            let asked =
                tokio::time::timeout(2 * control::ANSWER_WITHIN, device.call(read.clone())).await;
            let Ok(answered) = asked else {
                panic!("{read:?} was waited for past the bound");
            };
            let failure = answered.unwrap_err();
            // What the app gives up on the rest of a job with.
            assert_eq!(failure.kind, FailureKind::Unanswered, "{read:?}");
            assert!(
                failure.message.contains(&format!(
                    "did not answer within {} s",
                    control::ANSWER_WITHIN.as_secs()
                )),
                "{read:?}: {failure:?}"
            );
            assert!(
                failure
                    .message
                    .contains(&format!("(process {})", std::process::id())),
                "{read:?}: {failure:?}"
            );
        }
    }

    /// A node, played on this runtime on `profile`'s socket, that
    /// answers its status and then nothing more, as one stopped with
    /// Ctrl-Z (or stuck) right after it answered: it answers every
    /// status with one of its own, and takes every other request (the
    /// follow an app attaching to it asks next) without ever answering
    /// it or hanging up.
    fn node_that_answers_only_its_status(profile: &Path) {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::UnixListener::bind(control::socket_path(profile)).unwrap();
        let status: crate::Status = serde_json::from_value(serde_json::json!({
            "name": "Ann",
            "profile": profile,
            "transports": [],
            "seen": [],
            "links": 0,
            "sessions": 0,
            "bytes_sent": 0,
            "bytes_received": 0,
            "messages": 0,
            "running": true,
        }))
        .unwrap();
        tokio::spawn(async move {
            let mut unanswered = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                let (asked, mut answering) = stream.into_split();
                let mut asked = tokio::io::BufReader::new(asked);
                let mut line = String::new();
                if asked.read_line(&mut line).await.is_err() {
                    continue;
                }
                if let Ok(Request::Status) = serde_json::from_str::<Request>(&line) {
                    let answer = Answer::Ok(Reply::Status(Box::new(status.clone())));
                    let mut line = serde_json::to_vec(&answer).unwrap();
                    line.push(b'\n');
                    let _ = answering.write_all(&line).await;
                } else {
                    unanswered.push((asked, answering));
                }
            }
        });
    }

    /// Regression: a running node that answered its status and then did
    /// not answer the follow asked next (stopped with Ctrl-Z, or stuck,
    /// in between) was waited for without bound: an app attaching to it
    /// held its core thread, and quitting, for good. The follow's answer
    /// is now given up on after [`control::ANSWER_WITHIN`] as a read's
    /// is, with the same kind and words. Time is paused as in
    /// [`a_running_node_that_does_not_answer_its_status_is_said_so`]; the
    /// node is played on the test's runtime, so time goes on only once
    /// nothing is left to do, the status answered. Fails with
    /// `Request::Follow` back among the requests
    /// `control::may_give_up_on` waits for (`false`): the outer timeout
    /// then runs out on the follow.
    #[tokio::test(start_paused = true)]
    async fn a_running_node_that_does_not_answer_a_follow_is_said_so() {
        let tmp = tempfile::tempdir().unwrap();
        node_that_answers_only_its_status(tmp.path());
        assert!(
            Device::running(tmp.path()).await.unwrap(),
            "the node answers its status"
        );
        let device = Device::Running(tmp.path().to_path_buf());
        let asked = tokio::time::timeout(2 * control::ANSWER_WITHIN, device.follow()).await;
        let Ok(followed) = asked else {
            panic!("the follow was waited for past the bound");
        };
        let Err(failure) = followed else {
            panic!("followed a node that did not answer");
        };
        // What the app gives up on the rest of a job with.
        assert_eq!(failure.kind, FailureKind::Unanswered, "{failure:?}");
        assert!(
            failure.message.contains(&format!(
                "did not answer within {} s",
                control::ANSWER_WITHIN.as_secs()
            )),
            "{failure:?}"
        );
        assert!(
            failure
                .message
                .contains(&format!("(process {})", std::process::id())),
            "{failure:?}"
        );
    }

    /// A request that changes something is waited for however long the
    /// node takes, as it was: given up on, it could still be done once a
    /// stopped node goes on, after the user was told it failed (a text
    /// sent again would then be sent twice). Its read-only forms are
    /// given up on ([`a_running_node_that_does_not_answer_a_read_is_said_so`]),
    /// so this keeps [`control::may_give_up_on`] from taking writes for
    /// reads: it fails if one of these is given up on (the outer timeout
    /// is then not reached).
    #[tokio::test(start_paused = true)]
    async fn a_write_to_a_running_node_is_waited_for() {
        let tmp = tempfile::tempdir().unwrap();
        let _node =
            std::os::unix::net::UnixListener::bind(control::socket_path(tmp.path())).unwrap();
        let device = Device::Running(tmp.path().to_path_buf());
        let of = Target::Contact("Bob".into());
        let writes = [
            Request::Send {
                to: of.clone(),
                text: "hi".into(),
            },
            Request::Timer {
                of,
                set: Some(TimerSetting::Off),
            },
            Request::Preferences {
                set: vec![crate::profile::prefs::PreferenceChange::ShowText { on: false }],
            },
        ];
        for write in writes {
            let asked =
                tokio::time::timeout(2 * control::ANSWER_WITHIN, device.call(write.clone())).await;
            assert!(asked.is_err(), "{write:?} was given up on: {asked:?}");
        }
    }
}
