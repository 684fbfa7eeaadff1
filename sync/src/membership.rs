//! Private groups: membership as a chain of epochs (PROTOCOL.md §14).
//!
//! A group is a chain of **epochs**. Each epoch is one group log (its own
//! [`GroupId`] and [`GroupKey`], both random) with a fixed member list, so
//! whether a message is valid never depends on what else a receiver has
//! seen. Every membership change (add, remove, leave, make admin) is a
//! [`Kind::MEMBERSHIP`] message in the current epoch's log that names the
//! next epoch's members and carries the next epoch's id and key sealed to
//! each of them (X25519 to their key-agreement key). A member who is left
//! out of the next epoch cannot open it: it keeps what it had and reads
//! nothing written after.
//!
//! Changes made at once on two partitions fork an epoch. Every member
//! resolves a fork the same way: the valid change with the smallest log key
//! (time, id) wins, and its author's rivals re-issue theirs on top of it
//! ([`Chain::reissue`]), so the member list converges everywhere.
//!
//! New members get the epoch they join in a [`Kind::WELCOME`] message in
//! their 1:1 conversation with whoever added them.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use rand_core::{CryptoRng, RngCore};
use x25519_dalek::{PublicKey as DhPublic, StaticSecret};
use zeroize::Zeroizing;

use crate::codec::Reader;
use crate::crypto::kdf;
use crate::group::{Group, GroupId, GroupKey};
use crate::identity::{check_name, check_stored_name, AuthorId, Identity, PublicIdentity};
use crate::limits::Time;
use crate::message::{Kind, Message};
use crate::store::{Key, KeyRange, Store};
use crate::{DecodeError, Invalid, KeyError};

/// Most members an epoch may have.
pub const MAX_GROUP_MEMBERS: usize = 1000;

const VERSION: u8 = 1;
const BOX_LEN: usize = 64 + 16;

const CHANGE_ADD: u8 = 1;
const CHANGE_REMOVE: u8 = 2;
const CHANGE_LEAVE: u8 = 3;
const CHANGE_ADMIN: u8 = 4;

/// The body of a [`Kind::NAME`] message: the name its author chose for
/// themselves (the naming rules of [`check_name`]), as UTF-8.
pub fn encode_chosen_name(name: &str) -> Result<Vec<u8>, KeyError> {
    check_name(name)?;
    Ok(name.as_bytes().to_vec())
}

/// The name a [`Kind::NAME`] body carries, or `None` if it breaks the
/// naming rules (such a message stays valid; it names no one).
pub fn decode_chosen_name(body: &[u8]) -> Option<String> {
    let name = std::str::from_utf8(body).ok()?;
    check_name(name).ok()?;
    Some(name.to_owned())
}

/// One member of an epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Their keys.
    pub public: PublicIdentity,
    /// The name whoever added them knew them by (their contacts may know
    /// them by another; anyone else should show it as unverified).
    pub name: String,
    /// Whether they may remove members (the creator always may).
    pub admin: bool,
}

/// One epoch of a group: a log with a fixed member list.
#[derive(Clone)]
pub struct Epoch {
    /// The group's first epoch id: it names the conversation across epochs.
    pub root: GroupId,
    /// 0 for the first epoch, then one more per change.
    pub number: u32,
    /// The group's name.
    pub name: String,
    /// Who created the group: an admin in every epoch it belongs to.
    pub creator: AuthorId,
    members: Vec<Member>,
    group: Group,
}

impl std::fmt::Debug for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Epoch")
            .field("id", &self.group.id)
            .field("number", &self.number)
            .field("members", &self.members.len())
            .finish_non_exhaustive()
    }
}

/// A membership change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Add someone (any member may).
    Add {
        /// Their keys.
        public: PublicIdentity,
        /// Their name as the adder knows it.
        name: String,
    },
    /// Remove a member (admins only; not the creator).
    Remove(AuthorId),
    /// The author leaves.
    Leave,
    /// Make a member an admin (the creator only).
    MakeAdmin(AuthorId),
}

