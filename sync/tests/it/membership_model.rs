//! A model test of private-group membership (PROTOCOL.md §14): 3–6
//! members, one or two of them hostile, and two outsiders an admin may
//! add. Every schedule proptest draws mixes honest work (texts, adds,
//! removals, admins made, leaving) with meetings between any two devices
//! (partitions and rejoins) and what a hostile member's own keys can
//! sign: in any epoch it ever held, with any claimed time, requests to
//! leave and texts, and — when the creator made it an admin — changes
//! with boxes that do not open and keys the change does not commit to;
//! forged welcomes for the group; replays of everything it holds. The
//! creator may remove a hostile admin, which then goes on writing into
//! the epochs it held. Then the partitions heal, every honest device does
//! what the protocol asks of it, and the test checks:
//!
//! - every honest member ends in the same epoch with the same members,
//!   and every honest device listed there holds it (no one locked out);
//! - a device that was removed holds no epoch that anyone wrote a text
//!   into after learning of the removal;
//! - the members are what admins made them: a member is there only if it
//!   was there from the start or an admin added it (a member that is not
//!   an admin changes nothing), an honest member is gone only if an admin
//!   removed it or it left, and no one the creator removed (or who left)
//!   comes back.
//!
//! Forged welcomes go to devices that already follow the group: a
//! welcome to someone who has never seen the group is its adder's word
//! (§14.3).

use std::collections::BTreeSet;

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use strand_sync::{
    AuthorId, Chain, Change, Epoch, Group, GroupId, Head, Identity, Kind, MemoryStore, Message,
    Next, PublicIdentity, Sealing, Store, WriteStore, MAX_CHANGES_OFF_PATH,
};

const NOW: u64 = 1_800_000_000_000;
/// Outsiders an admin may add, after the members.
const OUTSIDERS: usize = 2;
/// Exchanges in one meeting at most: more than any chain the schedules
/// can grow (a change per op, at most 60 ops).
const MEETING_EXCHANGES: usize = 64;

#[derive(Debug, Clone)]
enum Op {
    Meet(usize, usize),
    Text(usize),
    Add(usize, usize),
    Remove(usize, usize),
    MakeAdmin(usize),
    Leave(usize),
    LateChange {
        who: usize,
        epoch: usize,
        time: u64,
        sealing: u8,
        change: u8,
        target: usize,
    },
    LateText {
        who: usize,
        epoch: usize,
        time: u64,
    },
    ForgedWelcome {
        who: usize,
        victim: usize,
        number: u32,
    },
    Replay(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let i = 0usize..16;
    prop_oneof![
        6 => (i.clone(), i.clone()).prop_map(|(a, b)| Op::Meet(a, b)),
        3 => i.clone().prop_map(Op::Text),
        1 => (i.clone(), i.clone()).prop_map(|(a, b)| Op::Add(a, b)),
        1 => (i.clone(), i.clone()).prop_map(|(a, b)| Op::Remove(a, b)),
        1 => i.clone().prop_map(Op::MakeAdmin),
        1 => i.clone().prop_map(Op::Leave),
        3 => (i.clone(), i.clone(), 0u64..NOW, 0u8..4, 0u8..4, i.clone()).prop_map(|(who, epoch, time, sealing, change, target)| Op::LateChange { who, epoch, time, sealing, change, target }),
        1 => (i.clone(), i.clone(), 0u64..NOW).prop_map(|(who, epoch, time)| Op::LateText { who, epoch, time }),
        1 => (i.clone(), i.clone(), 0u32..3).prop_map(|(who, victim, number)| Op::ForgedWelcome { who, victim, number }),
        1 => (i.clone(), i).prop_map(|(a, b)| Op::Replay(a, b)),
    ]
}

struct Dev {
    id: Identity,
    hostile: bool,
    store: MemoryStore,
    chains: Vec<Chain>,
}

/// A text someone wrote, and whom they knew to be removed when they did.
struct Written {
    epoch: GroupId,
    revoked: BTreeSet<AuthorId>,
}

struct Model {
    devs: Vec<Dev>,
    members: usize,
    root: GroupId,
    clock: u64,
    rng: ChaCha20Rng,
    texts: Vec<Written>,
    initial: BTreeSet<AuthorId>,
    /// (admin, added), honest or hostile
    adds: Vec<(AuthorId, AuthorId)>,
    /// (admin, removed), honest or hostile
    removes: Vec<(AuthorId, AuthorId)>,
    left: BTreeSet<AuthorId>,
    /// Hostile admins that wrote a change to leave.
    admins_left: BTreeSet<AuthorId>,
    /// Whom the creator made an admin.
    promoted: BTreeSet<AuthorId>,
    /// Whether a hostile member may be made an admin.
    hostile_admins: bool,
}

impl Model {
    fn new(members: usize, hostile: &[usize], hostile_admins: bool, seed: u64) -> Model {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let devs: Vec<Dev> = (0..members + OUTSIDERS)
            .map(|i| Dev {
                id: Identity::generate(&format!("d{i}"), &mut rng).unwrap(),
                hostile: hostile.contains(&i),
                store: MemoryStore::new(),
                chains: Vec::new(),
            })
            .collect();
        let others: Vec<(PublicIdentity, String)> = devs[1..members]
            .iter()
            .map(|d| (d.id.public(), d.id.name().to_owned()))
            .collect();
        let first = Epoch::create(&devs[0].id, "model", &others, &mut rng).unwrap();
        let root = first.root;
        let initial = first.members().iter().map(|m| m.public.sign).collect();
        let mut model = Model {
            devs,
            members,
            root,
            clock: NOW - 1_000_000,
            rng,
            texts: Vec::new(),
            initial,
            adds: Vec::new(),
            removes: Vec::new(),
            left: BTreeSet::new(),
            admins_left: BTreeSet::new(),
            promoted: BTreeSet::new(),
            hostile_admins,
        };
        for j in 1..members {
            model.welcome(0, j, &first);
        }
        model.devs[0].chains.push(Chain::new(first));
        for j in 1..members {
            model.react(j);
        }
        model
    }

    fn sign(&self, i: usize) -> AuthorId {
        self.devs[i].id.public().sign
    }

    fn pair(&self, i: usize, j: usize) -> Group {
        self.devs[i]
            .id
            .contact(&self.devs[j].id.public())
            .unwrap()
            .direct_group()
            .clone()
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1000;
        self.clock
    }

    fn chain(&self, i: usize) -> Option<&Chain> {
        self.devs[i].chains.iter().find(|c| c.root() == self.root)
    }

    /// `i` welcomes `j` into `epoch`, dated as a node dates it: after
    /// `i`'s earlier welcomes to `j` into the group, whatever the clock
    /// says.
    fn welcome(&mut self, i: usize, j: usize, epoch: &Epoch) {
        let pair = self.pair(i, j);
        let now = self.tick();
        let time = epoch
            .welcome_time(&self.devs[i].store, &pair, &self.sign(i), now)
            .unwrap();
        let msg = epoch
            .welcome(&self.devs[i].id, &pair, time, &mut self.rng)
            .unwrap();
        self.devs[i].store.insert(&pair.id, &msg).unwrap();
        self.devs[j].store.insert(&pair.id, &msg).unwrap();
    }

    /// Every epoch `i` holds, with its group.
    fn held(&self, i: usize) -> Vec<Epoch> {
        self.devs[i]
            .chains
            .iter()
            .flat_map(|c| c.epochs().cloned())
            .collect()
    }

    /// Copies what `from` holds to `to`: the messages of every epoch both
    /// hold, as a session does (only epochs both are members of), or of
    /// every epoch `to` holds when `any` (a replay); and their 1:1 log.
    fn push(&mut self, from: usize, to: usize, any: bool) -> bool {
        if from == to {
            return false;
        }
        let mut moved = false;
        let (a, b) = (self.sign(from), self.sign(to));
        let theirs = self.held(to);
        let mine: BTreeSet<GroupId> = self.held(from).iter().map(Epoch::id).collect();
        for epoch in &theirs {
            let shared = mine.contains(&epoch.id())
                && (any || (epoch.member(&a).is_some() && epoch.member(&b).is_some()));
            if !shared {
                continue;
            }
            let msgs: Vec<Vec<u8>> = self.devs[from]
                .store
                .messages(&epoch.id())
                .map(|(_, m)| m.to_vec())
                .collect();
            for bytes in msgs {
                let msg = Message::decode(bytes).unwrap();
                if self.devs[to]
                    .store
                    .contains(&epoch.id(), &msg.key())
                    .unwrap()
                {
                    continue;
                }
                if msg.validate(epoch.group(), NOW).is_err() {
                    continue;
                }
                let accepts = self.devs[to]
                    .chains
                    .iter()
                    .find(|c| c.root() == epoch.root)
                    .is_none_or(|c| c.accepts(&epoch.id(), &msg.author(), msg.kind()));
                if accepts {
                    self.devs[to].store.insert(&epoch.id(), &msg).unwrap();
                    moved = true;
                }
            }
        }
        let pair = self.pair(from, to);
        let msgs: Vec<Vec<u8>> = self.devs[from]
            .store
            .messages(&pair.id)
            .map(|(_, m)| m.to_vec())
            .collect();
        for bytes in msgs {
            let msg = Message::decode(bytes).unwrap();
            if msg.validate(&pair, NOW).is_ok()
                && self.devs[to].store.insert(&pair.id, &msg).unwrap()
            {
                moved = true;
            }
        }
        moved
    }

    /// A session between `i` and `j`: it opens each epoch both are in as
    /// either learns of it (the node adds the group to the live session),
    /// and carries what either writes while it lasts, so it goes on until
    /// neither has anything new for the other. One exchange each way per
    /// meeting would take a device one epoch down a chain per meeting.
    fn meet(&mut self, i: usize, j: usize) -> bool {
        let mut moved = false;
        for _ in 0..MEETING_EXCHANGES {
            let a = self.push(i, j, false);
            let b = self.push(j, i, false);
            self.react(i);
            self.react(j);
            if !(a || b) {
                break;
            }
            moved = true;
        }
        moved
    }

    /// Reads welcomes and changes; an honest device then does what the
    /// protocol asks: key requests and answers, changes made again,
    /// welcomes written again, and removals and overrides it may make.
    fn react(&mut self, i: usize) {
        for _ in 0..4 {
            self.digest(i);
            if self.devs[i].hostile {
                return;
            }
            if !self.protocol_work(i) {
                return;
            }
        }
    }

    fn digest(&mut self, i: usize) {
        let contacts: Vec<usize> = (0..self.devs.len()).filter(|&j| j != i).collect();
        for j in contacts {
            let pair = self.pair(i, j);
            let msgs: Vec<Vec<u8>> = self.devs[i]
                .store
                .messages(&pair.id)
                .map(|(_, m)| m.to_vec())
                .collect();
            for bytes in msgs {
                let msg = Message::decode(bytes).unwrap();
                if msg.kind() != Kind::WELCOME {
                    continue;
                }
                if let Ok(epoch) = Epoch::from_welcome(&self.devs[i].id, &pair, &msg, NOW) {
                    let _ = Chain::take_welcome(
                        &mut self.devs[i].chains,
                        &msg.author(),
                        msg.time(),
                        epoch,
                    );
                }
            }
        }
        let d = &mut self.devs[i];
        for chain in &mut d.chains {
            chain.update(&d.id, &d.store, NOW).unwrap();
        }
    }

