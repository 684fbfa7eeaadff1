//! Every command a device takes, implemented once: [`Node::handle`]. A
//! running node answers its control socket with it; the CLI and the app
//! call it on a node they started for the purpose when none runs
//! ([`super::device::Device`]). So no command has a second
//! implementation, and a command does the same with or without a node
//! running (a text written offline is sealed for carriers as one written
//! online is, a contact added offline is told you carry, …).

use std::path::Path;

use super::api::{
    ContactView, Cursor, Failure, GroupMessageView, GroupOutcome, GroupView, MailboxAction,
    MailboxView, MessageView, ReadPage, Reply, Request, SafetyView, Target, TimerSetting,
    TimerView, READ_PAGE, READ_PAGE_BYTES,
};
use super::Node;
use crate::{hex, AddPeerError, GroupAction, Profile, ProfileError};

impl Node {
    /// Answers one request. Every failure leaves the profile as it was.
    /// A path in it must be absolute ([`super::api::check_path`]).
    /// [`Request::Follow`] and [`Request::Shutdown`] are for the control
    /// socket, which answers them itself; here they are refused.
    pub async fn handle(&self, request: Request) -> Result<Reply, Failure> {
        if let Some(path) = request.path() {
            super::api::check_path(path)?;
        }
        match request {
            Request::Invite => Ok(Reply::Invite {
                code: self.profile().invite()?.to_text(),
            }),
            Request::Add { code, name } => {
                let c = self.add_contact(code.trim(), &name).await?;
                Ok(Reply::Added {
                    contact: ContactView::of(self.profile(), &c),
                })
            }
            Request::Contacts => Ok(Reply::Contacts {
                contacts: contacts(self.profile()),
            }),
            Request::Verify { contact, verified } => {
                let p = self.profile().clone();
                let mut rng = self.shared.rng();
                let view = blocking(move || verify(&p, &contact, verified, &mut rng)).await?;
                Ok(Reply::Safety(view))
            }
            Request::Send { to, text } => {
                super::api::check_text(&text)?;
                let written = match &to {
                    Target::Contact(c) => self.send(c, &text).await,
                    Target::Group(g) => self.send_group(g, &text).await,
                };
                // A text too long for its conversation (a timer takes 8
                // bytes of a body) is the user's to shorten.
                let key = written.map_err(|e| match e {
                    ProfileError::Message(strand_sync::Invalid::BodyTooLong(_)) => {
                        Failure::bad_input(crate::chain(&e))
                    }
                    other => other.into(),
                })?;
                Ok(Reply::Written {
                    id: hex(&key.id.0),
                    time: key.time,
                })
            }
            Request::SendFile { to, path, task } => {
                let key = self
                    .send_file_reporting(to.conversation(), &path, self.reporter(task))
                    .await?;
                Ok(Reply::Written {
                    id: hex(&key.id.0),
                    time: key.time,
                })
            }
            Request::Save { id, dir, task } => {
                let p = self.profile().clone();
                let report = self.reporter(task);
                let path = blocking(move || p.save_file_reporting(&id, &dir, &report)).await?;
                Ok(Reply::Saved { path })
            }
            Request::Export { contact, to, task } => Ok(Reply::Exported(
                self.export_bundle_reporting(&contact, &to, self.reporter(task))
                    .await?,
            )),
            Request::Import { path, task } => Ok(Reply::Imported(
                self.import_bundle_reporting(&path, self.reporter(task))
                    .await?,
            )),
            Request::Read {
                contact,
                from,
                limit,
            } => {
                let p = self.profile().clone();
                let page = blocking(move || read_page(&p, &contact, from.as_ref(), limit)).await?;
                Ok(Reply::Page(page))
            }
            Request::Timer { of, set } => {
                if let Some(set) = set {
                    let lasts = match set {
                        TimerSetting::Off => None,
                        TimerSetting::Lasts(ms) => Some(ms),
                    };
                    let group = matches!(of, Target::Group(_));
                    self.set_timer(of.name(), group, lasts).await?;
                }
                let p = self.profile().clone();
                let t = blocking(move || match &of {
                    Target::Contact(c) => p.timer(c),
                    Target::Group(g) => p.group_timer(g),
                })
                .await?;
                Ok(Reply::Timer(TimerView {
                    ms: t.unwrap_or(0),
                    label: crate::timer_label(t),
                }))
            }
            Request::Groups => {
                let p = self.profile().clone();
                let groups = blocking(move || p.groups()).await?;
                Ok(Reply::Groups {
                    groups: groups.iter().map(GroupView::of).collect(),
                })
            }
            Request::GroupCreate { name, with } => {
                let key = self.create_group(&name, &with).await?;
                Ok(Reply::GroupCreated {
                    name: name.trim().to_owned(),
                    key,
                })
            }
            Request::GroupMembers { group } => {
                let p = self.profile().clone();
                let members = blocking(move || p.group_members(&group)).await?;
                Ok(Reply::Members { members })
            }
            Request::GroupChange { group, action } => {
                let leaving = action == GroupAction::Leave;
                self.change_group(&group, action).await?;
                let outcome = if !leaving {
                    GroupOutcome::Changed
                } else {
                    let p = self.profile().clone();
                    let still = blocking(move || p.still_member(&group)).await?;
                    if still {
                        GroupOutcome::AskedToLeave
                    } else {
                        GroupOutcome::Left
                    }
                };
                Ok(Reply::GroupChanged { outcome })
            }
            Request::GroupRead { group, from, limit } => {
                let p = self.profile().clone();
                let (messages, next) =
                    blocking(move || read_group_page(&p, &group, from.as_ref(), limit)).await?;
                Ok(Reply::GroupMessages { messages, next })
            }
            Request::Carry { set } => Ok(Reply::Carry(match set {
                Some(on) => self.set_carrying(on).await?,
                None => self.carry_status(),
            })),
            Request::Mailbox { action } => {
                match action {
                    Some(MailboxAction::Init { code }) => {
                        self.become_mailbox(code.trim()).await?;
                    }
                    Some(MailboxAction::Add { code }) => {
                        self.pair_mailbox(code.trim()).await?;
                    }
                    None => {}
                }
                let p = self.profile().clone();
                Ok(Reply::Mailbox(blocking(move || mailbox_view(&p)).await?))
            }
            Request::Status => Ok(Reply::Status(Box::new(self.status().await))),
            Request::Relays => Ok(Reply::Relays {
                relays: self.relays().await,
            }),
            Request::RelayAdd { address } => Ok(Reply::Relay {
                address: self.add_relay(&address).await?.address,
            }),
            Request::RelayRemove { address } => match self.remove_relay(&address).await? {
                Some(c) => Ok(Reply::Relay { address: c.address }),
                None => Err(Failure::bad_input(format!(
                    "{} is not in the relay list (see `strand relay list`)",
                    address.trim()
                ))),
            },
            Request::Summaries => {
                let p = self.profile().clone();
                Ok(Reply::Summaries {
                    contacts: blocking(move || p.summaries()).await?,
                })
            }
            Request::GroupSummaries => {
                let p = self.profile().clone();
                Ok(Reply::GroupSummaries {
                    groups: blocking(move || p.groups()).await?,
                })
            }
            Request::Positions { of } => {
                let p = self.profile().clone();
                let positions = blocking(move || match &of {
                    Target::Contact(c) => p.conversation_keys(c),
                    Target::Group(g) => p.group_conversation_keys(g),
                })
                .await?;
                Ok(Reply::Positions { positions })
            }
            Request::Page { of, from, limit } => {
                super::api::check_page(limit)?;
                let p = self.profile().clone();
                match of {
                    Target::Contact(c) => Ok(Reply::Stored {
                        messages: blocking(move || p.conversation_page(&c, &from, limit)).await?,
                    }),
                    Target::Group(g) => Ok(Reply::GroupPage {
                        messages: blocking(move || p.group_conversation_page(&g, &from, limit))
                            .await?,
                    }),
                }
            }
            Request::MarkRead { of, up_to } => {
                let p = self.profile().clone();
                blocking(move || match &of {
                    Target::Contact(c) => p.mark_read(c, &up_to),
                    Target::Group(g) => p.mark_group_read_to(g, &up_to),
                })
                .await?;
                Ok(Reply::Done)
            }
            Request::Preferences { set } => {
                let p = self.profile().clone();
                let mut rng = self.shared.rng();
                let prefs = blocking(move || match set.is_empty() {
                    true => p.preferences(),
                    false => p.change_preferences(&set, &mut rng),
                })
                .await?;
                self.shared
                    .duty
                    .send_if_modified(|d| std::mem::replace(d, prefs.bluetooth) != prefs.bluetooth);
                Ok(Reply::Preferences(prefs))
            }
            Request::RenameContact { contact, name } => {
                let c = self.rename_contact(&contact, &name).await?;
                Ok(Reply::Renamed {
                    contact: ContactView::of(self.profile(), &c),
                })
            }
            Request::DeleteContact { contact } => {
                let d = self.delete_contact(&contact).await?;
                Ok(Reply::DeletedContact {
                    name: d.contact.name,
                    messages: d.messages,
                })
            }
            Request::Rename { name } => {
                self.rename(&name).await?;
                Ok(Reply::Done)
            }
            Request::ChangePassphrase {
                current,
                new,
                allow_weak,
            } => {
                let p = self.profile().clone();
                let strength = crate::strength::estimate(new.expose(), p.identity().name());
                if !allow_weak && !strength.is_enough() {
                    return Err(Failure::bad_input(format!(
                        "the new passphrase is too weak: {}",
                        strength.hint
                    )));
                }
                let mut rng = self.shared.rng();
                blocking(move || p.change_passphrase(current.expose(), new.expose(), &mut rng))
                    .await?;
                Ok(Reply::Done)
            }
            Request::AddPeer { address } => {
                let addr = address.trim().parse().map_err(|e| {
                    Failure::bad_input(format!("{address:?} is not an address: {e}"))
                })?;
                self.add_peer(addr).map_err(|e| match e {
                    AddPeerError::Undialable { .. } => Failure::bad_input(e),
                    _ => Failure::refused(e),
                })?;
                Ok(Reply::Done)
            }
            Request::Follow | Request::Shutdown => Err(Failure::refused(
                "only a running node's control socket follows events or shuts down",
            )),
        }
    }
}