/// Why a change cannot be made or is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The author is not a member of the epoch.
    #[error("not a member of the group")]
    NotMember,
    /// The author may not make this change.
    #[error("only {0} may do that")]
    NotAllowed(&'static str),
    /// Adding a member twice, removing a non-member, and the like.
    #[error("{0}")]
    NoEffect(&'static str),
    /// Over [`MAX_GROUP_MEMBERS`].
    #[error("a group has at most {MAX_GROUP_MEMBERS} members")]
    TooMany,
    /// A name that breaks the naming rules.
    #[error("the name {0}")]
    Name(&'static str),
    /// A key that gives no shared secret.
    #[error("a member's key is weak (a low-order point)")]
    WeakKey,
    /// Malformed bytes.
    #[error("malformed: {0}")]
    Decode(#[from] DecodeError),
    /// The message is not valid in the epoch's log.
    #[error("invalid message: {0}")]
    Invalid(#[from] Invalid),
    /// The next epoch's state is not what the change makes of this one.
    #[error("the change does not match the member list it names")]
    Inconsistent,
    /// This member's sealed key did not open.
    #[error("the next epoch's key did not open")]
    Sealed,
}

impl Epoch {
    /// Creates a group: the first epoch, with a random id and key, the
    /// creator (an admin) and `others`, as the creator knows them.
    pub fn create(
        creator: &Identity,
        name: &str,
        others: &[(PublicIdentity, String)],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Epoch, GroupError> {
        check_stored_name(name).map_err(|e| match e {
            crate::KeyError::Name(why) => GroupError::Name(why),
            _ => GroupError::Name("is not acceptable"),
        })?;
        let mut members = vec![Member {
            public: creator.public(),
            name: creator.name().to_owned(),
            admin: true,
        }];
        for (public, name) in others {
            if members.iter().any(|m| m.public.sign == public.sign) {
                return Err(GroupError::NoEffect("a member is listed twice"));
            }
            members.push(Member {
                public: *public,
                name: name.clone(),
                admin: false,
            });
        }
        let mut id = [0u8; 32];
        rng.fill_bytes(&mut id);
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut key[..]);
        Epoch::new(
            GroupId(id),
            GroupId(id),
            0,
            name.to_owned(),
            creator.public().sign,
            members,
            GroupKey::from_bytes(*key),
        )
    }

    fn new(
        root: GroupId,
        id: GroupId,
        number: u32,
        name: String,
        creator: AuthorId,
        mut members: Vec<Member>,
        key: GroupKey,
    ) -> Result<Epoch, GroupError> {
        if members.len() > MAX_GROUP_MEMBERS {
            return Err(GroupError::TooMany);
        }
        for m in &members {
            check_stored_name(&m.name)
                .map_err(|_| GroupError::Name("of a member is not acceptable"))?;
            if crate::identity::verifying_key(&m.public.sign).is_none() {
                return Err(GroupError::WeakKey);
            }
        }
        members.sort_by_key(|m| m.public.sign);
        if members
            .windows(2)
            .any(|w| w[0].public.sign == w[1].public.sign)
        {
            return Err(GroupError::NoEffect("a member is listed twice"));
        }
        if let Some(c) = members.iter_mut().find(|m| m.public.sign == creator) {
            c.admin = true;
        }
        let group = Group::new(id, key, members.iter().map(|m| m.public.sign).collect());
        Ok(Epoch {
            root,
            number,
            name,
            creator,
            members,
            group,
        })
    }

    /// This epoch's log id.
    pub fn id(&self) -> GroupId {
        self.group.id
    }

    /// The log, for sessions and [`Message::create`].
    pub fn group(&self) -> &Group {
        &self.group
    }

    /// The members, sorted by signing key.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The member with this signing key.
    pub fn member(&self, sign: &AuthorId) -> Option<&Member> {
        self.members
            .binary_search_by(|m| m.public.sign.cmp(sign))
            .ok()
            .map(|i| &self.members[i])
    }

    /// Whether `sign` may remove members.
    pub fn is_admin(&self, sign: &AuthorId) -> bool {
        self.member(sign).is_some_and(|m| m.admin)
    }

    /// What `change` by `author` makes of the member list, or why it may
    /// not be made.
    fn apply(&self, author: &AuthorId, change: &Change) -> Result<Vec<Member>, GroupError> {
        if self.member(author).is_none() {
            return Err(GroupError::NotMember);
        }
        let mut members = self.members.clone();
        match change {
            Change::Add { public, name } => {
                if self.member(&public.sign).is_some() {
                    return Err(GroupError::NoEffect("already a member"));
                }
                if crate::identity::verifying_key(&public.sign).is_none() {
                    return Err(GroupError::WeakKey);
                }
                if members.len() >= MAX_GROUP_MEMBERS {
                    return Err(GroupError::TooMany);
                }
                members.push(Member {
                    public: *public,
                    name: name.clone(),
                    admin: false,
                });
            }
            Change::Remove(who) => {
                if !self.is_admin(author) {
                    return Err(GroupError::NotAllowed("an admin"));
                }
                if *who == self.creator {
                    return Err(GroupError::NotAllowed("the creator itself (by leaving)"));
                }
                if who == author {
                    return Err(GroupError::NoEffect("leave instead of removing yourself"));
                }
                if self.member(who).is_none() {
                    return Err(GroupError::NoEffect("not a member"));
                }
                members.retain(|m| m.public.sign != *who);
            }
            Change::Leave => {
                if members.len() == 1 {
                    return Err(GroupError::NoEffect("the last member cannot leave"));
                }
                members.retain(|m| m.public.sign != *author);
            }
            Change::MakeAdmin(who) => {
                if *author != self.creator {
                    return Err(GroupError::NotAllowed("the creator"));
                }
                match self.member(who) {
                    None => return Err(GroupError::NoEffect("not a member")),
                    Some(m) if m.admin => return Err(GroupError::NoEffect("already an admin")),
                    Some(_) => {}
                }
                for m in &mut members {
                    if m.public.sign == *who {
                        m.admin = true;
                    }
                }
            }
        }
        members.sort_by_key(|m| m.public.sign);
        Ok(members)
    }

    /// Makes `change` as `me`: the MEMBERSHIP message to store in this
    /// epoch's log (and so sync to its members), and the next epoch (`None`
    /// if `me` leaves).
    pub fn propose(
        &self,
        me: &Identity,
        change: Change,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(Message, Option<Epoch>), GroupError> {
        let author = me.public().sign;
        let members = self.apply(&author, &change)?;
        let mut id = [0u8; 32];
        rng.fill_bytes(&mut id);
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut key[..]);
        let next = Epoch::new(
            self.root,
            GroupId(id),
            self.number + 1,
            self.name.clone(),
            self.creator,
            members,
            GroupKey::from_bytes(*key),
        )?;
        let mut body = vec![VERSION];
        encode_change(&change, &mut body);
        body.extend_from_slice(&next.number.to_be_bytes());
        encode_members(&next.members, &mut body);
        let eph = StaticSecret::random_from_rng(&mut *rng);
        let eph_public = DhPublic::from(&eph).to_bytes();
        body.extend_from_slice(&eph_public);
        let mut secret = Zeroizing::new([0u8; 64]);
        secret[..32].copy_from_slice(&next.group.id.0);
        secret[32..].copy_from_slice(next.group.key().as_bytes());
        for m in &next.members {
            let shared = eph.diffie_hellman(&DhPublic::from(m.public.dh));
            if !shared.was_contributory() {
                return Err(GroupError::WeakKey);
            }
            let cipher = box_cipher(shared.as_bytes(), &eph_public, &m.public.sign, &self.id());
            let sealed = cipher
                .encrypt(&Nonce::default(), &secret[..])
                .expect("a 64-byte plaintext seals");
            body.extend_from_slice(&sealed);
        }
        let msg = Message::create(me, &self.group, now, Kind::MEMBERSHIP, &body, rng)?;
        let mine = next.member(&author).is_some();
        Ok((msg, mine.then_some(next)))
    }

    /// Reads a MEMBERSHIP message of this epoch's log as `me`: checks it
    /// (valid message, allowed change, consistent member list) and opens
    /// the next epoch if `me` is in it.
    pub fn read(&self, me: &Identity, msg: &Message, now: Time) -> Result<Transition, GroupError> {
        if msg.kind() != Kind::MEMBERSHIP {
            return Err(GroupError::Decode(DecodeError::Invalid(
                "not a membership change",
            )));
        }
        let body = msg.validate(&self.group, now)?;
        let author = msg.author();
        let mut r = Reader::new(&body);
        let version = r.u8()?;
        if version != VERSION {
            return Err(GroupError::Decode(DecodeError::Version(version)));
        }
        let change = decode_change(&mut r)?;
        let number = r.u32()?;
        let listed = decode_members(&mut r)?;
        let eph_public: [u8; 32] = r.array()?;
        let boxes = r.bytes(listed.len() * BOX_LEN)?;
        r.finish()?;
        let mut expected = self.apply(&author, &change)?;
        for m in &mut expected {
            if m.public.sign == self.creator {
                m.admin = true;
            }
        }
        if number != self.number + 1 || listed != expected {
            return Err(GroupError::Inconsistent);
        }
        let mine = me.public().sign;
        // A box that does not open leaves this reader out of the next
        // epoch, as a removal would; the change stays valid, so that every
        // member picks the same winner whatever the author sealed.
        let next = match listed.iter().position(|m| m.public.sign == mine) {
            None => None,
            Some(i) => (|| {
                let shared = me.dh_secret().diffie_hellman(&DhPublic::from(eph_public));
                if !shared.was_contributory() {
                    return Err(GroupError::Sealed);
                }
                let cipher = box_cipher(shared.as_bytes(), &eph_public, &mine, &self.id());
                let sealed = &boxes[i * BOX_LEN..(i + 1) * BOX_LEN];
                let secret = Zeroizing::new(
                    cipher
                        .decrypt(&Nonce::default(), sealed)
                        .map_err(|_| GroupError::Sealed)?,
                );
                let id: [u8; 32] = secret[..32].try_into().expect("64 bytes");
                let key: [u8; 32] = secret[32..].try_into().expect("64 bytes");
                Epoch::new(
                    self.root,
                    GroupId(id),
                    number,
                    self.name.clone(),
                    self.creator,
                    listed.clone(),
                    GroupKey::from_bytes(key),
                )
            })()
            .ok(),
        };
        Ok(Transition {
            key: msg.key(),
            author,
            change,
            members: listed,
            next,
        })
    }

    /// The whole epoch, key included: the body of a WELCOME message (sent
    /// in a 1:1 conversation, so under that pair's key), and what a node
    /// stores (encrypted at rest).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        out.extend_from_slice(&self.root.0);
        out.extend_from_slice(&self.group.id.0);
        out.extend_from_slice(self.group.key().as_bytes());
        out.extend_from_slice(&self.number.to_be_bytes());
        put_name(&self.name, &mut out);
        out.extend_from_slice(&self.creator);
        encode_members(&self.members, &mut out);
        out
    }

    /// Reads [`Epoch::encode`]'s bytes.
    pub fn decode(bytes: &[u8]) -> Result<Epoch, GroupError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(GroupError::Decode(DecodeError::Version(version)));
        }
        let root = GroupId(r.array()?);
        let id = GroupId(r.array()?);
        let key: [u8; 32] = r.array()?;
        let number = r.u32()?;
        let name = get_name(&mut r)?;
        let creator: AuthorId = r.array()?;
        let members = decode_members(&mut r)?;
        r.finish()?;
        Epoch::new(
            root,
            id,
            number,
            name,
            creator,
            members,
            GroupKey::from_bytes(key),
        )
    }

    /// A WELCOME message for a new member, to store in the 1:1 log `pair`
    /// between `me` and them.
    pub fn welcome(
        &self,
        me: &Identity,
        pair: &Group,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Message, GroupError> {
        Ok(Message::create(
            me,
            pair,
            now,
            Kind::WELCOME,
            &self.encode(),
            rng,
        )?)
    }

    /// Reads a WELCOME message from the 1:1 log `pair`: the epoch, if its
    /// author and `me` are both members of it.
    pub fn from_welcome(
        me: &Identity,
        pair: &Group,
        msg: &Message,
        now: Time,
    ) -> Result<Epoch, GroupError> {
        if msg.kind() != Kind::WELCOME {
            return Err(GroupError::Decode(DecodeError::Invalid("not a welcome")));
        }
        let body = msg.validate(pair, now)?;
        let epoch = Epoch::decode(&body)?;
        if epoch.member(&msg.author()).is_none() || epoch.member(&me.public().sign).is_none() {
            return Err(GroupError::NotMember);
        }
        Ok(epoch)
    }
}

fn box_cipher(
    shared: &[u8; 32],
    eph_public: &[u8; 32],
    member: &AuthorId,
    epoch: &GroupId,
) -> ChaCha20Poly1305 {
    let key = Zeroizing::new(kdf(
        shared,
        "strand/v1/group-box",
        &[eph_public, member, &epoch.0],
    ));
    ChaCha20Poly1305::new((&*key).into())
}

fn put_name(name: &str, out: &mut Vec<u8>) {
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
}

fn get_name(r: &mut Reader<'_>) -> Result<String, GroupError> {
    let n = r.u8()? as usize;
    let bytes = r.bytes(n)?;
    let name = std::str::from_utf8(bytes)
        .map_err(|_| DecodeError::Invalid("a name that is not UTF-8"))?
        .to_owned();
    check_stored_name(&name).map_err(|_| GroupError::Name("is not acceptable"))?;
    Ok(name)
}

fn encode_change(change: &Change, out: &mut Vec<u8>) {
    match change {
        Change::Add { public, name } => {
            out.push(CHANGE_ADD);
            out.extend_from_slice(&public.sign);
            out.extend_from_slice(&public.dh);
            put_name(name, out);
        }
        Change::Remove(who) => {
            out.push(CHANGE_REMOVE);
            out.extend_from_slice(who);
        }
        Change::Leave => out.push(CHANGE_LEAVE),
        Change::MakeAdmin(who) => {
            out.push(CHANGE_ADMIN);
            out.extend_from_slice(who);
        }
    }
}

fn decode_change(r: &mut Reader<'_>) -> Result<Change, GroupError> {
    Ok(match r.u8()? {
        CHANGE_ADD => {
            let sign = r.array()?;
            let dh = r.array()?;
            let name = get_name(r)?;
            Change::Add {
                public: PublicIdentity { sign, dh },
                name,
            }
        }
        CHANGE_REMOVE => Change::Remove(r.array()?),
        CHANGE_LEAVE => Change::Leave,
        CHANGE_ADMIN => Change::MakeAdmin(r.array()?),
        _ => return Err(GroupError::Decode(DecodeError::Invalid("unknown change"))),
    })
}

fn encode_members(members: &[Member], out: &mut Vec<u8>) {
    out.extend_from_slice(&(members.len() as u16).to_be_bytes());
    for m in members {
        out.extend_from_slice(&m.public.sign);
        out.extend_from_slice(&m.public.dh);
        out.push(u8::from(m.admin));
        put_name(&m.name, out);
    }
}

fn decode_members(r: &mut Reader<'_>) -> Result<Vec<Member>, GroupError> {
    let n = u16::from_be_bytes(r.array()?) as usize;
    if n == 0 || n > MAX_GROUP_MEMBERS {
        return Err(GroupError::TooMany);
    }
    let mut members = Vec::with_capacity(n);
    for _ in 0..n {
        let sign = r.array()?;
        let dh = r.array()?;
        let admin = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(GroupError::Decode(DecodeError::Invalid("admin flag"))),
        };
        let name = get_name(r)?;
        members.push(Member {
            public: PublicIdentity { sign, dh },
            name,
            admin,
        });
    }
    if members
        .windows(2)
        .any(|w| w[0].public.sign >= w[1].public.sign)
    {
        return Err(GroupError::Decode(DecodeError::Invalid(
            "members not in signing-key order",
        )));
    }
    Ok(members)
}

/// A valid membership change read from an epoch's log.
#[derive(Debug, Clone)]
pub struct Transition {
    /// Its message's log key: the smallest wins a fork.
    pub key: Key,
    /// Who made it.
    pub author: AuthorId,
    /// What it does.
    pub change: Change,
    /// The next epoch's members.
    pub members: Vec<Member>,
    /// The next epoch, if the reader is in it.
    pub next: Option<Epoch>,
}

/// What a device knows of one group: the epochs it has opened, and the
/// changes read from their logs.
#[derive(Debug, Clone)]
pub struct Chain {
    epochs: BTreeMap<GroupId, Epoch>,
    /// Valid changes per epoch, smallest key first.
    changes: BTreeMap<GroupId, Vec<Transition>>,
    root: GroupId,
}

impl Chain {
    /// A chain that starts from `epoch` (the first one the device got: the
    /// group's creation or a welcome).
    pub fn new(epoch: Epoch) -> Chain {
        let root = epoch.root;
        let mut epochs = BTreeMap::new();
        epochs.insert(epoch.id(), epoch);
        Chain {
            epochs,
            changes: BTreeMap::new(),
            root,
        }
    }

    /// The group's root id.
    pub fn root(&self) -> GroupId {
        self.root
    }

    /// Adds an epoch (a welcome, or one this device made).
    pub fn insert(&mut self, epoch: Epoch) {
        self.epochs.entry(epoch.id()).or_insert(epoch);
    }

    /// Every epoch this device can read: all of them sync with the members
    /// they share (messages may still arrive in old ones).
    pub fn epochs(&self) -> impl Iterator<Item = &Epoch> {
        self.epochs.values()
    }

    /// Reads the MEMBERSHIP messages of every known epoch from `store` and
    /// follows the changes: returns the epochs newly opened. Invalid
    /// changes are skipped (a member's mistake must not stop the others).
    pub fn update<S: Store>(
        &mut self,
        me: &Identity,
        store: &S,
        now: Time,
    ) -> Result<Vec<GroupId>, S::Error> {
        let mut opened = Vec::new();
        let mut todo: Vec<GroupId> = self.epochs.keys().copied().collect();
        while let Some(id) = todo.pop() {
            let epoch = self.epochs[&id].clone();
            let mut found = Vec::new();
            let mut keys = Vec::new();
            store.scan(&id, &KeyRange::ALL, &mut |k| {
                keys.push(*k);
                ControlFlow::Continue(())
            })?;
            for k in keys {
                // Only changes are read in full: a group's files and texts
                // are most of its log.
                if store.kind(&id, &k)? != Some(Kind::MEMBERSHIP) {
                    continue;
                }
                let Some(bytes) = store.get(&id, &k)? else {
                    continue;
                };
                let Ok(msg) = Message::decode(bytes) else {
                    continue;
                };
                if let Ok(t) = epoch.read(me, &msg, now) {
                    found.push(t);
                }
            }
            found.sort_by_key(|t| t.key);
            for t in &found {
                if let Some(next) = &t.next {
                    if let std::collections::btree_map::Entry::Vacant(slot) =
                        self.epochs.entry(next.id())
                    {
                        slot.insert(next.clone());
                        opened.push(next.id());
                        todo.push(next.id());
                    }
                }
            }
            self.changes.insert(id, found);
        }
        Ok(opened)
    }

    /// The change that won epoch `id`: the valid one with the smallest key.
    pub fn winner(&self, id: &GroupId) -> Option<&Transition> {
        self.changes.get(id).and_then(|c| c.first())
    }

    /// The current epoch as this device sees it: from the first epoch it
    /// knows, follow each epoch's winning change while the device can open
    /// the next one. `removed` says whether the chain goes on without it.
    pub fn head(&self) -> Head<'_> {
        let last = *self.path().last().expect("a path starts at an epoch");
        let current = &self.epochs[&last];
        match self.winner(&last) {
            Some(change) if change.next.is_none() => Head::Out {
                last: current,
                change,
            },
            _ => Head::Member(current),
        }
    }

    /// Changes `me` made that lost a fork and still mean something at the
    /// head: make them again there.
    pub fn reissue(&self, me: &AuthorId) -> Vec<Change> {
        let Head::Member(head) = self.head() else {
            return Vec::new();
        };
        let path = self.path();
        let mut out = Vec::new();
        for (id, changes) in &self.changes {
            // On the path every change but the winner lost; off it, all did.
            let skip = usize::from(path.contains(id));
            for lost in changes.iter().skip(skip).filter(|t| t.author == *me) {
                if head.apply(me, &lost.change).is_ok() && !out.contains(&lost.change) {
                    out.push(lost.change.clone());
                }
            }
        }
        out
    }

    /// The epochs from the first known to the head, by winning changes.
    fn path(&self) -> Vec<GroupId> {
        let mut current = self.first();
        let mut path = vec![current.id()];
        while let Some(next) = self
            .winner(&current.id())
            .and_then(|t| t.next.as_ref())
            .and_then(|n| self.epochs.get(&n.id()))
        {
            current = next;
            path.push(current.id());
        }
        path
    }

    fn first(&self) -> &Epoch {
        self.epochs
            .values()
            .min_by_key(|e| e.number)
            .expect("a chain has an epoch")
    }
}