    /// One round of what an honest device writes by itself. Returns
    /// whether it wrote anything.
    fn protocol_work(&mut self, i: usize) -> bool {
        let Some(chain) = self.chain(i).cloned() else {
            return false;
        };
        let me = self.sign(i);
        let mut wrote = false;
        let work = chain.key_work(&me);
        for (epoch, next) in work.requests {
            let e = chain.epoch(&epoch).unwrap().clone();
            let now = self.tick();
            let msg = e
                .key_request(&self.devs[i].id, &next, now, &mut self.rng)
                .unwrap();
            wrote |= self.devs[i].store.insert(&epoch, &msg).unwrap();
        }
        for (epoch, to, next) in work.shares {
            let e = chain.epoch(&epoch).unwrap().clone();
            let n = chain.epoch(&next).unwrap().clone();
            let now = self.tick();
            let msg = e
                .key_share(&self.devs[i].id, &to, &n, now, &mut self.rng)
                .unwrap();
            wrote |= self.devs[i].store.insert(&epoch, &msg).unwrap();
        }
        for (epoch, change) in chain.overrides(&me) {
            let e = chain.epoch(&epoch).unwrap().clone();
            wrote |= self.make(i, &e, change);
        }
        if let Head::Member(head) = chain.head() {
            let head = head.clone();
            // One change at a time: the next one on the new head, next round.
            if let Some(change) = chain.reissue(&me).into_iter().next() {
                wrote |= self.make(i, &head, change);
            }
        }
        for (epoch, to) in chain.welcomes_again(&me) {
            // By signing key, as the node finds the contact: the epoch may
            // list them with a key-agreement key their adder chose.
            let Some(j) = (0..self.devs.len()).find(|&j| self.sign(j) == to.sign) else {
                continue;
            };
            let pair = self.pair(i, j);
            if Epoch::welcomed_into(&self.devs[i].store, &pair, &me, &epoch).unwrap() {
                continue;
            }
            let e = chain.epoch(&epoch).unwrap().clone();
            self.welcome(i, j, &e);
            wrote = true;
        }
        wrote
    }

    /// `i` makes `change` in `epoch` and welcomes whoever it adds. Boxes
    /// are sealed to the keys members named in the key requests `i` has
    /// read, as the node seals them.
    fn make(&mut self, i: usize, epoch: &Epoch, change: Change) -> bool {
        let now = self.tick();
        let named = self.chain(i).map(Chain::named_keys).unwrap_or_default();
        let Ok((msg, next)) =
            epoch.propose_to(&self.devs[i].id, change.clone(), &named, now, &mut self.rng)
        else {
            return false;
        };
        self.devs[i].store.insert(&epoch.id(), &msg).unwrap();
        if let (Change::Add { public, .. }, Some(next)) = (&change, &next) {
            // The welcome goes to whoever holds the signing key added,
            // whatever key-agreement key the add names.
            let j = (0..self.devs.len())
                .find(|&j| self.sign(j) == public.sign)
                .unwrap();
            self.welcome(i, j, next);
        }
        self.digest(i);
        true
    }

    fn writable(&self, i: usize) -> Option<Epoch> {
        self.chain(i)?.writable(&self.sign(i)).ok().cloned()
    }

    fn apply(&mut self, op: Op) {
        let n = self.devs.len();
        let m = self.members;
        match op {
            Op::Meet(a, b) => {
                self.meet(a % n, b % n);
            }
            Op::Text(i) => {
                let i = i % n;
                if self.devs[i].hostile {
                    return;
                }
                let Some(head) = self.writable(i) else {
                    return;
                };
                let now = self.tick();
                let msg = Message::create(
                    &self.devs[i].id,
                    head.group(),
                    now,
                    Kind::TEXT,
                    b"hello",
                    &mut self.rng,
                )
                .unwrap();
                self.devs[i].store.insert(&head.id(), &msg).unwrap();
                let revoked = self.chain(i).unwrap().revoked().clone();
                self.texts.push(Written {
                    epoch: head.id(),
                    revoked,
                });
            }
            Op::Add(a, o) => {
                let (a, o) = (a % n, m + o % OUTSIDERS);
                if self.devs[a].hostile {
                    return;
                }
                let Some(head) = self.writable(a) else {
                    return;
                };
                let change = Change::Add {
                    public: self.devs[o].id.public(),
                    name: format!("o{o}"),
                };
                if head.apply(&self.sign(a), &change).is_ok() && self.make(a, &head, change) {
                    self.adds.push((self.sign(a), self.sign(o)));
                }
            }
            Op::Remove(a, t) => {
                let (a, t) = (a % n, t % n);
                if self.devs[a].hostile {
                    return;
                }
                let Some(head) = self.writable(a) else {
                    return;
                };
                let change = Change::Remove(self.sign(t));
                if head.apply(&self.sign(a), &change).is_ok() && self.make(a, &head, change) {
                    self.removes.push((self.sign(a), self.sign(t)));
                }
            }
            Op::MakeAdmin(t) => {
                let t = t % n;
                if self.devs[t].hostile && !self.hostile_admins {
                    return;
                }
                let Some(head) = self.writable(0) else {
                    return;
                };
                let change = Change::MakeAdmin(self.sign(t));
                if head.apply(&self.sign(0), &change).is_ok() && self.make(0, &head, change) {
                    self.promoted.insert(self.sign(t));
                }
            }
            Op::Leave(i) => {
                let i = i % n;
                if self.devs[i].hostile || i == 0 {
                    return;
                }
                let Some(head) = self.writable(i) else {
                    return;
                };
                let me = self.sign(i);
                if head.is_admin(&me) {
                    if head.apply(&me, &Change::Leave).is_ok() && self.make(i, &head, Change::Leave)
                    {
                        self.left.insert(me);
                    }
                } else {
                    let now = self.tick();
                    let msg = head
                        .leave_request(&self.devs[i].id, now, &mut self.rng)
                        .unwrap();
                    self.devs[i].store.insert(&head.id(), &msg).unwrap();
                    self.left.insert(me);
                    self.react(i);
                }
            }
            Op::LateChange {
                who,
                epoch,
                time,
                sealing,
                change,
                target,
            } => {
                let Some(h) = self.hostile(who) else {
                    return;
                };
                let held = self.held(h);
                if held.is_empty() {
                    return;
                }
                let e = held[epoch % held.len()].clone();
                let me = self.sign(h);
                if !e.is_admin(&me) {
                    // All a member who is not an admin can write: a
                    // request to leave, into any epoch it holds.
                    if let Ok(msg) = e.leave_request(&self.devs[h].id, time, &mut self.rng) {
                        self.devs[h].store.insert(&e.id(), &msg).unwrap();
                    }
                    return;
                }
                let t = target % n;
                let change = match change {
                    0 => Change::Leave,
                    1 => Change::Remove(self.sign(t)),
                    2 => Change::Add {
                        public: self.devs[m + target % OUTSIDERS].id.public(),
                        name: "o".into(),
                    },
                    _ => Change::MakeAdmin(self.sign(t)),
                };
                let sealing = match sealing {
                    0 => Sealing::Honest,
                    1 => Sealing::WrongCommitment,
                    2 => Sealing::Garble(vec![self.sign(0)]),
                    _ => Sealing::Garble(e.members().iter().map(|m| m.public.sign).collect()),
                };
                if let Ok((msg, next)) = e.propose_sealed(
                    &self.devs[h].id,
                    change.clone(),
                    time,
                    sealing,
                    &mut self.rng,
                ) {
                    self.devs[h].store.insert(&e.id(), &msg).unwrap();
                    match &change {
                        Change::Add { public, .. } => {
                            self.adds.push((me, public.sign));
                            if let Some(next) = next {
                                let j = (0..n)
                                    .find(|&j| self.devs[j].id.public() == *public)
                                    .unwrap();
                                self.welcome(h, j, &next);
                            }
                        }
                        Change::Remove(x) => self.removes.push((me, *x)),
                        Change::Leave => {
                            self.admins_left.insert(me);
                        }
                        _ => {}
                    }
                    self.digest(h);
                }
            }
            Op::LateText { who, epoch, time } => {
                let Some(h) = self.hostile(who) else {
                    return;
                };
                let held = self.held(h);
                if held.is_empty() {
                    return;
                }
                let e = &held[epoch % held.len()];
                if let Ok(msg) = Message::create(
                    &self.devs[h].id,
                    e.group(),
                    time,
                    Kind::TEXT,
                    b"late",
                    &mut self.rng,
                ) {
                    self.devs[h].store.insert(&e.id(), &msg).unwrap();
                }
            }
            Op::ForgedWelcome {
                who,
                victim,
                number,
            } => {
                let Some(h) = self.hostile(who) else {
                    return;
                };
                let v = victim % n;
                if v == h || self.chain(v).is_none() {
                    return;
                }
                let Some(template) = self.held(h).first().cloned() else {
                    return;
                };
                let number = if number == 0 {
                    0
                } else {
                    template.number + number * 7
                };
                let body = self.forge(&template, h, v, number, None);
                let pair = self.pair(h, v);
                let now = self.tick();
                let msg = Message::create(
                    &self.devs[h].id,
                    &pair,
                    now,
                    Kind::WELCOME,
                    &body,
                    &mut self.rng,
                )
                .unwrap();
                self.devs[h].store.insert(&pair.id, &msg).unwrap();
                self.devs[v].store.insert(&pair.id, &msg).unwrap();
                self.react(v);
            }
            Op::Replay(who, victim) => {
                let Some(h) = self.hostile(who) else {
                    return;
                };
                let v = victim % n;
                self.push(h, v, true);
                self.react(v);
            }
        }
    }

    fn is_hostile(&self, sign: &AuthorId) -> bool {
        self.devs
            .iter()
            .any(|d| d.hostile && d.id.public().sign == *sign)
    }

    fn hostile(&self, who: usize) -> Option<usize> {
        let hostile: Vec<usize> = (0..self.devs.len())
            .filter(|&i| self.devs[i].hostile)
            .collect();
        (!hostile.is_empty()).then(|| hostile[who % hostile.len()])
    }

    /// An epoch of the real group as `h` would make one up: the creator's
    /// signed root (which every member holds), `h` an admin, the victim a
    /// member, a key of `h`'s choosing; the first epoch or a later one,
    /// after `parent` (an epoch and a change in it) or a made-up one.
    fn forge(
        &mut self,
        template: &Epoch,
        h: usize,
        v: usize,
        number: u32,
        parent: Option<(GroupId, [u8; 32])>,
    ) -> Vec<u8> {
        let t = template.encode();
        let name_len = template.name.len();
        let head_len = 1 + 32 + 64 + 1 + name_len + 32;
        let mut out = t[..head_len].to_vec();
        out.extend_from_slice(&number.to_be_bytes());
        if number > 0 {
            let mut made_up = [0u8; 64];
            self.rng.fill_bytes(&mut made_up);
            if let Some((epoch, change)) = parent {
                made_up[..32].copy_from_slice(&epoch.0);
                made_up[32..].copy_from_slice(&change);
            }
            out.extend_from_slice(&made_up);
        }
        let mut key = [0u8; 32];
        self.rng.fill_bytes(&mut key);
        out.extend_from_slice(&key);
        let mut members = vec![
            (self.devs[h].id.public(), true),
            (self.devs[v].id.public(), false),
        ];
        members.sort_by_key(|(p, _)| p.sign);
        out.extend_from_slice(&(members.len() as u16).to_be_bytes());
        for (p, admin) in members {
            out.extend_from_slice(&p.sign);
            out.extend_from_slice(&p.dh);
            out.push(u8::from(admin));
            out.push(1);
            out.push(b'x');
        }
        out
    }

    /// Every device's view, for a failure's message.
    fn dump(&self) -> String {
        let mut out = String::new();
        for (i, d) in self.devs.iter().enumerate() {
            let Some(c) = self.chain(i) else { continue };
            out += &format!(
                "\n device {i}{}: entries {:?}",
                if d.hostile { " (hostile)" } else { "" },
                c.entries().iter().map(|e| e.id).collect::<Vec<_>>()
            );
            for id in c.path() {
                let e = c.epoch(id).unwrap();
                let w = c.winner(id).map(|t| {
                    format!(
                        "{:?} by {} -> {:?}",
                        kind(&t.change),
                        self.who(&t.author),
                        t.next_id
                    )
                });
                out += &format!(
                    "\n   {:?} #{} members {:?} winner {:?}",
                    id,
                    e.number,
                    e.members()
                        .iter()
                        .map(|m| self.who(&m.public.sign))
                        .collect::<Vec<_>>(),
                    w
                );
            }
            for e in c.epochs() {
                if !c.path().contains(&e.id()) {
                    out += &format!(
                        "\n   off path {:?} #{} parent {:?}",
                        e.id(),
                        e.number,
                        e.parent()
                    );
                }
            }
        }
        out
    }