/// Runs store work off the async workers.
async fn blocking<T: Send + 'static, E: Into<Failure> + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, Failure> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(Into::into),
        Err(e) => Err(Failure::failed(format!("the device's worker failed: {e}"))),
    }
}

/// `contact`'s safety number, after marking them verified or not if
/// `verified` says.
pub fn verify(
    p: &Profile,
    contact: &str,
    verified: Option<bool>,
    rng: &mut (impl rand_core::RngCore + rand_core::CryptoRng),
) -> Result<SafetyView, ProfileError> {
    let c = match verified {
        Some(v) => p.set_verified(contact, v, rng)?,
        None => p.contact(contact)?,
    };
    let n = p.safety_number(&c);
    Ok(SafetyView {
        contact: ContactView::of(p, &c),
        safety_number: n.to_string(),
        qr: n.qr_payload(),
    })
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
        file: m.file.as_ref().map(super::api::FileView::of),
    }
}

/// The whole conversation as [`MessageView`]s (small ones: the demo).
pub fn conversation(p: &Profile, contact: &str) -> Result<Vec<MessageView>, ProfileError> {
    Ok(p.conversation(contact)?
        .into_iter()
        .map(|m| view(contact, m))
        .collect())
}

/// One page of the conversation with `contact` ([`Request::Read`]),
/// marked read as far as it shows ([`read_marked`]): it is being shown.
pub fn read_page(
    p: &Profile,
    contact: &str,
    from: Option<&Cursor>,
    limit: Option<usize>,
) -> Result<ReadPage, Failure> {
    let (page, next) = read_marked(from, limit, |start, bound| {
        p.read_page_marked(contact, start, bound)
    })?;
    Ok(ReadPage {
        messages: page.into_iter().map(|m| view(contact, m)).collect(),
        next,
    })
}

