//! The local control socket: how `strand send`, `read`, `status` and the
//! rest talk to a running `strand run`.
//!
//! A Unix socket `control.sock` in the profile directory, mode 0600 from
//! the moment it exists (the profile directory is 0700 as well), and the
//! node serves only processes of its own user, checked with `SO_PEERCRED`
//! on every connection, so a loosened permission does not open it. One JSON object per line each way: a [`Request`], then one
//! [`Response`] (or, for `follow`, a stream of [`crate::NodeEvent`] lines).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::{hex, Node};

/// File name of the control socket in a profile directory.
pub const SOCKET: &str = "control.sock";

/// Longest request line accepted (a message of 1 MiB, JSON-escaped).
const MAX_REQUEST: usize = 8 * 1024 * 1024;

/// A request to the running node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Send a text.
    Send {
        /// Contact name.
        contact: String,
        /// Text.
        text: String,
    },
    /// One page of the conversation with a contact, in the order shown
    /// (see [`crate::Position`]): at most `limit` messages (default and
    /// most [`READ_PAGE`]) from `from` on (the `next` of the previous page;
    /// the start if absent). What it returns is marked read.
    Read {
        /// Contact name.
        contact: String,
        /// Where the page starts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<Cursor>,
        /// Most messages in the page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
    },
    /// Stream node events.
    Follow,
    /// The contacts.
    Contacts,
    /// Node status.
    Status,
    /// Add a contact.
    Add {
        /// Invite code.
        code: String,
        /// Name to give them.
        name: String,
    },
    /// This profile's invite.
    Invite,
    /// The relays and the reservations on them.
    Relays,
    /// Add a relay to the profile.
    RelayAdd {
        /// Its multiaddr, ending in `/p2p/<relay id>`.
        address: String,
    },
    /// Remove a relay from the profile.
    RelayRemove {
        /// Its multiaddr.
        address: String,
    },
    /// Stop the node (it answers first): `strand wipe` uses it.
    Shutdown,
    /// The mailbox (PROTOCOL.md §17.1): with `init`, make this profile the
    /// mailbox of the owner whose invite that is; with `add`, pair the
    /// mailbox whose code that is. Answers a [`MailboxView`].
    Mailbox {
        /// The owner's invite code.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        init: Option<String>,
        /// The mailbox's code.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        add: Option<String>,
    },
    /// Carrying for contacts: with `set`, start or stop first. Answers a
    /// [`crate::CarryStatus`].
    Carry {
        /// On or off.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        set: Option<bool>,
    },
    /// A conversation's disappearing-message timer; with `set`, set it
    /// first (`off`, or such as `5m`, `1h`, `1d`, `1w`, `1y`).
    Timer {
        /// Contact name, or group name if `group`.
        conversation: String,
        /// `conversation` names a group.
        #[serde(default)]
        group: bool,
        /// The new timer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        set: Option<String>,
    },
    /// Send a file to a contact or a group.
    SendFile {
        /// Contact name, or group name if `group`.
        conversation: String,
        /// `conversation` names a group.
        #[serde(default)]
        group: bool,
        /// The file's path (as the node's process sees it).
        path: String,
    },
    /// Put together a received file and write it into a folder.
    Save {
        /// The file message's id (at least 8 hex digits).
        id: String,
        /// The folder.
        dir: String,
    },
    /// Write a bundle for a removable drive: everything shared with a
    /// contact, sealed for them, into a new file.
    Export {
        /// Contact name.
        contact: String,
        /// The new file's path (as the node's process sees it).
        to: String,
    },
    /// Take in a bundle a contact made for this user.
    Import {
        /// The bundle's path (as the node's process sees it).
        path: String,
    },
    /// Every private group.
    Groups,
    /// Create a private group with these contacts.
    GroupCreate {
        /// Its name.
        name: String,
        /// Contact names.
        with: Vec<String>,
    },
    /// A group's members.
    GroupMembers {
        /// Group name (or id prefix).
        group: String,
    },
    /// Change a group: `add` a contact, `remove` a member, `admin` (make a
    /// member an admin), or `leave`.
    GroupChange {
        /// Group name (or id prefix).
        group: String,
        /// `add`, `remove`, `admin` or `leave`.
        action: String,
        /// The contact or member (not for `leave`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        member: Option<String>,
    },
    /// Send a text to a group.
    GroupSend {
        /// Group name (or id prefix).
        group: String,
        /// Text.
        text: String,
    },
    /// A group's conversation (all of it), marked read.
    GroupRead {
        /// Group name (or id prefix).
        group: String,
    },
    /// A contact's safety number; with `verified`, mark them verified or
    /// not.
    Verify {
        /// Contact name.
        contact: String,
        /// `Some(true)`: the user compared the numbers and they match.
        verified: Option<bool>,
    },
}