    fn who(&self, sign: &AuthorId) -> String {
        (0..self.devs.len())
            .find(|&i| self.sign(i) == *sign)
            .map_or("?".into(), |i| format!("d{i}"))
    }

    /// Partitions heal: everyone meets everyone until nothing moves.
    fn heal(&mut self) {
        let n = self.devs.len();
        for _ in 0..8 {
            let mut moved = false;
            for i in 0..n {
                for j in i + 1..n {
                    moved |= self.meet(i, j);
                }
            }
            if !moved {
                return;
            }
        }
        let mut why = String::new();
        for (i, d) in self.devs.iter().enumerate() {
            if let Some(c) = self.chain(i) {
                let me = self.sign(i);
                why += &format!(
                    "\n  device {i}{}: {:?} reissue {:?} overrides {:?} keys {:?}",
                    if d.hostile { " (hostile)" } else { "" },
                    c.head(),
                    c.reissue(&me),
                    c.overrides(&me),
                    c.key_work(&me)
                );
            }
        }
        panic!("the group did not settle:{why}");
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let creator = self.chain(0).unwrap();
        let Head::Member(consensus) = creator.head() else {
            return Err(TestCaseError::fail(format!(
                "the creator is not a member: {:?}",
                creator.head()
            )));
        };
        let members: BTreeSet<AuthorId> =
            consensus.members().iter().map(|m| m.public.sign).collect();
        for (i, d) in self.devs.iter().enumerate() {
            if d.hostile {
                continue;
            }
            let listed = members.contains(&self.sign(i));
            let Some(chain) = self.chain(i) else {
                prop_assert!(!listed, "device {i} is listed but never heard of the group");
                continue;
            };
            match chain.head() {
                Head::Member(h) => {
                    if listed {
                        prop_assert_eq!(
                            h.id(),
                            consensus.id(),
                            "device {} is in another epoch:{}",
                            i,
                            self.dump()
                        );
                        // Healed, an honest member the group lists can
                        // write: no one it holds revoked is left in the
                        // head, and it does not hold itself removed.
                        let writable = chain.writable(&self.sign(i));
                        prop_assert!(
                            writable.is_ok() || chain.leaving(&self.sign(i)),
                            "member {} cannot write: {:?}:{}",
                            i,
                            writable.err(),
                            self.dump()
                        );
                    } else {
                        // Welcomed into an epoch that lost and never
                        // re-added (its adder is gone): only an outsider.
                        prop_assert!(i >= self.members, "member {i} follows a dead epoch");
                    }
                }
                Head::Waiting { .. } => {
                    // Only an outsider a hostile admin added into a branch
                    // that lost, with a key no one can give it.
                    prop_assert!(
                        !listed && i >= self.members,
                        "device {i} still waits for a key"
                    );
                }
                Head::Out { .. } => prop_assert!(!listed, "device {i} is listed but out"),
            }
        }
        // No one who can hold an epoch wrote into after learning of their
        // removal.
        for w in &self.texts {
            for (i, d) in self.devs.iter().enumerate() {
                if w.revoked.contains(&self.sign(i)) {
                    let holds = d.chains.iter().any(|c| c.epoch(&w.epoch).is_some());
                    prop_assert!(
                        !holds,
                        "device {i} holds an epoch written after its removal"
                    );
                }
            }
        }
        // Members are what admins made them.
        let creator_id = self.sign(0);
        // Whom the creator removed, as the group's path says (removals the
        // protocol made by itself included).
        let by_creator: Vec<(AuthorId, AuthorId)> = creator
            .path()
            .iter()
            .filter_map(|id| creator.winner(id))
            .filter_map(|t| match t.change {
                Change::Remove(x) if t.author == creator_id => Some((creator_id, x)),
                _ => None,
            })
            .collect();
        let hostile_admin_left = self
            .devs
            .iter()
            .enumerate()
            .any(|(i, d)| d.hostile && consensus.is_admin(&self.sign(i)));
        let gone: BTreeSet<AuthorId> = self
            .removes
            .iter()
            .filter(|(by, x)| {
                // An admin's removal binds while it is there (not removed
                // by the creator, not gone) and of a member the creator
                // did not make an admin.
                *by == creator_id
                    || (!hostile_admin_left
                        && !creator_removed(&by_creator, *by, &creator_id)
                        && !self.left.contains(by)
                        && !self.admins_left.contains(by)
                        && !self.promoted.contains(x))
            })
            .map(|(_, x)| *x)
            .chain(self.left.iter().copied())
            .collect();
        let added: BTreeSet<AuthorId> = self.adds.iter().map(|(_, x)| *x).collect();
        for m in &members {
            prop_assert!(
                self.initial.contains(m) || added.contains(m),
                "a member no admin added"
            );
            prop_assert!(
                !gone.contains(m),
                "a removed or departed member ({}) is back:{}",
                self.who(m),
                self.dump()
            );
        }
        for (i, d) in self.devs.iter().enumerate() {
            let s = self.sign(i);
            // Added by an honest admin who is still there to make its add
            // again if it lost a fork; a hostile admin's add that lost,
            // or one whose adder left or was removed, stays lost.
            let was = self.initial.contains(&s)
                || self.adds.iter().any(|(by, x)| {
                    *x == s
                        && !self.is_hostile(by)
                        && members.contains(by)
                        && !creator_removed(&by_creator, *by, &creator_id)
                });
            if !d.hostile && was && !members.contains(&s) {
                let removed = self.removes.iter().any(|(_, x)| *x == s) || self.left.contains(&s);
                prop_assert!(
                    removed,
                    "honest device {i} is gone but no admin removed it:{}\n adds {:?}",
                    self.dump(),
                    self.adds
                        .iter()
                        .map(|(a, b)| (self.who(a), self.who(b)))
                        .collect::<Vec<_>>()
                );
            }
        }
        Ok(())
    }
}

fn kind(c: &Change) -> &'static str {
    match c {
        Change::Add { .. } => "add",
        Change::Remove(_) => "remove",
        Change::Leave => "leave",
        Change::MakeAdmin(_) => "admin",
    }
}

/// Whether the creator removed `who` (an admin whose own removals then
/// do not count, nor its adds that lost).
fn creator_removed(removes: &[(AuthorId, AuthorId)], who: AuthorId, creator: &AuthorId) -> bool {
    removes.iter().any(|(by, x)| by == creator && *x == who)
}