/// One page of a group's conversation ([`Request::GroupRead`]), marked
/// read as far as it shows, as [`read_page`] reads a contact's.
pub fn read_group_page(
    p: &Profile,
    group: &str,
    from: Option<&Cursor>,
    limit: Option<usize>,
) -> Result<(Vec<GroupMessageView>, Option<Cursor>), Failure> {
    let (page, next) = read_marked(from, limit, |start, bound| {
        p.read_group_page_marked(group, start, bound)
    })?;
    Ok((page.iter().map(GroupMessageView::of).collect(), next))
}

/// Reads one page of a conversation, a contact's or a group's, with
/// `read`, from `from` on (the start if `None`): at most `limit` messages
/// (default and most [`READ_PAGE`]), fewer once their texts hold
/// [`READ_PAGE_BYTES`]. `read` marks the page read as far as it shows and
/// no further ([`crate::Profile::read_page_marked`],
/// [`crate::Profile::read_group_page_marked`]): what comes after it was
/// not shown, and stays unread; a text stored among its messages once it
/// was read ends the page below it. Returns the page and where the next
/// one starts (just above its last message, so a text stored in between
/// is in the next).
/// [`Request::Read`] and [`Request::GroupRead`] both read this way, so
/// `strand read` and `strand group read` page alike.
fn read_marked<M>(
    from: Option<&Cursor>,
    limit: Option<usize>,
    read: impl FnOnce(
        &crate::Position,
        crate::PageBound,
    ) -> Result<crate::ConversationPage<M>, ProfileError>,
) -> Result<(Vec<M>, Option<Cursor>), Failure> {
    let bound = crate::PageBound {
        messages: limit.unwrap_or(READ_PAGE).clamp(1, READ_PAGE),
        bytes: READ_PAGE_BYTES,
    };
    let start = match from {
        None => crate::Position::MIN,
        Some(c) => c.position()?,
    };
    let page = read(&start, bound)?;
    Ok((page.messages, page.next.as_ref().map(Cursor::at)))
}