/// A message as the control socket shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageView {
    /// The author's timestamp, ms since the Unix epoch.
    pub time: u64,
    /// When it is shown (its place in the conversation): `time`, unless it
    /// claimed to be no newer than what the user had read or written, and
    /// then when it arrived.
    #[serde(default)]
    pub shown: u64,
    /// When this device stored it, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<u64>,
    /// Message id, hex.
    pub id: String,
    /// Who wrote it: "me" or the contact's name.
    pub from: String,
    /// The text.
    pub text: String,
    /// Outgoing messages: queued, sent or delivered.
    pub delivery: Option<String>,
    /// When it disappears (ms since the Unix epoch), if written under a
    /// timer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// For a file: what it is and how much of it is here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileView>,
}

/// A file message as the control socket shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileView {
    /// Its name, as its sender gave it.
    pub name: String,
    /// Its media type, or empty.
    pub mime: String,
    /// Bytes.
    pub size: u64,
    /// Parts held here.
    pub have: usize,
    /// Parts in all.
    pub total: usize,
}

impl FileView {
    fn of(f: &crate::FileInfo) -> Self {
        FileView {
            name: f.name.clone(),
            mime: f.mime.clone(),
            size: f.size,
            have: f.have,
            total: f.total,
        }
    }
}

/// Most messages in one page of [`Request::Read`]: a long conversation
/// crosses the socket a page at a time, so neither side holds it whole.
pub const READ_PAGE: usize = 500;

/// Where a page of a conversation starts: a message's place (shown at,
/// time, id in hex).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Cursor {
    /// When the message is shown, ms since the Unix epoch (absent: `time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown: Option<u64>,
    /// The author's timestamp, ms since the Unix epoch.
    pub time: u64,
    /// Message id, hex.
    pub id: String,
}

/// A page of a conversation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReadPage {
    /// Oldest first.
    pub messages: Vec<MessageView>,
    /// Where the next page starts; `None` after the last.
    pub next: Option<Cursor>,
}

/// A contact as the control socket shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContactView {
    /// Name.
    pub name: String,
    /// Signing key, hex.
    pub key: String,
    /// Whether the user confirmed the safety number with them.
    #[serde(default)]
    pub verified: bool,
    /// Added from a version 1 invite, which could not prove that its keys
    /// belong together: only the safety number can.
    #[serde(default)]
    pub legacy: bool,
    /// A mailbox: it carries sealed messages and reads nothing.
    #[serde(default)]
    pub mailbox: bool,
    /// Another contact (or you) whose name looks like this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookalike: Option<String>,
}

impl ContactView {
    /// The view of a contact record of `p`.
    pub fn of(p: &crate::Profile, c: &crate::ContactRecord) -> Self {
        ContactView {
            name: c.name.clone(),
            key: hex(&c.public.sign),
            verified: c.verified,
            legacy: c.legacy,
            mailbox: c.mailbox,
            lookalike: p.lookalike(&c.name),
        }
    }
}

/// A group as the control socket shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupView {
    /// Name.
    pub name: String,
    /// First 8 hex digits of its id.
    pub id: String,
    /// Members of its newest epoch this device knows.
    pub members: usize,
    /// Still a member.
    pub member: bool,
    /// Why the device cannot write to it now, if it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
    /// May add and remove members.
    pub admin: bool,
    /// Unread texts.
    pub unread: u32,
}