/// Where a device stands in a group.
#[derive(Debug)]
pub enum Head<'a> {
    /// It is a member of this epoch, the newest it knows.
    Member(&'a Epoch),
    /// The group went on without it: `change` (a removal or its leaving)
    /// made the epoch after `last`.
    Out {
        /// The last epoch it was in.
        last: &'a Epoch,
        /// What left it out.
        change: &'a Transition,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn people(n: usize, rng: &mut ChaCha20Rng) -> Vec<Identity> {
        (0..n)
            .map(|i| Identity::generate(&format!("p{i}"), rng).unwrap())
            .collect()
    }

    fn group(ids: &[Identity], rng: &mut ChaCha20Rng) -> Epoch {
        let others: Vec<_> = ids[1..]
            .iter()
            .map(|p| (p.public(), p.name().to_owned()))
            .collect();
        Epoch::create(&ids[0], "g", &others, rng).unwrap()
    }

    #[test]
    fn only_admins_remove_only_the_creator_promotes() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let ids = people(3, &mut rng);
        let e = group(&ids, &mut rng);
        let c = ids[2].public().sign;
        assert_eq!(
            e.propose(&ids[1], Change::Remove(c), 5, &mut rng)
                .unwrap_err(),
            GroupError::NotAllowed("an admin")
        );
        assert_eq!(
            e.propose(&ids[1], Change::MakeAdmin(c), 5, &mut rng)
                .unwrap_err(),
            GroupError::NotAllowed("the creator")
        );
        assert_eq!(
            e.propose(&ids[1], Change::Remove(ids[0].public().sign), 5, &mut rng)
                .unwrap_err(),
            GroupError::NotAllowed("an admin")
        );
        let (_, next) = e
            .propose(
                &ids[0],
                Change::MakeAdmin(ids[1].public().sign),
                5,
                &mut rng,
            )
            .unwrap();
        let next = next.unwrap();
        assert!(next.is_admin(&ids[1].public().sign));
        assert_eq!(
            next.propose(&ids[1], Change::Remove(ids[0].public().sign), 6, &mut rng)
                .unwrap_err(),
            GroupError::NotAllowed("the creator itself (by leaving)")
        );
        let stranger = Identity::generate("s", &mut rng).unwrap();
        assert_eq!(
            e.propose(&stranger, Change::Leave, 5, &mut rng)
                .unwrap_err(),
            GroupError::NotMember
        );
    }

    #[test]
    fn a_change_whose_member_list_lies_is_refused_and_boxes_are_per_member() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let ids = people(4, &mut rng);
        let e = group(&ids, &mut rng);
        let (msg, next) = e
            .propose(&ids[0], Change::Remove(ids[3].public().sign), 9, &mut rng)
            .unwrap();
        let next = next.unwrap();
        // Every remaining member opens the same next epoch; the removed
        // one reads the change but gets no epoch.
        for p in &ids[..3] {
            let t = e.read(p, &msg, 10).unwrap();
            assert_eq!(
                t.next.unwrap().group().key().as_bytes(),
                next.group().key().as_bytes()
            );
        }
        let t = e.read(&ids[3], &msg, 10).unwrap();
        assert!(t.next.is_none());
        assert_eq!(t.members.len(), 3);

        // The same change written by hand with a member list that keeps the
        // removed member: well signed, but inconsistent.
        let mut body = vec![VERSION];
        encode_change(&Change::Remove(ids[3].public().sign), &mut body);
        body.extend_from_slice(&1u32.to_be_bytes());
        encode_members(e.members(), &mut body);
        body.extend_from_slice(&[9; 32]);
        body.extend_from_slice(&vec![0; BOX_LEN * e.members().len()]);
        let forged =
            Message::create(&ids[0], e.group(), 9, Kind::MEMBERSHIP, &body, &mut rng).unwrap();
        assert_eq!(
            e.read(&ids[1], &forged, 10).unwrap_err(),
            GroupError::Inconsistent
        );
    }

    #[test]
    fn epochs_round_trip_and_bad_bytes_are_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let ids = people(3, &mut rng);
        let e = group(&ids, &mut rng);
        let bytes = e.encode();
        let back = Epoch::decode(&bytes).unwrap();
        assert_eq!(back.id(), e.id());
        assert_eq!(back.members(), e.members());
        assert_eq!(back.group().key().as_bytes(), e.group().key().as_bytes());
        for cut in 0..bytes.len() {
            assert!(Epoch::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Epoch::decode(&longer).is_err());
        let mut v = bytes.clone();
        v[0] = 2;
        assert_eq!(
            Epoch::decode(&v).unwrap_err(),
            GroupError::Decode(DecodeError::Version(2))
        );
    }
}