/// The mailbox pairing of `p`.
pub fn mailbox_view(p: &Profile) -> Result<MailboxView, ProfileError> {
    let code = match p.mailbox_code() {
        Ok(Some(code)) => Ok(code),
        Ok(None) => p.invite().map(|i| i.to_text()),
        Err(e) => Err(e),
    };
    let mailbox = p.mailbox()?.and_then(|m| {
        p.contacts()
            .into_iter()
            .find(|c| c.public == m.public)
            .map(|c| c.name)
    });
    Ok(MailboxView {
        owner: p.mailbox_of()?.map(|o| o.name),
        mailbox,
        code: match code {
            Ok(code) => code,
            // No code while the user's name breaks today's rules (the
            // status says why): the pairing shows all the same.
            Err(ProfileError::OwnName(_)) => String::new(),
            Err(e) => return Err(e),
        },
    })
}

/// The contacts as [`ContactView`]s.
pub fn contacts(p: &Profile) -> Vec<ContactView> {
    p.contacts().iter().map(|c| ContactView::of(p, c)).collect()
}

/// Whether a path can cross the control socket: UTF-8 only (any other
/// would name a different file on the node's side).
pub fn utf8_path(path: &Path) -> Result<(), Failure> {
    match path.to_str() {
        Some(_) => Ok(()),
        None => Err(Failure::bad_input(format!(
            "{}: use a path that is valid UTF-8",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::api::FailureKind;

    /// A request naming a path that is not UTF-8 is bad input, said so,
    /// on every device: it cannot cross the control socket, and before, a
    /// node in the app's own process took it while the same request to a
    /// running node made the app panic. Fails with the `utf8_path` call
    /// at the end of `check_path` taken out (the node then looks for the
    /// file message, and says there is none).
    #[tokio::test]
    async fn a_path_that_is_not_utf8_is_bad_input() {
        use std::os::unix::ffi::OsStrExt;
        let tmp = tempfile::tempdir().unwrap();
        let node = super::super::test_node(tmp.path(), crate::NodeConfig::offline()).await;
        let dir = tmp.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
        let e = node
            .handle(Request::Save {
                id: "00000000".into(),
                dir,
                task: None,
            })
            .await
            .expect_err("refused");
        assert_eq!(e.kind, FailureKind::BadInput, "{e}");
        assert!(e.message.contains("valid UTF-8"), "{e}");
        node.shutdown().await;
    }
}