impl GroupView {
    /// The view of a group summary.
    pub fn of(g: &crate::GroupSummary) -> Self {
        GroupView {
            name: g.name.clone(),
            id: g.id.clone(),
            members: g.members,
            member: g.member,
            blocked: g.blocked.clone(),
            admin: g.admin,
            unread: g.unread,
        }
    }
}

/// A group text as the control socket shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupMessageView {
    /// The message (`from` is the author, as the member list names them).
    #[serde(flatten)]
    pub message: MessageView,
    /// Whether `from` is the user's own name for the author (themselves
    /// or a contact), not one another member gave.
    pub verified: bool,
    /// Written, by its own time, after its author was removed or left.
    #[serde(default)]
    pub late: bool,
}

impl GroupMessageView {
    /// The view of a group text.
    pub fn of(m: &crate::GroupMessage) -> Self {
        let s = &m.message;
        GroupMessageView {
            message: MessageView {
                time: s.key.time,
                shown: s.shown,
                received: s.received,
                id: hex(&s.key.id.0),
                from: m.author.clone(),
                text: s.text.clone(),
                delivery: s.delivery.map(|d| d.as_str().to_owned()),
                expires: s.expires,
                file: s.file.as_ref().map(FileView::of),
            },
            verified: m.verified,
            late: m.late,
        }
    }
}

/// A contact's safety number, as the control socket shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SafetyView {
    /// The contact.
    pub contact: ContactView,
    /// 12 groups of 5 digits, space-separated.
    pub safety_number: String,
    /// What its QR code holds.
    pub qr: String,
}

/// `contact`'s safety number, after marking them verified or not if
/// `verified` says.
pub fn verify(
    p: &crate::Profile,
    contact: &str,
    verified: Option<bool>,
) -> Result<SafetyView, crate::ProfileError> {
    let c = match verified {
        Some(v) => p.set_verified(contact, v, &mut crate::os_rng())?,
        None => p.contact(contact)?,
    };
    let n = p.safety_number(&c);
    Ok(SafetyView {
        contact: ContactView::of(p, &c),
        safety_number: n.to_string(),
        qr: n.qr_payload(),
    })
}

/// The answer to a request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    /// Whether it worked.
    pub ok: bool,
    /// What went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl Response {
    fn ok(data: impl Serialize) -> Self {
        Response {
            ok: true,
            error: None,
            data: Some(serde_json::to_value(data).expect("serialisable")),
        }
    }
    /// An error and its sources, as one line.
    fn err(e: &dyn std::error::Error) -> Self {
        Response::refuse(crate::runtime::chain(e))
    }

    fn refuse(why: impl std::fmt::Display) -> Self {
        Response {
            ok: false,
            error: Some(why.to_string()),
            data: None,
        }
    }
}

/// The socket path for a profile.
pub fn socket_path(profile: &Path) -> PathBuf {
    profile.join(SOCKET)
}

/// Binds the control socket at `path` with no moment in which anyone else
/// could connect: the socket is made inside a fresh directory only this
/// user can enter, given mode 0600 there, then renamed into place. (A
/// umask would do it too, but the umask is the whole process's.) Returns
/// the listener and the uid that owns the socket: this process's.
fn bind_private(path: &Path) -> std::io::Result<(UnixListener, u32)> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let parent = path.parent().unwrap_or(Path::new("."));
    let mut nonce = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut crate::os_rng(), &mut nonce);
    let private = parent.join(format!(".control-{}", hex(&nonce)));
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let made = (|| {
        let inner = private.join(SOCKET);
        let listener = UnixListener::bind(&inner)?;
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o600))?;
        let uid = std::fs::symlink_metadata(&inner)?.uid();
        std::fs::rename(&inner, path)?;
        Ok((listener, uid))
    })();
    let _ = std::fs::remove_dir_all(&private);
    made
}