fn schedule() -> impl Strategy<Value = (usize, Vec<usize>, bool, u64, Vec<Op>)> {
    (3usize..=6).prop_flat_map(|n| {
        (
            Just(n),
            proptest::sample::subsequence((1..n).collect::<Vec<_>>(), 1..=2),
            any::<bool>(),
            any::<u64>(),
            proptest::collection::vec(op(), 10..60),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("MODEL_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn hostile_members_cannot_bend_membership((n, hostile, admins, seed, ops) in schedule()) {
        let mut model = Model::new(n, &hostile, admins, seed);
        for op in ops {
            model.apply(op);
        }
        model.heal();
        model.check()?;
    }
}

/// Regression: a schedule `hostile_members_cannot_bend_membership` found
/// on 2026-11-29 ("member 4 follows a dead epoch"), kept here as found
/// (its shrinking stopped at 256 steps) rather than in the property
/// test's regressions file. Checks that every honest device ends where
/// the creator is, or out. What happens in it: the creator makes devices
/// 3 and 4 admins; both had asked to leave, as had device 2 (the hostile
/// one). Device 4, catching up, removes device 2 from the newest epoch;
/// the creator reads that, removes device 4 on its branch, then device 3.
/// Device 3, catching up later, removes device 2 from the same epoch, a
/// fork the creator's removal of device 3 strikes. Device 4 reads
/// device 3's change and the creator's removal of itself, but not the
/// epoch after it, where device 3's removal lies: as far as it read,
/// device 3's change won the fork on its id, and it stayed a member of
/// that branch, which no one writes into again. Having read the
/// creator's removal of itself, it is now out wherever its path leads.
/// [`a_member_removed_on_the_winning_branch_is_out_not_on_the_losing_one`]
/// is the same, made short.
#[test]
fn late_changes_and_a_forged_welcome_leave_no_member_on_a_dead_epoch() {
    let ops = vec![
        Op::Text(0),
        Op::Text(7),
        Op::MakeAdmin(3),
        Op::MakeAdmin(4),
        Op::Meet(2, 0),
        Op::LateChange {
            who: 0,
            epoch: 0,
            time: 0,
            sealing: 0,
            change: 0,
            target: 0,
        },
        Op::LateText {
            who: 0,
            epoch: 0,
            time: 355,
        },
        Op::LateChange {
            who: 8,
            epoch: 3,
            time: 330184982916,
            sealing: 1,
            change: 0,
            target: 8,
        },
        Op::LateChange {
            who: 9,
            epoch: 14,
            time: 899267259749,
            sealing: 1,
            change: 2,
            target: 8,
        },
        Op::LateChange {
            who: 6,
            epoch: 15,
            time: 7439440560,
            sealing: 3,
            change: 2,
            target: 2,
        },
        Op::ForgedWelcome {
            who: 5,
            victim: 3,
            number: 1,
        },
        Op::LateText {
            who: 14,
            epoch: 14,
            time: 1645630060473,
        },
        Op::Text(14),
        Op::LateChange {
            who: 7,
            epoch: 12,
            time: 1562705160332,
            sealing: 0,
            change: 3,
            target: 4,
        },
        Op::LateChange {
            who: 15,
            epoch: 3,
            time: 16483128480,
            sealing: 1,
            change: 2,
            target: 6,
        },
        Op::LateChange {
            who: 4,
            epoch: 1,
            time: 1510785415742,
            sealing: 3,
            change: 3,
            target: 12,
        },
        Op::LateChange {
            who: 10,
            epoch: 6,
            time: 485699457603,
            sealing: 1,
            change: 0,
            target: 2,
        },
        Op::LateText {
            who: 15,
            epoch: 2,
            time: 1052824862816,
        },
        Op::Leave(4),
        Op::Meet(11, 9),
        Op::Leave(10),
    ];
    let mut model = Model::new(5, &[2], false, 1498128111599922371);
    for op in ops {
        model.apply(op);
    }
    model.heal();
    model.check().unwrap();
}

/// Ben (device 1) and Cat (device 2), admins of the healed model `m`,
/// each remove Eve (device 4) from its head at once, Cat's change with
/// the smaller id; Ben's reaches Ben and the creator, Cat's Cat and Dan
/// (device 3), none of them read yet. Returns the epoch they fork.
fn ben_and_cat_remove_eve_at_once(m: &mut Model) -> Epoch {
    let (ben, cat, dan, eve) = (1, 2, 3, 4);
    m.heal();
    let fork = m.writable(0).expect("the creator is a member");
    assert_eq!(m.writable(dan).map(|e| e.id()), Some(fork.id()), "one head");
    let remove_eve = Change::Remove(m.sign(eve));
    let now = m.tick();
    let (bens, _) = fork
        .propose(&m.devs[ben].id, remove_eve.clone(), now, &mut m.rng)
        .unwrap();
    let mut cats = None;
    for _ in 0..64 {
        let now = m.tick();
        let (msg, _) = fork
            .propose(&m.devs[cat].id, remove_eve.clone(), now, &mut m.rng)
            .unwrap();
        if msg.id() < bens.id() {
            cats = Some(msg);
            break;
        }
    }
    let cats = cats.expect("one of 64 draws");
    for (i, msg) in [(ben, &bens), (0, &bens), (cat, &cats), (dan, &cats)] {
        m.devs[i].store.insert(&fork.id(), msg).unwrap();
    }
    m.removes.push((m.sign(ben), m.sign(eve)));
    m.removes.push((m.sign(cat), m.sign(eve)));
    fork
}

/// Ben (device 1) and Cat (device 2), both admins, each remove Eve
/// (device 4) from one epoch at once, Cat's change with the smaller id.
/// The creator reads only Ben's, and on his branch removes Dan (device 3,
/// an admin too), then Cat: that strikes Cat's change, and Ben's branch
/// wins. Dan reads both changes and the creator's removal of himself, but
/// not the epoch after it (it does not list him), where Cat's removal
/// lies. As far as he reads, Cat's change wins on its id. He followed it
/// and stayed a member of her epoch for good, one no one writes into
/// again (and where no one may remove him: only the creator removes an
/// admin). Having read the creator's removal of himself, he is out.
#[test]
fn a_member_removed_on_the_winning_branch_is_out_not_on_the_losing_one() {
    let (ben, cat, dan) = (1, 2, 3);
    let mut m = Model::new(5, &[], false, 48);
    for i in [ben, cat, dan] {
        m.apply(Op::MakeAdmin(i));
    }
    let fork = ben_and_cat_remove_eve_at_once(&mut m);
    m.digest(0);
    // On Ben's branch, the creator removes Dan, then Cat.
    let mut removed_from = Vec::new();
    for x in [dan, cat] {
        let head = m.writable(0).expect("the creator is a member");
        assert!(m.make(0, &head, Change::Remove(m.sign(x))));
        m.removes.push((m.sign(0), m.sign(x)));
        removed_from.push(head.id());
    }
    // Dan reads Ben's change, and the creator's removal of him.
    m.meet(0, dan);
    let creator = m.chain(0).unwrap();
    assert_eq!(
        creator.winner(&fork.id()).map(|t| t.author),
        Some(m.sign(ben)),
        "the creator's removal of Cat strikes her change"
    );
    let chain = m.chain(dan).unwrap();
    assert_eq!(
        chain.winner(&fork.id()).map(|t| t.author),
        Some(m.sign(cat)),
        "as far as Dan reads, Cat's change wins"
    );
    match chain.head() {
        Head::Out { last, change } => {
            assert_eq!(last.id(), removed_from[0], "where the creator removed him");
            assert_eq!(change.author, m.sign(0));
            assert_eq!(change.change, Change::Remove(m.sign(dan)));
        }
        other => panic!("Dan is not out: {other:?}{}", m.dump()),
    }
    m.heal();
    m.check().unwrap();
}

/// The same as `a_member_removed_on_the_winning_branch_is_out_not_on_the_losing_one`,
/// with Dan, no admin, removed on the winning branch by Ben, an admin,
/// not by the creator: Dan holds himself revoked by Ben's removal (Ben is
/// not gone as far as Dan reads), so he is out, not a member (unable to
/// write for good) of Cat's epoch, which lost and no one writes into.
/// Before, only the creator's removal put him out. (Review of stop 73,
/// M1.)
#[test]
fn a_member_an_admin_removed_on_the_winning_branch_is_out_not_on_the_losing_one() {
    let (ben, cat, dan) = (1, 2, 3);
    let mut m = Model::new(5, &[], false, 49);
    for i in [ben, cat] {
        m.apply(Op::MakeAdmin(i));
    }
    let fork = ben_and_cat_remove_eve_at_once(&mut m);
    m.digest(ben);
    m.digest(0);
    // On Ben's branch, Ben removes Dan; the creator reads it and removes
    // Cat, striking her change.
    let head = m.writable(ben).expect("Ben is a member");
    assert!(m.make(ben, &head, Change::Remove(m.sign(dan))));
    m.removes.push((m.sign(ben), m.sign(dan)));
    m.meet(0, ben);
    let head = m.writable(0).expect("the creator is a member");
    assert!(m.make(0, &head, Change::Remove(m.sign(cat))));
    m.removes.push((m.sign(0), m.sign(cat)));
    // Dan reads Ben's change, and Ben's removal of him.
    m.meet(0, dan);
    let creator = m.chain(0).unwrap();
    assert_eq!(
        creator.winner(&fork.id()).map(|t| t.author),
        Some(m.sign(ben)),
        "the creator's removal of Cat strikes her change"
    );
    let chain = m.chain(dan).unwrap();
    assert_eq!(
        chain.winner(&fork.id()).map(|t| t.author),
        Some(m.sign(cat)),
        "as far as Dan reads, Cat's change wins"
    );
    match chain.head() {
        Head::Out { change, .. } => {
            assert_eq!(change.author, m.sign(ben));
            assert_eq!(change.change, Change::Remove(m.sign(dan)));
        }
        other => panic!("Dan is not out: {other:?}{}", m.dump()),
    }
    m.heal();
    m.check().unwrap();
}

/// Mal (device 2), made an admin, adds an outsider (device 3), who
/// joins: the model, and the welcome Mal would forge for the outsider
/// into an epoch she made up with a large number.
fn mal_adds_an_outsider() -> (Model, Op) {
    let mut m = Model::new(3, &[2], true, 45);
    m.apply(Op::MakeAdmin(2));
    m.heal();
    let head = m.writable(2).expect("Mal is a member");
    let outsider = m.devs[3].id.public();
    let add = Change::Add {
        public: outsider,
        name: "o3".into(),
    };
    assert!(m.make(2, &head, add));
    m.adds.push((m.sign(2), outsider.sign));
    m.meet(2, 3);
    m.meet(0, 2);
    let forged = Op::ForgedWelcome {
        who: 0,
        victim: 3,
        number: 10_000,
    };
    (m, forged)
}

/// Mal, an admin, adds an outsider (device 3); the creator then removes
/// Mal. Mal still holds the creator's signed root, so she welcomes the
/// outsider, whom she added, into an epoch she made up with a large
/// number: before the outsider hears of her removal, or after. Either
/// way the outsider ends where the group is (it took the welcome from its
/// own adder, and before the fix followed it for good: the made-up
/// number "led furthest").
#[test]
fn a_removed_adder_cannot_move_whom_she_added() {
    for before in [false, true] {
        let (mut m, forged) = mal_adds_an_outsider();
        if before {
            m.apply(forged.clone());
        }
        m.apply(Op::Remove(0, 2));
        m.meet(0, 3);
        if !before {
            m.apply(forged);
        }
        m.heal();
        m.check()
            .unwrap_or_else(|e| panic!("welcome {}: {e}", if before { "before" } else { "after" }));
        assert!(!m.chain(3).unwrap().revoked().is_empty());
    }
}

/// Mal, an admin, adds an outsider (device 3), then leaves. She still
/// holds the creator's signed root, so she welcomes the outsider, whom
/// she added, into an epoch she made up with a large number: before the
/// outsider hears she left, or after. Either way the outsider ends where
/// the group is. Before, a welcomer who left was not passed over as one
/// removed is: the outsider took the welcome (from its own adder), the
/// made-up number "led furthest", and it followed Mal for good.
#[test]
fn an_adder_who_left_cannot_move_whom_she_added() {
    for before in [false, true] {
        let (mut m, forged) = mal_adds_an_outsider();
        if before {
            m.apply(forged.clone());
        }
        let head = m.writable(2).expect("Mal is a member");
        assert!(m.make(2, &head, Change::Leave));
        m.admins_left.insert(m.sign(2));
        m.meet(0, 2);
        m.meet(0, 3);
        if !before {
            m.apply(forged);
        }
        m.heal();
        let when = if before { "before" } else { "after" };
        m.check().unwrap_or_else(|e| panic!("welcome {when}: {e}"));
        let Head::Member(group) = m.chain(0).unwrap().head() else {
            panic!("the creator is out");
        };
        let Head::Member(there) = m.chain(3).unwrap().head() else {
            panic!("welcome {when}: the outsider is not a member:{}", m.dump());
        };
        assert_eq!(there.id(), group.id(), "welcome {when}:{}", m.dump());
        assert!(there.member(&m.sign(2)).is_none());
    }
}

/// Mal, an admin, adds an outsider with a box for Ben (another admin)
/// that does not open, and she and Eve (a member) each answer Ben's
/// request for the key with junk. Only Ben can tell junk from the key;
/// before the fix, the creator, seeing an answer there, gave none, and
/// Ben (of Mal's rank, so unable to make the change again) waited for
/// good. Now he gets the key and ends where the group is.
#[test]
fn a_junk_key_answer_keeps_the_key_from_no_one() {
    let mut m = Model::new(4, &[2, 3], true, 46);
    m.apply(Op::MakeAdmin(1));
    m.apply(Op::MakeAdmin(2));
    m.heal();
    let head = m.writable(2).expect("Mal is a member");
    let ben = m.sign(1);
    let outsider = m.devs[4].id.public();
    let add = Change::Add {
        public: outsider,
        name: "o4".into(),
    };
    let now = m.tick();
    let (msg, next) = head
        .propose_sealed(
            &m.devs[2].id,
            add,
            now,
            Sealing::Garble(vec![ben]),
            &mut m.rng,
        )
        .unwrap();
    let next = next.expect("Mal is in the next epoch");
    m.devs[2].store.insert(&head.id(), &msg).unwrap();
    m.adds.push((m.sign(2), outsider.sign));
    m.welcome(2, 4, &next);
    for h in [2, 3] {
        junk_key_answer(&mut m, h, &head, &next, ben);
    }
    m.push(2, 3, false);
    m.heal();
    m.check().unwrap();
    let Head::Member(at) = m.chain(1).unwrap().head() else {
        panic!("Ben waits: {:?}", m.chain(1).unwrap().head());
    };
    assert!(at.member(&outsider.sign).is_some());
}

/// Device `h` answers `to`'s request for `next`'s key, in `head`'s log,
/// with junk (only `to` can tell).
fn junk_key_answer(m: &mut Model, h: usize, head: &Epoch, next: &Epoch, to: AuthorId) {
    let mut body = vec![2];
    body.extend_from_slice(&next.id().0);
    body.extend_from_slice(&to);
    let mut junk = [0u8; 32 + 48];
    m.rng.fill_bytes(&mut junk);
    body.extend_from_slice(&junk);
    let now = m.tick();
    let answer = Message::create(
        &m.devs[h].id,
        head.group(),
        now,
        Kind::KEY,
        &body,
        &mut m.rng,
    )
    .unwrap();
    m.devs[h].store.insert(&head.id(), &answer).unwrap();
}

/// Mal, an admin, removes Zed and garbles Ben's box; Zed (removed: he
/// never had a box) and Kit answer Ben's request for the key with junk.
/// Two answers from members besides the change's author stopped the
/// others answering, so Ben waited for good. An answer counts only from
/// a member of the epoch whose key is asked for: the creator answers.
#[test]
fn a_junk_key_answer_from_someone_removed_does_not_count() {
    let mut m = Model::new(5, &[2, 3, 4], true, 47);
    m.apply(Op::MakeAdmin(1));
    m.apply(Op::MakeAdmin(2));
    m.heal();
    let head = m.writable(2).expect("Mal is a member");
    let ben = m.sign(1);
    let now = m.tick();
    let (msg, next) = head
        .propose_sealed(
            &m.devs[2].id,
            Change::Remove(m.sign(3)),
            now,
            Sealing::Garble(vec![ben]),
            &mut m.rng,
        )
        .unwrap();
    let next = next.expect("Mal is in the next epoch");
    m.devs[2].store.insert(&head.id(), &msg).unwrap();
    m.removes.push((m.sign(2), m.sign(3)));
    for h in [3, 4] {
        junk_key_answer(&mut m, h, &head, &next, ben);
    }
    m.push(2, 3, false);
    m.push(2, 4, false);
    m.heal();
    m.check().unwrap();
    let Head::Member(at) = m.chain(1).unwrap().head() else {
        panic!("Ben waits: {:?}", m.chain(1).unwrap().head());
    };
    assert!(at.member(&m.sign(3)).is_none());
}

/// Ben (device 1) and Mal (device 2, hostile), both admins, add the first
/// outsider into one epoch at once. Of two admins' changes the one with
/// the smaller id wins: Mal's is drawn again until it wins if `mal_wins`,
/// loses if not. The losing add's welcome reaches the outsider first, the
/// winning one's after; then everyone meets. Returns the model, and the
/// epochs the winning and the losing add made.
fn two_adds_of_one_newcomer(mal_wins: bool) -> (Model, Epoch, Epoch) {
    adds_of_one_newcomer(mal_wins, false)
}

/// [`two_adds_of_one_newcomer`]; if `forged`, device 3 (Eve) is a hostile
/// admin too, and before everyone meets she adds the outsider's signing
/// key with a dh key of her own making into the same epoch, her add
/// losing too and its id the largest of the three (she sends it to no
/// one: the others get it as they meet).
fn adds_of_one_newcomer(mal_wins: bool, forged: bool) -> (Model, Epoch, Epoch) {
    let (mut m, won, lost) = adds_before_anyone_meets(mal_wins, forged);
    m.heal();
    let fork = won.parent().expect("a later epoch");
    let creator = m.chain(0).unwrap();
    let winner = creator.winner(&fork).expect("a winner");
    assert_eq!(winner.next_id, won.id(), "the smaller id won");
    (m, won, lost)
}

/// [`adds_of_one_newcomer`] before everyone meets: each adder has read
/// only its own add, and the outsider holds the epoch that lost.
fn adds_before_anyone_meets(mal_wins: bool, forged: bool) -> (Model, Epoch, Epoch) {
    let hostile: &[usize] = if forged { &[2, 3] } else { &[2] };
    let mut m = Model::new(4, hostile, true, 21);
    m.apply(Op::MakeAdmin(1));
    m.apply(Op::MakeAdmin(2));
    if forged {
        m.apply(Op::MakeAdmin(3));
    }
    m.heal();
    let o = m.members;
    let head = m.writable(1).expect("Ben is a member");
    assert_eq!(m.writable(2).map(|e| e.id()), Some(head.id()), "one head");
    let add = Change::Add {
        public: m.devs[o].id.public(),
        name: "o".into(),
    };
    let now = m.tick();
    let (ben, ben_next) = head
        .propose(&m.devs[1].id, add.clone(), now, &mut m.rng)
        .unwrap();
    let mut mal = None;
    for _ in 0..64 {
        let now = m.tick();
        let (msg, next) = head
            .propose(&m.devs[2].id, add.clone(), now, &mut m.rng)
            .unwrap();
        if (msg.id() < ben.id()) == mal_wins {
            mal = Some((msg, next));
            break;
        }
    }
    let (mal, mal_next) = mal.expect("one of 64 draws");
    let ben = (1, ben, ben_next.expect("Ben is in the next epoch"));
    let mal = (2, mal, mal_next.expect("Mal is in the next epoch"));
    let (winner, loser) = if mal_wins { (mal, ben) } else { (ben, mal) };
    for (i, msg, next) in [&loser, &winner] {
        m.devs[*i].store.insert(&head.id(), msg).unwrap();
        m.adds.push((m.sign(*i), m.sign(o)));
        m.welcome(*i, o, next);
        m.digest(*i);
        m.react(o);
        // The winner's welcome is not taken: from neither the creator
        // nor the outsider's adder as it stands.
        assert_eq!(m.chain(o).unwrap().path().to_vec(), vec![loser.2.id()]);
    }
    if forged {
        let eve = 3;
        assert!(head.is_admin(&m.sign(eve)), "Eve is an admin");
        let dh = Identity::generate("e", &mut m.rng).unwrap().public().dh;
        let made_up = Change::Add {
            public: PublicIdentity {
                sign: m.sign(o),
                dh,
            },
            name: "o".into(),
        };
        let mut last = None;
        for _ in 0..64 {
            let now = m.tick();
            let (msg, _) = head
                .propose(&m.devs[eve].id, made_up.clone(), now, &mut m.rng)
                .unwrap();
            if msg.id() > loser.1.id() {
                last = Some(msg);
                break;
            }
        }
        let msg = last.expect("one of 64 draws");
        m.devs[eve].store.insert(&head.id(), &msg).unwrap();
        m.adds.push((m.sign(eve), m.sign(o)));
        m.digest(eve);
    }
    (m, winner.2, loser.2)
}

/// Two admins, Ben and Mal, add the same outsider into one epoch at once;
/// Mal's add loses the fork but her welcome reaches the outsider first.
/// It took her epoch as its entry, refused Ben's welcome (it takes one
/// into a group it knows only from the creator or its own adder), and
/// held only the epoch that lost, for good: the one case of the model
/// proptest that failed, about 1 run in 28. The outsider cannot read the
/// epoch they forked, so it cannot tell which won, nor Ben's word from a
/// made-up sibling of Mal's; the creator, who reads it, now welcomes it
/// into the winner.
#[test]
fn a_newcomer_whose_first_welcome_lost_a_fork_ends_on_the_winner() {
    let (m, won, _) = two_adds_of_one_newcomer(false);
    let o = m.members;
    let chain = m.chain(o).unwrap();
    match chain.head() {
        Head::Member(h) => assert_eq!(h.id(), won.id(), "on the epoch that lost:{}", m.dump()),
        other => panic!("the outsider is not a member: {other:?}"),
    }
    assert!(chain
        .entries()
        .iter()
        .any(|e| e.id == won.id() && e.by == m.sign(0)));
    assert_eq!(
        m.chain(0).unwrap().welcomes_again(&m.sign(0)),
        vec![(won.id(), m.devs[o].id.public())],
        "the creator welcomes again"
    );
    for i in [1, 3] {
        assert!(
            m.chain(i).unwrap().welcomes_again(&m.sign(i)).is_empty(),
            "neither the winning adder nor a member: the outsider would not hear them"
        );
    }
    m.check().unwrap();
}

/// As above; then Mal writes a change into her epoch that lost (an add of
/// the other outsider, which lists the first): its path from her welcome
/// now leads further than the winner's, and further led first. The
/// creator's entry passes over hers, a sibling: the outsider stays.
#[test]
fn a_losing_adder_writing_on_cannot_take_back_whom_the_creator_welcomed() {
    let (mut m, won, lost) = two_adds_of_one_newcomer(false);
    let o = m.members;
    let now = m.tick();
    let add = Change::Add {
        public: m.devs[o + 1].id.public(),
        name: "p".into(),
    };
    let (msg, next) = lost.propose(&m.devs[2].id, add, now, &mut m.rng).unwrap();
    let next = next.expect("Mal is in her next epoch");
    m.devs[2].store.insert(&lost.id(), &msg).unwrap();
    m.adds.push((m.sign(2), m.sign(o + 1)));
    m.digest(2);
    m.meet(2, o);
    assert!(
        m.chain(o).unwrap().epoch(&next.id()).is_some(),
        "the outsider opened it"
    );
    m.heal();
    match m.chain(o).unwrap().head() {
        Head::Member(h) => assert_eq!(h.id(), won.id(), "Mal took it back:{}", m.dump()),
        other => panic!("the outsider is not a member: {other:?}"),
    }
    m.check().unwrap();
}

/// The other way round: Mal's add wins, Ben's loses and his welcome came
/// first. Ben, whose welcome the outsider took, welcomes it into Mal's
/// epoch, as the creator does; it ends there, where the group is.
#[test]
fn a_newcomer_whose_honest_adder_lost_a_fork_ends_on_the_winner() {
    let (m, won, _) = two_adds_of_one_newcomer(true);
    let o = m.members;
    match m.chain(o).unwrap().head() {
        Head::Member(h) => assert_eq!(h.id(), won.id(), "on the epoch that lost:{}", m.dump()),
        other => panic!("the outsider is not a member: {other:?}"),
    }
    let again = vec![(won.id(), m.devs[o].id.public())];
    assert_eq!(m.chain(1).unwrap().welcomes_again(&m.sign(1)), again);
    assert_eq!(m.chain(0).unwrap().welcomes_again(&m.sign(0)), again);
    assert!(m.chain(3).unwrap().welcomes_again(&m.sign(3)).is_empty());
    m.check().unwrap();
}

/// Mal's add of the first outsider loses to another change in its epoch
/// (the creator's add of the other outsider), but her welcome is the
/// one the outsider took; later Ben adds it, and it refuses his welcome
/// (from neither the creator nor its adder). The creator welcomes it
/// into Ben's epoch, where the group has it: an add that lost calls for
/// it whether or not the add that took effect was its sibling.
#[test]
fn a_newcomer_added_again_after_its_add_lost_ends_where_the_group_has_it() {
    let mut m = Model::new(4, &[2], true, 21);
    m.apply(Op::MakeAdmin(1));
    m.apply(Op::MakeAdmin(2));
    m.heal();
    let o = m.members;
    let head = m.writable(0).expect("the creator is a member");
    let add = Change::Add {
        public: m.devs[o].id.public(),
        name: "o".into(),
    };
    let now = m.tick();
    let (msg, next) = head.propose(&m.devs[2].id, add, now, &mut m.rng).unwrap();
    let lost = next.expect("Mal is in her next epoch");
    m.devs[2].store.insert(&head.id(), &msg).unwrap();
    m.adds.push((m.sign(2), m.sign(o)));
    m.welcome(2, o, &lost);
    m.react(o);
    let other = Change::Add {
        public: m.devs[o + 1].id.public(),
        name: "p".into(),
    };
    assert!(m.make(0, &head, other));
    m.adds.push((m.sign(0), m.sign(o + 1)));
    m.heal();
    let won = m.chain(0).unwrap().winner(&head.id()).map(|t| t.author);
    assert_eq!(won, Some(m.sign(0)), "the creator's add won");
    assert_eq!(m.chain(o).unwrap().path().to_vec(), vec![lost.id()]);
    m.apply(Op::Add(1, 0));
    let added = m.chain(1).unwrap().last().clone();
    assert!(added.member(&m.sign(o)).is_some(), "Ben added it");
    m.heal();
    match m.chain(o).unwrap().head() {
        Head::Member(h) => assert_eq!(h.id(), added.id(), "left where Mal put it:{}", m.dump()),
        other => panic!("the outsider is not a member: {other:?}"),
    }
    m.check().unwrap();
}

/// `by` makes `change` at the creator's head, and the creator reads it
/// (only the creator: the others need not follow).
fn creator_reads(m: &mut Model, by: usize, change: Change) {
    let head = m.chain(0).unwrap().last().clone();
    let now = m.tick();
    let (msg, _) = head
        .propose(&m.devs[by].id, change.clone(), now, &mut m.rng)
        .unwrap();
    m.devs[0].store.insert(&head.id(), &msg).unwrap();
    if let Change::Remove(x) = change {
        m.removes.push((m.sign(by), x));
    }
    m.digest(0);
}

/// After [`two_adds_of_one_newcomer`] (Mal's add lost, and the creator
/// welcomed the outsider into Ben's epoch): `rounds` times, Mal removes
/// the outsider, then Ben adds it again and Mal adds it at once, her add
/// losing; then, if `last_out`, Mal removes it once more; then she
/// leaves, so her removals no longer count (it is not revoked). As the
/// creator reads it. Returns the model and the epochs Ben's adds made,
/// each the first of a stretch of the outsider's membership.
fn lost_forks_again_and_again(rounds: usize, last_out: bool) -> (Model, Vec<GroupId>) {
    let (mut m, won, _) = two_adds_of_one_newcomer(false);
    let outsider = m.devs[m.members].id.public();
    let add = Change::Add {
        public: outsider,
        name: "o".into(),
    };
    let mut stretches = vec![won.id()];
    for _ in 0..rounds {
        creator_reads(&mut m, 2, Change::Remove(outsider.sign));
        let head = m.chain(0).unwrap().last().clone();
        assert!(head.member(&outsider.sign).is_none(), "Mal removed it");
        let now = m.tick();
        let (ben, next) = head
            .propose(&m.devs[1].id, add.clone(), now, &mut m.rng)
            .unwrap();
        let next = next.expect("Ben is in the next epoch").id();
        let mut mal = None;
        for _ in 0..64 {
            let now = m.tick();
            let (msg, _) = head
                .propose(&m.devs[2].id, add.clone(), now, &mut m.rng)
                .unwrap();
            if msg.id() > ben.id() {
                mal = Some(msg);
                break;
            }
        }
        let mal = mal.expect("one of 64 draws");
        m.devs[0].store.insert(&head.id(), &mal).unwrap();
        m.devs[0].store.insert(&head.id(), &ben).unwrap();
        m.adds.push((m.sign(1), outsider.sign));
        m.adds.push((m.sign(2), outsider.sign));
        m.digest(0);
        let last = m.chain(0).unwrap().last().id();
        assert_eq!(last, next, "Ben's add won:{}", m.dump());
        stretches.push(next);
    }
    if last_out {
        creator_reads(&mut m, 2, Change::Remove(outsider.sign));
    }
    creator_reads(&mut m, 2, Change::Leave);
    m.admins_left.insert(m.sign(2));
    (m, stretches)
}

/// The epochs the creator welcomed device `j` into, as written.
fn creator_welcomes(m: &Model, j: usize) -> Vec<GroupId> {
    creator_welcomes_dated(m, j)
        .into_iter()
        .map(|(epoch, _)| epoch)
        .collect()
}

/// [`creator_welcomes`], each with the welcome's time, in the order of
/// those times.
fn creator_welcomes_dated(m: &Model, j: usize) -> Vec<(GroupId, u64)> {
    let pair = m.pair(0, j);
    m.devs[0]
        .store
        .messages(&pair.id)
        .filter_map(|(_, bytes)| Message::decode(bytes.to_vec()).ok())
        .filter(|msg| msg.kind() == Kind::WELCOME && msg.author() == m.sign(0))
        .filter_map(|msg| Some((Epoch::welcome_size(&pair, &msg)?.epoch, msg.time())))
        .collect()
}

/// Regression (a review of the welcome written again): Mal's add of the
/// outsider loses a fork to Ben's; then twice Mal removes it, Ben adds
/// it again and Mal adds it at once, losing; then she leaves, so her
/// removals no longer count. Each stretch of the outsider's membership
/// came after an add of hers that lost, and the creator welcomed it
/// again into every one, two of them long ended: each welcome into an
/// epoch it does not hold counts that epoch's members against what it
/// keeps for the creator, so such an admin could use up the creator's
/// allowance. Now once, into the stretch that reaches the head.
#[test]
fn a_member_added_in_lost_forks_again_and_again_is_welcomed_again_once() {
    let (mut m, stretches) = lost_forks_again_and_again(2, false);
    let o = m.members;
    let last = *stretches.last().unwrap();
    let creator = m.chain(0).unwrap();
    match creator.head() {
        Head::Member(h) => assert!(h.member(&m.sign(o)).is_some(), "the outsider is in"),
        other => panic!("the creator is not a member: {other:?}"),
    }
    assert_eq!(
        creator.welcomes_again(&m.sign(0)),
        vec![(last, m.devs[o].id.public())],
        "one, into the stretch that reaches the head:{}",
        m.dump()
    );
    assert_eq!(
        creator_welcomes(&m, o),
        vec![stretches[0]],
        "as the fork was read"
    );
    m.react(0);
    assert_eq!(creator_welcomes(&m, o), vec![stretches[0], last]);
}

/// As above, but Mal removes the outsider once more before she leaves:
/// it is in no epoch of the group's now, and the creator welcomed it
/// again all the same, into each stretch of its membership (all ended).
/// Now into none.
#[test]
fn a_member_removed_after_lost_forks_is_not_welcomed_again() {
    let (mut m, stretches) = lost_forks_again_and_again(2, true);
    let o = m.members;
    let creator = m.chain(0).unwrap();
    assert!(
        creator.last().member(&m.sign(o)).is_none(),
        "Mal removed it"
    );
    assert!(
        creator.welcomes_again(&m.sign(0)).is_empty(),
        "into a stretch that ended:{}",
        m.dump()
    );
    m.react(0);
    assert_eq!(
        creator_welcomes(&m, o),
        vec![stretches[0]],
        "as the fork was read"
    );
}

/// Regression (a review of the welcome written again): as in
/// [`a_newcomer_whose_first_welcome_lost_a_fork_ends_on_the_winner`]
/// (Ben's add of the outsider wins, Mal's loses and her welcome came
/// first), and Eve, another hostile admin, adds the outsider's signing key
/// with a dh key of her own into the same epoch, her add losing too and
/// read after Mal's. welcomes_again kept the identity of the last add
/// that lost it read, Eve's: the creator was asked to welcome someone no
/// contact is, welcomed no one, and the outsider stayed on Mal's epoch for
/// good. It now names the outsider as the winning epoch lists it.
#[test]
fn a_forged_add_that_lost_cannot_keep_the_creators_welcome_from_a_newcomer() {
    let (m, won, _) = adds_of_one_newcomer(false, true);
    let o = m.members;
    assert_eq!(
        won.member(&m.sign(o)).map(|x| x.public),
        Some(m.devs[o].id.public()),
        "Ben's add lists the outsider's own keys"
    );
    assert_eq!(
        m.chain(0).unwrap().welcomes_again(&m.sign(0)),
        vec![(won.id(), m.devs[o].id.public())],
        "the creator welcomes whom the group lists:{}",
        m.dump()
    );
    match m.chain(o).unwrap().head() {
        Head::Member(h) => assert_eq!(h.id(), won.id(), "on the epoch that lost:{}", m.dump()),
        other => panic!("the outsider is not a member: {other:?}"),
    }
    m.check().unwrap();
}

/// Mal (device 2), a sitting admin, writes `k` changes into a branch the
/// group left, from `from`, each into the epoch the one before made: adds
/// of devices of her own that no one else knows. Every member takes an
/// admin's changes, so they reach the outsider, who is listed in each and
/// opens it. Returns the last epoch.
fn mal_writes_on(m: &mut Model, from: &Epoch, k: u32) -> Epoch {
    let mut at = from.clone();
    for i in 0..k {
        let hers = Identity::generate(&format!("s{i}"), &mut m.rng).unwrap();
        let add = Change::Add {
            public: hers.public(),
            name: format!("s{i}"),
        };
        let now = m.tick();
        let (msg, next) = at.propose(&m.devs[2].id, add, now, &mut m.rng).unwrap();
        m.devs[2].store.insert(&at.id(), &msg).unwrap();
        at = next.expect("Mal is in her next epoch");
    }
    m.digest(2);
    at
}

/// Device `i`'s chain as a node stores it (one row per epoch: an entry,
/// with who welcomed it and when, or a plain epoch) and reads it back at
/// unlock: the same entries and the same path.
fn reopens_alike(m: &Model, i: usize) {
    let chain = m.chain(i).unwrap();
    let entered = |id: GroupId| chain.entries().iter().any(|e| e.id == id);
    let entries: Vec<(Epoch, strand_sync::Entry)> = chain
        .entries()
        .iter()
        .map(|e| (chain.epoch(&e.id).expect("an entry's epoch").clone(), *e))
        .collect();
    let others: Vec<Epoch> = chain
        .epochs()
        .filter(|e| !entered(e.id()))
        .cloned()
        .collect();
    let mut back = Chain::restore(entries, others).expect("an entry");
    back.update(&m.devs[i].id, &m.devs[i].store, NOW).unwrap();
    assert_eq!(back.entries(), chain.entries());
    assert_eq!(back.path(), chain.path());
}

/// Regression (a review of the welcome written again): Ben and Mal, both
/// admins, add the first outsider into one epoch at once; Mal's add wins
/// and Ben's welcome reaches the outsider first (Mal's is refused). Ben
/// reads the fork and welcomes it again into Mal's epoch, which it takes
/// (he welcomed it into its path's first epoch); the creator's welcome
/// into that epoch came after, and was taken as nothing new, so the
/// outsider had no entry from the creator. Then Mal writes on into Ben's
/// epoch, which lost: every member takes her changes, and the outsider's
/// entry there led further, so it followed her onto that branch, where
/// she had added a device of her own, and no one saw it. Now the
/// creator's welcome into an epoch held makes it the creator's entry,
/// which passes over the others.
#[test]
fn a_branch_that_lost_grown_by_an_admin_does_not_take_a_newcomer_back() {
    let (mut m, mal_next, ben_next) = adds_before_anyone_meets(true, false);
    let o = m.members;
    assert_eq!(m.chain(o).unwrap().path().to_vec(), vec![ben_next.id()]);
    // Ben reads Mal's add, which won, and welcomes the outsider again into
    // her epoch, before the creator does.
    m.push(2, 1, false);
    m.react(1);
    m.react(o);
    let chain = m.chain(o).unwrap();
    assert_eq!(chain.path().to_vec(), vec![mal_next.id()], "Ben's welcome");
    assert!(chain.entries().iter().all(|e| e.by == m.sign(1)));
    m.heal();
    assert!(
        creator_welcomes(&m, o).contains(&mal_next.id()),
        "the creator welcomed it into Mal's epoch, which it held"
    );
    let group = m.chain(0).unwrap().last().clone();
    assert_eq!(group.id(), mal_next.id(), "the group is on Mal's epoch");
    let k = group.number - ben_next.number + 2;
    let hers = mal_writes_on(&mut m, &ben_next, k);
    m.heal();
    assert!(
        m.chain(o).unwrap().epoch(&hers.id()).is_some(),
        "the outsider opened her branch"
    );
    m.check().unwrap();
    assert!(
        m.chain(o)
            .unwrap()
            .entries()
            .iter()
            .any(|e| e.id == mal_next.id() && e.by == m.sign(0)),
        "the creator's entry:{}",
        m.dump()
    );
    reopens_alike(&m, o);
}

/// After [`two_adds_of_one_newcomer`] (Ben's add of the outsider won,
/// Mal's lost, and the creator welcomed the outsider into Ben's epoch
/// `won`): Mal signs the add again into the epoch they forked, with an
/// id drawn below Ben's, and reads it herself (no one else has it yet).
/// Only an author's smallest id counts there, and she is an admin, so
/// once read it wins. Returns the epoch forked.
fn mal_adds_again_below_ben(m: &mut Model, won: &Epoch) -> GroupId {
    let o = m.members;
    let fork = won.parent().expect("Ben's epoch comes from the one forked");
    let creator = m.chain(0).unwrap();
    let forked = creator.epoch(&fork).expect("the creator holds it").clone();
    let ben = creator.winner(&fork).expect("Ben's add won").key.id;
    assert_eq!(creator_welcomes(m, o), vec![won.id()]);
    let add = Change::Add {
        public: m.devs[o].id.public(),
        name: "o".into(),
    };
    let now = m.tick();
    let mut late = None;
    for _ in 0..1024 {
        let (msg, _) = forked
            .propose(&m.devs[2].id, add.clone(), now, &mut m.rng)
            .unwrap();
        if msg.id() < ben {
            late = Some(msg);
            break;
        }
    }
    let late = late.expect("one of 1024 draws");
    m.devs[2].store.insert(&fork, &late).unwrap();
    m.digest(2);
    fork
}

/// Regression (a review of the welcome written again): as in
/// [`a_newcomer_whose_first_welcome_lost_a_fork_ends_on_the_winner`]
/// (Ben's add of the outsider wins, Mal's loses, and the creator welcomes
/// the outsider into Ben's epoch). Then Mal signs the add again into the
/// epoch they forked, with an id drawn below Ben's: only an author's
/// smallest id counts there, and she is an admin, so every member takes
/// it and it wins. The creator welcomes the outsider again, into her
/// epoch. Then she writes on into Ben's, which lost: the creator's older
/// entry led further, and the outsider followed her there. Now of the
/// creator's entries the latest welcome counts first.
#[test]
fn a_newcomer_the_creator_welcomed_twice_follows_the_later_welcome() {
    let (mut m, won, _) = two_adds_of_one_newcomer(false);
    let o = m.members;
    let fork = mal_adds_again_below_ben(&mut m, &won);
    m.heal();
    let group = m.chain(0).unwrap().last().clone();
    assert_eq!(group.parent(), Some(fork), "her add won:{}", m.dump());
    assert_ne!(group.id(), won.id(), "her add won");
    let mut welcomes = creator_welcomes(&m, o);
    welcomes.sort();
    let mut twice = vec![won.id(), group.id()];
    twice.sort();
    assert_eq!(welcomes, twice, "the creator welcomed it again");
    match m.chain(o).unwrap().head() {
        Head::Member(h) => assert_eq!(h.id(), group.id(), "{}", m.dump()),
        other => panic!("the outsider is not a member: {other:?}"),
    }
    let k = group.number - won.number + 2;
    let hers = mal_writes_on(&mut m, &won, k);
    m.heal();
    assert!(
        m.chain(o).unwrap().epoch(&hers.id()).is_some(),
        "the outsider opened her branch"
    );
    m.check().unwrap();
}

/// Regression (a review of the welcome written again): as in
/// [`a_newcomer_the_creator_welcomed_twice_follows_the_later_welcome`],
/// with the clock set back, before the creator's first welcome of the
/// outsider, once Mal has signed her add again: the creator welcomes the
/// outsider again with its clock behind. That welcome was dated by the
/// clock, before the first, and of the creator's welcomes the outsider
/// follows the latest by its date, so it stayed on Ben's epoch, which
/// lost. A welcome is now dated after its author's earlier welcomes to
/// the same newcomer into the group.
#[test]
fn a_newcomer_follows_the_creators_later_welcome_though_its_clock_stepped_back() {
    let (mut m, won, _) = two_adds_of_one_newcomer(false);
    let o = m.members;
    let fork = mal_adds_again_below_ben(&mut m, &won);
    let first = creator_welcomes_dated(&m, o)[0].1;
    // Far enough back that healing never ticks past the first welcome
    // (checked below): every welcome the creator writes now, its clock
    // says, comes before it.
    m.clock = first - 1_000_000;
    m.heal();
    assert!(m.clock < first, "the clock caught up:{}", m.dump());
    let group = m.chain(0).unwrap().last().clone();
    assert_eq!(group.parent(), Some(fork), "her add won:{}", m.dump());
    assert_ne!(group.id(), won.id(), "her add won");
    match m.chain(o).unwrap().head() {
        Head::Member(h) => assert_eq!(h.id(), group.id(), "on Ben's epoch:{}", m.dump()),
        other => panic!("the outsider is not a member: {other:?}"),
    }
    assert_eq!(
        creator_welcomes_dated(&m, o),
        vec![(won.id(), first), (group.id(), first + 1)],
        "the second dated just after the first"
    );
    m.check().unwrap();
}

/// Mal, an admin, adds an outsider and welcomes it; then she makes a
/// change in the new epoch, keeps its log from the outsider for a while,
/// and welcomes the outsider into an epoch of her own under the id of the
/// one her change makes (an id names only its parent and change). The
/// outsider took it, kept it when the real change arrived, and followed
/// her made-up epoch for good: it never saw her removal, and what it wrote
/// she could read. Now the change's word stands: the epoch it makes takes
/// the place of hers.
#[test]
fn a_made_up_epoch_cannot_take_a_real_ones_id() {
    made_up_epoch_under_a_real_id(Sealing::Honest, false, false);
}

/// Regression (a review of the creator's welcome into an epoch held): as
/// above, and the creator, having read her change, welcomes the outsider
/// into the epoch it makes before the outsider reads it. The outsider
/// holds her made-up epoch under that id: it lets hers go and takes the
/// creator's (the creator's entry, the real members), the same once read
/// back from what a node stores, and the same welcome again changes
/// nothing. A second, different epoch under that id from the creator is
/// refused, and changes nothing.
#[test]
fn the_creators_welcome_takes_the_place_of_a_made_up_epoch() {
    made_up_epoch_under_a_real_id(Sealing::Honest, false, true);
}

/// As above, with the outsider's key box in her change garbled, and her
/// welcome sent once the outsider has read the change: it is refused (it
/// is not what the change makes); the outsider waits at the change, asks
/// for the key, which another member gives.
#[test]
fn a_made_up_epoch_gives_way_to_one_whose_key_is_asked_for() {
    made_up_epoch_under_a_real_id(Sealing::Garble(Vec::new()), true, false);
}

/// With the outsider's box garbled and her welcome taken first: once the
/// outsider reads the change, it lets her epoch go and waits at the change
/// for the key (held, hers led further, and the path followed it).
#[test]
fn a_made_up_epoch_is_let_go_while_the_key_is_asked_for() {
    made_up_epoch_under_a_real_id(Sealing::Garble(Vec::new()), false, false);
}

/// Mal (device 2), made an admin, adds the outsider's signing key
/// (device 3) with a key-agreement key only she holds (returned), and
/// welcomes it; the group settles.
fn added_under_mals_key() -> (Model, Identity) {
    let mut m = Model::new(3, &[2], true, 45);
    m.apply(Op::MakeAdmin(2));
    m.heal();
    let head = m.writable(2).expect("Mal is a member");
    let mals = Identity::generate("x", &mut m.rng).unwrap();
    let listed = PublicIdentity {
        sign: m.sign(3),
        dh: mals.public().dh,
    };
    let add = Change::Add {
        public: listed,
        name: "o3".into(),
    };
    assert!(m.make(2, &head, add));
    m.adds.push((m.sign(2), m.sign(3)));
    m.heal();
    assert!(m.writable(3).is_some(), "the outsider joined");
    (m, mals)
}

/// Regression (a review of groups under a hostile insider): Mal (device
/// 2), an admin, adds the outsider's signing key (device 3) with a
/// key-agreement key only she holds, and welcomes it: the welcome
/// carries the key, so it joins. At the group's next change its box is
/// sealed to Mal's key, and so were the answers to its key requests: it
/// waited for the group's key for good, listed, and no honest admin
/// could add it again (already a member). Its requests now name its own
/// key, and the answers are sealed to that.
#[test]
fn an_add_under_a_key_the_newcomer_lacks_does_not_lock_it_out() {
    let (mut m, _) = added_under_mals_key();
    // The creator changes the group: the outsider's box is sealed to
    // Mal's key.
    m.apply(Op::MakeAdmin(1));
    m.heal();
    m.check().unwrap();
    assert!(m.writable(3).is_some(), "the outsider writes in the group");
}

/// Regression (the same review): after such an add, the boxes of every
/// later change were still sealed to the key Mal listed, so the newcomer
/// asked again at each change, and Mal opened every later epoch's key
/// from its box, even once removed. A device that has read the
/// newcomer's key request seals its box to the key the request named.
#[test]
fn a_change_after_the_newcomer_asked_is_sealed_to_its_own_key() {
    let (mut m, mals) = added_under_mals_key();
    // The outsider asks once, for the key of the creator's change, and
    // every member reads its request.
    m.apply(Op::MakeAdmin(1));
    m.heal();
    assert!(
        m.writable(3).is_some(),
        "the outsider has the key it asked for"
    );
    // The creator removes Mal; the outsider reads that change alone, and
    // no answer is written.
    let head = m.writable(0).expect("the creator is a member");
    assert!(m.make(0, &head, Change::Remove(m.sign(2))));
    m.removes.push((m.sign(0), m.sign(2)));
    let (key, next) = {
        let t = m.chain(0).unwrap().winner(&head.id()).expect("a change");
        assert_eq!(t.author, m.sign(0));
        (t.key, t.next_id)
    };
    let bytes = m.devs[0].store.get(&head.id(), &key).unwrap().unwrap();
    let change = Message::decode(bytes).unwrap();
    m.devs[3].store.insert(&head.id(), &change).unwrap();
    m.digest(3);
    let theirs = m.chain(3).unwrap();
    match theirs.head() {
        Head::Member(h) => assert_eq!(h.id(), next, "the outsider is elsewhere"),
        other => panic!("the outsider's box did not open: {other:?}"),
    }
    assert!(theirs.key_work(&m.sign(3)).requests.is_empty());
    // Mal's key does not open the outsider's box: the outsider's
    // signing key (which the box is bound to) with Mal's key.
    let mut secret = *m.devs[3].id.to_secret_bytes();
    secret[32..].copy_from_slice(&mals.to_secret_bytes()[32..]);
    let with_hers = Identity::from_secret_bytes(&secret, "x").unwrap();
    let read = head.read(&with_hers, &change, NOW).unwrap();
    assert!(
        matches!(read.next, Next::Pending),
        "Mal's key opens the outsider's box"
    );
    m.heal();
    m.check().unwrap();
}

/// Mal's made-up epoch under the id her change makes, welcomed to the
/// outsider before it reads the change, or after (`late`); with
/// `creator` (not `late`), the creator then welcomes the outsider into
/// the real epoch, still before it reads the change.
fn made_up_epoch_under_a_real_id(sealing: Sealing, late: bool, creator: bool) {
    assert!(
        !(late && creator),
        "the creator welcomes before the change is read"
    );
    let mut m = Model::new(3, &[1], true, 11);
    m.apply(Op::MakeAdmin(1));
    m.heal();
    let o = m.members;
    let head = m.chain(1).unwrap().writable(&m.sign(1)).unwrap().clone();
    let add = Change::Add {
        public: m.devs[o].id.public(),
        name: "o".into(),
    };
    assert!(m.make(1, &head, add));
    m.adds.push((m.sign(1), m.sign(o)));
    m.react(o);
    let e = m.chain(1).unwrap().writable(&m.sign(1)).unwrap().clone();
    assert!(e.member(&m.sign(o)).is_some(), "the outsider is in");
    let now = m.tick();
    let garbled = matches!(sealing, Sealing::Garble(_));
    let sealing = match sealing {
        Sealing::Garble(_) => Sealing::Garble(vec![m.sign(o)]),
        honest => honest,
    };
    let (change, next) = e
        .propose_sealed(
            &m.devs[1].id,
            Change::Remove(m.sign(2)),
            now,
            sealing,
            &mut m.rng,
        )
        .unwrap();
    let real = next.unwrap();
    m.removes.push((m.sign(1), m.sign(2)));
    m.devs[1].store.insert(&e.id(), &change).unwrap();
    if late {
        m.meet(1, o);
        assert!(matches!(m.chain(o).unwrap().head(), Head::Waiting { .. }));
    }
    let body = m.forge(&e, 1, o, e.number + 1, Some((e.id(), change.key().id.0)));
    let pair = m.pair(1, o);
    let now = m.tick();
    let welcome =
        Message::create(&m.devs[1].id, &pair, now, Kind::WELCOME, &body, &mut m.rng).unwrap();
    if late {
        let made_up = Epoch::from_welcome(&m.devs[o].id, &pair, &welcome, NOW).unwrap();
        let mut chains = m.devs[o].chains.clone();
        let taken = Chain::take_welcome(&mut chains, &welcome.author(), now, made_up);
        assert_eq!(taken, Err(strand_sync::GroupError::Inconsistent));
        // The real epoch (she knows its key), numbered otherwise: refused.
        let mut renumbered = real.encode();
        let at = 1 + 32 + 64 + 1 + real.name.len() + 32;
        renumbered[at..at + 4].copy_from_slice(&(real.number + 5).to_be_bytes());
        let again = Message::create(
            &m.devs[1].id,
            &pair,
            now,
            Kind::WELCOME,
            &renumbered,
            &mut m.rng,
        )
        .unwrap();
        let epoch = Epoch::from_welcome(&m.devs[o].id, &pair, &again, NOW).unwrap();
        assert_eq!(epoch.id(), real.id());
        assert_eq!(epoch.number, real.number + 5);
        let taken = Chain::take_welcome(&mut chains, &again.author(), now, epoch);
        assert_eq!(taken, Err(strand_sync::GroupError::Inconsistent));
    }
    m.devs[1].store.insert(&pair.id, &welcome).unwrap();
    m.devs[o].store.insert(&pair.id, &welcome).unwrap();
    m.react(o);
    if creator {
        creator_welcomes_over_a_made_up_epoch(&mut m, &e, &real, change.key().id.0);
    }
    if garbled && !late {
        // Her change reaches the outsider, with no one else to give the key.
        m.meet(1, o);
        match m.chain(o).unwrap().head() {
            Head::Waiting { last, .. } => assert_eq!(last.id(), e.id()),
            other => panic!("the outsider follows her epoch: {other:?}"),
        }
        assert!(m.chain(o).unwrap().epoch(&real.id()).is_none());
    }
    // Her log reaches the outsider; the creator removes her.
    m.heal();
    m.apply(Op::Remove(0, 1));
    m.heal();
    let held = m.chain(o).unwrap().epoch(&real.id()).expect("held").clone();
    assert_eq!(held.members(), real.members(), "the epoch the change makes");
    let Head::Member(creator) = m.chain(0).unwrap().head() else {
        panic!("the creator is out");
    };
    match m.chain(o).unwrap().head() {
        Head::Member(h) => assert_eq!(h.id(), creator.id(), "{}", m.dump()),
        other => panic!("the outsider is not in the group's epoch: {other:?}"),
    }
    m.check().unwrap();
}

/// The creator (device 0) reads Mal's change in `e`, which makes `real`,
/// and welcomes the outsider into `real` before the outsider reads the
/// change; the outsider holds Mal's made-up epoch under `real`'s id, her
/// welcome's entry. Then a second epoch under that id from the creator.
fn creator_welcomes_over_a_made_up_epoch(m: &mut Model, e: &Epoch, real: &Epoch, change: [u8; 32]) {
    let (o, creator) = (m.members, m.sign(0));
    let id = real.id();
    let chain = m.chain(o).unwrap();
    let made_up = chain.epoch(&id).expect("her made-up epoch is held");
    assert_ne!(made_up.members(), real.members(), "made up");
    assert!(
        chain
            .entries()
            .iter()
            .any(|x| x.id == id && x.by == m.sign(1)),
        "her welcome's entry"
    );
    // Her add (which makes `e`), then her change in `e`: read, not
    // answered.
    for _ in 0..2 {
        m.push(1, 0, false);
        m.digest(0);
    }
    let theirs = m
        .chain(0)
        .unwrap()
        .epoch(&id)
        .expect("the creator read her change")
        .clone();
    assert_eq!(theirs.members(), real.members());
    let pair = m.pair(0, o);
    let now = m.tick();
    let welcome = theirs
        .welcome(&m.devs[0].id, &pair, now, &mut m.rng)
        .unwrap();
    m.devs[0].store.insert(&pair.id, &welcome).unwrap();
    m.devs[o].store.insert(&pair.id, &welcome).unwrap();
    m.react(o);
    let chain = m.chain(o).unwrap();
    let entries: Vec<_> = chain
        .entries()
        .iter()
        .filter(|x| x.id == id)
        .copied()
        .collect();
    assert_eq!(
        entries,
        [strand_sync::Entry {
            id,
            by: creator,
            at: now
        }],
        "the creator's entry in place of hers:{}",
        m.dump()
    );
    let held = chain.epoch(&id).expect("the real epoch is held");
    assert_eq!(held.members(), real.members(), "the epoch the change makes");
    reopens_alike(m, o);
    // The same welcome again: nothing new.
    let again = Epoch::from_welcome(&m.devs[o].id, &pair, &welcome, NOW).unwrap();
    let taken = Chain::take_welcome(&mut m.devs[o].chains, &creator, now, again);
    assert_eq!(taken, Ok(false));
    // A second epoch under the id from the creator (the creator and the
    // outsider its only members): the first stands.
    let body = m.forge(e, 0, o, e.number + 1, Some((e.id(), change)));
    let now = m.tick();
    let other =
        Message::create(&m.devs[0].id, &pair, now, Kind::WELCOME, &body, &mut m.rng).unwrap();
    let other = Epoch::from_welcome(&m.devs[o].id, &pair, &other, NOW).unwrap();
    assert_eq!(other.id(), id);
    let taken = Chain::take_welcome(&mut m.devs[o].chains, &creator, now, other);
    assert_eq!(taken, Err(strand_sync::GroupError::Inconsistent));
    let chain = m.chain(o).unwrap();
    assert_eq!(chain.epoch(&id).unwrap().members(), real.members());
    assert_eq!(chain.entries().iter().filter(|x| x.id == id).count(), 1);
    assert!(chain
        .entries()
        .iter()
        .any(|x| x.id == id && x.by == creator));
}

/// Mal, made an admin first, writes into the epoch she was made one in
/// a removal of Dee, whom the creator made an admin after her (valid
/// there, when Dee was not one). It revoked Dee for good: the creator's
/// device removed her, and no one could add her again (had the creator
/// left, no one could have written to the group again). Only the creator
/// removes admins: such a removal now counts for nothing.
#[test]
fn an_admin_cannot_remove_a_later_admin_by_writing_late() {
    let mut m = Model::new(4, &[1], true, 5);
    m.apply(Op::MakeAdmin(1));
    m.heal();
    let first = m.chain(1).unwrap().writable(&m.sign(1)).unwrap().clone();
    m.apply(Op::MakeAdmin(2));
    m.heal();
    let now = m.tick();
    let (late, _) = first
        .propose(&m.devs[1].id, Change::Remove(m.sign(2)), now, &mut m.rng)
        .unwrap();
    m.devs[1].store.insert(&first.id(), &late).unwrap();
    m.removes.push((m.sign(1), m.sign(2)));
    m.heal();
    let Head::Member(head) = m.chain(0).unwrap().head() else {
        panic!("the creator is out");
    };
    assert!(head.is_admin(&m.sign(2)), "Dee is gone:{}", m.dump());
    assert!(m.chain(0).unwrap().writable(&m.sign(0)).is_ok());
    m.check().unwrap();
}

/// Mal (device 1) is made an admin, then the creator makes Dee (3) one
/// after a text, then Mal leaves: the model, the epoch where Mal was
/// first an admin (the creator's change won there), and the one her
/// Leave won.
fn an_admin_who_left() -> (Model, Epoch, Epoch) {
    let mut m = Model::new(4, &[1], true, 5);
    m.apply(Op::MakeAdmin(1));
    m.heal();
    let old = m.chain(1).unwrap().writable(&m.sign(1)).unwrap().clone();
    m.apply(Op::Text(0));
    m.apply(Op::MakeAdmin(3));
    m.heal();
    let head = m.chain(1).unwrap().writable(&m.sign(1)).unwrap().clone();
    let now = m.tick();
    let (leave, _) = head
        .propose(&m.devs[1].id, Change::Leave, now, &mut m.rng)
        .unwrap();
    m.devs[1].store.insert(&head.id(), &leave).unwrap();
    m.admins_left.insert(m.sign(1));
    m.heal();
    (m, old, head)
}

/// Mal, an admin, leaves; then she writes a removal of Dee into an epoch
/// from when she was an admin. An admin who left gains nothing by
/// writing late (PROTOCOL.md §14.6): Dee stays.
#[test]
fn an_admin_who_left_cannot_remove_anyone_by_writing_late() {
    let (mut m, old, _) = an_admin_who_left();
    let now = m.tick();
    let (late, _) = old
        .propose(&m.devs[1].id, Change::Remove(m.sign(2)), now, &mut m.rng)
        .unwrap();
    m.devs[1].store.insert(&old.id(), &late).unwrap();
    m.removes.push((m.sign(1), m.sign(2)));
    m.heal();
    let Head::Member(head) = m.chain(0).unwrap().head() else {
        panic!("the creator is out");
    };
    assert!(head.member(&m.sign(1)).is_none(), "Mal left");
    assert!(
        head.member(&m.sign(2)).is_some(),
        "Dee is gone:{}",
        m.dump()
    );
    m.check().unwrap();
}

/// Mal, an admin the creator removed, writes a change into an epoch from
/// when she was an admin, then one into the epoch it makes, and so on.
/// Every member opened each (a change's next epoch is opened whether it
/// wins or not), so she could grow epochs (stored, synced, read again at
/// every change) without end. A removed admin's change opens nothing now.
#[test]
fn a_removed_admin_cannot_grow_epochs_without_end() {
    grow_epochs();
}

/// Mal (device 1) writes her `k`th change into `at` (the first outsider
/// added, then removed, and so on) and syncs with the creator: the epoch
/// it makes.
fn write_next(m: &mut Model, at: &Epoch, k: usize) -> Epoch {
    let o = m.members;
    let change = if k.is_multiple_of(2) {
        Change::Add {
            public: m.devs[o].id.public(),
            name: "o".into(),
        }
    } else {
        Change::Remove(m.sign(o))
    };
    let now = m.tick();
    let (msg, next) = at.propose(&m.devs[1].id, change, now, &mut m.rng).unwrap();
    m.devs[1].store.insert(&at.id(), &msg).unwrap();
    m.digest(1);
    m.meet(1, 0);
    next.unwrap()
}

/// Mal, removed by the creator, writes changes one into the epoch the
/// last made, from an epoch where she was an admin.
fn grow_epochs() {
    let mut m = Model::new(3, &[1], true, 3);
    m.apply(Op::MakeAdmin(1));
    m.heal();
    let old = m.chain(1).unwrap().writable(&m.sign(1)).unwrap().clone();
    m.apply(Op::Remove(0, 1));
    m.heal();
    let before = m.chain(0).unwrap().epochs().count();
    let mut at = old;
    for k in 0..20 {
        at = write_next(&mut m, &at, k);
        m.meet(1, 2);
    }
    m.heal();
    let after = m.chain(0).unwrap().epochs().count();
    assert!(after <= before + 1, "{before} epochs, then {after}");
    m.check().unwrap();
}

/// Mal, an admin, leaves; then she writes a change into an epoch from
/// when she was an admin (the creator's change wins there), then one into
/// the epoch it makes, and so on. Her Leave is on no branch of hers, so
/// each opens, and a member holds one epoch more for each. Every one of
/// them leads off the member's path; past `MAX_CHANGES_OFF_PATH` a member
/// takes no more of hers (the node declines them), nor ever a second one
/// into an epoch that holds one of hers (a smaller id would replace it and
/// open another epoch, or replace her Leave), even once she is added
/// back as a member, while an admin of the group is always taken.
#[test]
fn an_admin_who_left_is_taken_only_so_many_changes_off_the_path() {
    let (mut m, old, head) = an_admin_who_left();
    let mal = m.sign(1);
    let ann = m.chain(0).unwrap();
    assert_eq!(ann.changes_off_path(&mal), 0, "her changes all won");
    assert!(ann.takes_change(&old.id(), &mal, &[]));
    assert!(
        !ann.takes_change(&head.id(), &mal, &[]),
        "her Leave is there"
    );
    assert!(
        ann.takes_change(&head.id(), &m.sign(3), &[head.id(); 100]),
        "an admin is always taken"
    );
    let before = ann.epochs().count();

    let mut at = old;
    let rounds = MAX_CHANGES_OFF_PATH + 4;
    let mut written = Vec::new();
    for k in 0..rounds {
        let next = write_next(&mut m, &at, k);
        written.push(at.id());
        let ann = m.chain(0).unwrap();
        assert_eq!(ann.changes_off_path(&mal), k + 1, "{}", m.dump());
        assert_eq!(
            ann.takes_change(&next.id(), &mal, &[]),
            k + 1 < MAX_CHANGES_OFF_PATH
        );
        let pending = vec![GroupId([0; 32]); MAX_CHANGES_OFF_PATH.saturating_sub(k + 1)];
        assert!(!ann.takes_change(&next.id(), &mal, &pending));
        for id in &written {
            assert!(!ann.takes_change(id, &mal, &[]), "one of hers is there");
        }
        at = next;
    }
    let ann = m.chain(0).unwrap();
    assert_eq!(ann.epochs().count(), before + rounds, "each opened");
    let Head::Member(head) = ann.head() else {
        panic!("the creator is out");
    };
    assert!(head.member(&mal).is_none(), "Mal left");
    assert!(ann.takes_change(&head.id(), &m.sign(2), &[]));
    m.check().unwrap();

    // Ann adds Mal back, a member and no admin: her changes into epochs
    // where she was an admin still count, and are still bounded.
    let head = head.clone();
    let now = m.tick();
    let (add, _) = head
        .propose(
            &m.devs[0].id,
            Change::Add {
                public: m.devs[1].id.public(),
                name: "mal".into(),
            },
            now,
            &mut m.rng,
        )
        .unwrap();
    m.devs[0].store.insert(&head.id(), &add).unwrap();
    m.digest(0);
    let ann = m.chain(0).unwrap();
    let Head::Member(back) = ann.head() else {
        panic!("the creator is out");
    };
    assert!(back.member(&mal).is_some() && !back.is_admin(&mal));
    assert!(!ann.takes_change(&back.id(), &mal, &[]), "past the bound");
    assert!(
        !ann.takes_change(&written[0], &mal, &[]),
        "one of hers is there"
    );
}