/// Serves the control socket until the task is dropped, or returns
/// `Ok(())` once a client asked for [`Request::Shutdown`] (and was
/// answered). Only processes of the user who runs the node are served
/// (`SO_PEERCRED`), whatever the file's permissions.
pub async fn serve(node: Node, profile: &Path) -> std::io::Result<()> {
    let path = socket_path(profile);
    // We hold the profile's lock, so a socket file left here is stale.
    let _ = std::fs::remove_file(&path);
    let (listener, owner) = bind_private(&path)?;
    let stop = tokio_util::sync::CancellationToken::new();
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = stop.cancelled() => return Ok(()),
        };
        let node = node.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            match stream.peer_cred().map(|c| c.uid()) {
                Ok(uid) if uid == owner => {
                    if let Err(e) = handle(node, stream, stop).await {
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
    let response = Response::refuse("this node serves only the user who runs it");
    send(&mut stream, &response).await?;
    stream.shutdown().await
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

async fn handle(
    node: Node,
    stream: UnixStream,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd).take(MAX_REQUEST as u64);
    let mut line = String::new();
    rd.read_line(&mut line).await?;
    let response = match serde_json::from_str::<Request>(&line) {
        Err(e) => Response::refuse(format!("bad request: {e}")),
        Ok(Request::Follow) => {
            let mut events = node.subscribe();
            wr.write_all(b"{\"ok\":true}\n").await?;
            loop {
                match events.recv().await {
                    Ok(e) => send(&mut wr, &e).await?,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return Ok(()),
                }
            }
        }
        Ok(Request::Shutdown) => {
            wr.write_all(b"{\"ok\":true}\n").await?;
            stop.cancel();
            return Ok(());
        }
        Ok(request) => answer(&node, request).await,
    };
    send(&mut wr, &response).await
}

async fn answer(node: &Node, request: Request) -> Response {
    match request {
        Request::Send { contact, text } => match node.send(&contact, &text).await {
            Ok(key) => Response::ok(serde_json::json!({ "id": hex(&key.id.0), "time": key.time })),
            Err(e) => Response::err(&e),
        },
        Request::Read {
            contact,
            from,
            limit,
        } => {
            // Reads and a read mark (a write): off the async workers.
            let p = node.profile().clone();
            let page =
                tokio::task::spawn_blocking(move || read_page(&p, &contact, from.as_ref(), limit))
                    .await
                    .unwrap_or_else(|e| Err(format!("reading failed: {e}")));
            match page {
                Ok(v) => Response::ok(v),
                Err(e) => Response::refuse(e),
            }
        }
        Request::Contacts => Response::ok(contacts(node.profile())),
        Request::Mailbox { init, add } => {
            let done = match (init, add) {
                (Some(code), _) => node.become_mailbox(&code).await.map(|_| ()),
                (None, Some(code)) => node.pair_mailbox(&code).await.map(|_| ()),
                (None, None) => Ok(()),
            };
            match done.and_then(|()| mailbox_view(node.profile())) {
                Ok(v) => Response::ok(v),
                Err(e) => Response::err(&e),
            }
        }
        Request::Carry { set } => match set {
            Some(on) => match node.set_carrying(on).await {
                Ok(s) => Response::ok(s),
                Err(e) => Response::err(&e),
            },
            None => Response::ok(node.carry_status()),
        },
        Request::Timer {
            conversation,
            group,
            set,
        } => {
            if let Some(set) = set {
                let lasts = match crate::parse_timer(&set) {
                    Ok(l) => l,
                    Err(e) => return Response::refuse(e),
                };
                if let Err(e) = node.set_timer(&conversation, group, lasts).await {
                    return Response::err(&e);
                }
            }
            let p = node.profile();
            let timer = if group {
                p.group_timer(&conversation)
            } else {
                p.timer(&conversation)
            };
            match timer {
                Ok(t) => Response::ok(serde_json::json!({
                    "ms": t.unwrap_or(0),
                    "label": crate::timer_label(t),
                })),
                Err(e) => Response::err(&e),
            }
        }
        Request::SendFile {
            conversation,
            group,
            path,
        } => {
            let to = if group {
                crate::Conversation::Group(&conversation)
            } else {
                crate::Conversation::Contact(&conversation)
            };
            match node.send_file(to, std::path::Path::new(&path)).await {
                Ok(key) => {
                    Response::ok(serde_json::json!({ "id": hex(&key.id.0), "time": key.time }))
                }
                Err(e) => Response::err(&e),
            }
        }
        Request::Save { id, dir } => {
            let p = node.profile().clone();
            let saved =
                tokio::task::spawn_blocking(move || p.save_file(&id, std::path::Path::new(&dir)))
                    .await;
            match saved {
                Ok(Ok(path)) => Response::ok(path.display().to_string()),
                Ok(Err(e)) => Response::err(&e),
                Err(e) => Response::refuse(format!("saving failed: {e}")),
            }
        }
        Request::Export { contact, to } => {
            match node
                .export_bundle(&contact, std::path::Path::new(&to))
                .await
            {
                Ok(e) => Response::ok(e),
                Err(e) => Response::err(&e),
            }
        }
        Request::Import { path } => match node.import_bundle(std::path::Path::new(&path)).await {
            Ok(i) => Response::ok(i),
            Err(e) => Response::err(&e),
        },
        Request::Groups => match node.profile().groups() {
            Ok(groups) => Response::ok(groups.iter().map(GroupView::of).collect::<Vec<_>>()),
            Err(e) => Response::err(&e),
        },
        Request::GroupCreate { name, with } => match node.create_group(&name, &with).await {
            Ok(()) => Response::ok(serde_json::json!({ "name": name })),
            Err(e) => Response::err(&e),
        },
        Request::GroupMembers { group } => match node.profile().group_members(&group) {
            Ok(members) => Response::ok(members),
            Err(e) => Response::err(&e),
        },
        Request::GroupChange {
            group,
            action,
            member,
        } => {
            let action = match (action.as_str(), member) {
                ("add", Some(m)) => crate::GroupAction::Add(m),
                ("remove", Some(m)) => crate::GroupAction::Remove(m),
                ("admin", Some(m)) => crate::GroupAction::MakeAdmin(m),
                ("leave", None) => crate::GroupAction::Leave,
                (a @ ("add" | "remove" | "admin"), None) => {
                    return Response::refuse(format!("{a} needs a member"))
                }
                ("leave", Some(_)) => return Response::refuse("leave takes no member"),
                (other, _) => {
                    return Response::refuse(format!(
                        "unknown group action {other:?}: add, remove, admin or leave"
                    ))
                }
            };
            match node.change_group(&group, action).await {
                Ok(()) => Response::ok(serde_json::json!({ "group": group })),
                Err(e) => Response::err(&e),
            }
        }
        Request::GroupSend { group, text } => match node.send_group(&group, &text).await {
            Ok(key) => Response::ok(serde_json::json!({ "id": hex(&key.id.0), "time": key.time })),
            Err(e) => Response::err(&e),
        },
        Request::GroupRead { group } => {
            let p = node.profile().clone();
            let read = tokio::task::spawn_blocking(move || {
                let messages = p.group_conversation(&group)?;
                p.mark_group_read(&group)?;
                Ok::<_, crate::ProfileError>(messages)
            })
            .await;
            match read {
                Ok(Ok(messages)) => Response::ok(
                    messages
                        .iter()
                        .map(GroupMessageView::of)
                        .collect::<Vec<_>>(),
                ),
                Ok(Err(e)) => Response::err(&e),
                Err(e) => Response::refuse(format!("reading failed: {e}")),
            }
        }
        Request::Status => Response::ok(node.status().await),
        Request::Add { code, name } => match node.add_contact(&code, &name).await {
            Ok(c) => Response::ok(ContactView::of(node.profile(), &c)),
            Err(e) => Response::err(&e),
        },
        Request::Invite => match node.profile().invite() {
            Ok(i) => Response::ok(i.to_text()),
            Err(e) => Response::err(&e),
        },
        Request::Relays => Response::ok(node.relays().await),
        Request::RelayAdd { address } => match node.add_relay(&address).await {
            Ok(c) => Response::ok(c.address),
            Err(e) => Response::err(&e),
        },
        Request::RelayRemove { address } => match node.remove_relay(&address).await {
            Ok(Some(c)) => Response::ok(c.address),
            Ok(None) => Response::refuse(format!("{} is not in the relay list", address.trim())),
            Err(e) => Response::err(&e),
        },
        Request::Verify { contact, verified } => match verify(node.profile(), &contact, verified) {
            Ok(v) => Response::ok(v),
            Err(e) => Response::err(&e),
        },
        Request::Follow | Request::Shutdown => Response::refuse("handled above"),
    }
}

fn view(contact: &str, m: crate::StoredMessage) -> MessageView {
    MessageView {
        time: m.key.time,
        shown: m.shown,
        received: m.received,
        id: hex(&m.key.id.0),
        from: if m.outgoing {
            "me".to_owned()
        } else {
            contact.to_owned()
        },
        text: m.text,
        delivery: m.delivery.map(|d| d.as_str().to_owned()),
        expires: m.expires,
        file: m.file.as_ref().map(FileView::of),
    }
}

/// The whole conversation as [`MessageView`]s (small ones: the demo).
pub fn conversation(
    p: &crate::Profile,
    contact: &str,
) -> Result<Vec<MessageView>, crate::ProfileError> {
    Ok(p.conversation(contact)?
        .into_iter()
        .map(|m| view(contact, m))
        .collect())
}

/// One page of the conversation with `contact` (see [`Request::Read`]),
/// marked read: it is being shown. Errors are for people: an unknown
/// contact, a bad cursor.
pub fn read_page(
    p: &crate::Profile,
    contact: &str,
    from: Option<&Cursor>,
    limit: Option<usize>,
) -> Result<ReadPage, String> {
    let limit = limit.unwrap_or(READ_PAGE).clamp(1, READ_PAGE);
    let start = match from {
        None => crate::Position::MIN,
        Some(c) => crate::Position {
            shown: c.shown.unwrap_or(c.time),
            key: strand_sync::Key {
                time: c.time,
                id: strand_sync::MessageId(
                    unhex32(&c.id)
                        .ok_or_else(|| format!("bad cursor: {:?} is not a message id", c.id))?,
                ),
            },
        },
    };
    let mut page = p
        .conversation_page(contact, &start, limit + 1)
        .map_err(|e| e.to_string())?;
    let next = (page.len() > limit).then(|| {
        let m = page.pop().expect("limit + 1 messages");
        Cursor {
            shown: Some(m.shown),
            time: m.key.time,
            id: hex(&m.key.id.0),
        }
    });
    if let Some(last) = page.last() {
        p.mark_read(contact, &last.position())
            .map_err(|e| e.to_string())?;
    }
    Ok(ReadPage {
        messages: page.into_iter().map(|m| view(contact, m)).collect(),
        next,
    })
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The mailbox pairing, as `strand mailbox` shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MailboxView {
    /// Whose mailbox this profile is (their contact name).
    pub owner: Option<String>,
    /// This profile's mailbox (its contact name).
    pub mailbox: Option<String>,
    /// On a mailbox, the code that pairs it on its owner's device;
    /// otherwise this profile's invite.
    pub code: String,
}

/// The mailbox pairing of `p`.
pub fn mailbox_view(p: &crate::Profile) -> Result<MailboxView, crate::ProfileError> {
    let mailbox = p.mailbox()?.and_then(|m| {
        p.contacts()
            .into_iter()
            .find(|c| c.public == m.public)
            .map(|c| c.name)
    });
    Ok(MailboxView {
        owner: p.mailbox_of()?.map(|o| o.name),
        mailbox,
        code: match p.mailbox_code()? {
            Some(code) => code,
            None => p.invite()?.to_text(),
        },
    })
}

/// The contacts as [`ContactView`]s.
pub fn contacts(p: &crate::Profile) -> Vec<ContactView> {
    p.contacts().iter().map(|c| ContactView::of(p, c)).collect()
}

/// Sends one request to a running node. `Ok(None)` if no node answers on
/// this profile's socket.
pub async fn request(
    profile: &Path,
    request: &Request,
) -> std::io::Result<Option<(Response, BufReader<tokio::net::unix::OwnedReadHalf>)>> {
    let Ok(stream) = UnixStream::connect(socket_path(profile)).await else {
        return Ok(None);
    };
    let (rd, mut wr) = stream.into_split();
    let mut line = serde_json::to_vec(request).expect("serialisable");
    line.push(b'\n');
    wr.write_all(&line).await?;
    let mut rd = BufReader::new(rd);
    let mut answer = String::new();
    rd.read_line(&mut answer).await?;
    let response = serde_json::from_str(&answer)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok(Some((response, rd)))
}
