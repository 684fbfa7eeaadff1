//! Messages a session received, on their way to the store.
//!
//! A session checks what is cheap as bytes arrive (the message's structure,
//! its group, the per-session count) and hands the rest to its caller as an
//! [`Inbound`] batch: signatures, timestamps and bodies are checked by
//! [`Inbound::verify`], which is pure computation and can run on any thread
//! or core, and the caller writes the valid messages however it likes (one
//! writer thread, batched commits). [`crate::Session::handle_stored`] then
//! takes the batch back and acknowledges, reports and fails as the protocol
//! says. [`crate::Session::settle`] does all of it in place.
//!
//! Signatures are verified in one batch per [`Inbound`] (ZIP-215 rules, with
//! `ed25519-zebra`): about twice as fast per signature as one at a time,
//! and a batch gives the same verdict as single checks on every input, so
//! two honest devices never disagree about a message (see `PROTOCOL.md`
//! §4). A batch that fails is checked one by one to find the culprit.

use std::sync::Arc;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::crypto::hash;
use crate::group::{Group, GroupId};
use crate::limits::Time;
use crate::message::Message;
use crate::store::Key;
use crate::Invalid;

/// What is known about a received message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Not checked yet.
    Unchecked,
    /// The store already holds it: acknowledged, not checked again.
    Held,
    /// Valid: store it, then call [`InboundMessage::set_stored`].
    Valid,
    /// Stored (`new`: it was not there before).
    Stored {
        /// Whether this call stored it (false: it was already there).
        new: bool,
    },
    /// Not valid. Some reasons ([`Invalid::FromTheFuture`],
    /// [`Invalid::OverBudget`], [`Invalid::Expired`], [`Invalid::MustLast`],
    /// [`Invalid::FormerMember`], [`Invalid::Lifetime`]) are refused and
    /// the session goes on (some for now, some for good:
    /// [`Invalid::may_be_taken_later`]); any other reason ends the session
    /// (PROTOCOL.md §4, on receipt).
    Invalid(Invalid),
}

/// One received message and its verdict.
#[derive(Debug)]
pub struct InboundMessage {
    group: Arc<Group>,
    message: Message,
    verdict: Verdict,
}

impl InboundMessage {
    /// Its group's id.
    pub fn group(&self) -> &GroupId {
        &self.group.id
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// Its key.
    pub fn key(&self) -> Key {
        self.message.key()
    }

    /// What is known about it.
    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// Records that a [`Verdict::Valid`] message was written (`new`: it was
    /// not stored before). Other verdicts are left as they are.
    pub fn set_stored(&mut self, new: bool) {
        if self.verdict == Verdict::Valid {
            self.verdict = Verdict::Stored { new };
        }
    }

    /// Declines a [`Verdict::Valid`] message without storing it: the
    /// storage budget for its sender is spent. The session reports it as
    /// rejected, does not acknowledge it, and goes on; the sender offers it
    /// again later. A [`Verdict::Unchecked`] one is declined the same way,
    /// and [`Inbound::verify`] then spends no check on it: for a caller
    /// whose budget would decline it, real or not. Other verdicts are left
    /// as they are.
    pub fn decline(&mut self) {
        if matches!(self.verdict, Verdict::Valid | Verdict::Unchecked) {
            self.verdict = Verdict::Invalid(Invalid::OverBudget);
        }
    }

    /// Declines a [`Verdict::Valid`] message written into an old epoch of
    /// a private group by someone no longer in it
    /// ([`crate::Chain::accepts`]): reported as [`Invalid::FormerMember`],
    /// not acknowledged, the session goes on.
    pub fn decline_former_member(&mut self) {
        if self.verdict == Verdict::Valid {
            self.verdict = Verdict::Invalid(Invalid::FormerMember);
        }
    }
}

/// A batch of received messages (those of one or more packets), from
/// [`crate::Session::poll_inbound`] back to
/// [`crate::Session::handle_stored`]. `Send`: verify it on any thread.
#[derive(Debug, Default)]
pub struct Inbound {
    pub(crate) items: Vec<InboundMessage>,
}

impl Inbound {
    /// A batch of messages claiming to be of `group`, to check outside a
    /// session (messages imported from a file, a benchmark). Messages of
    /// another group are [`Invalid::WrongGroup`].
    pub fn new(group: &Group, messages: impl IntoIterator<Item = Message>) -> Inbound {
        let group = Arc::new(group.clone());
        let mut batch = Inbound::default();
        for m in messages {
            let wrong = m.group() != group.id;
            batch.push(group.clone(), m);
            if wrong {
                let last = batch.items.last_mut().expect("just pushed");
                last.verdict = Verdict::Invalid(Invalid::WrongGroup);
            }
        }
        batch
    }

    pub(crate) fn push(&mut self, group: Arc<Group>, message: Message) {
        self.items.push(InboundMessage {
            group,
            message,
            verdict: Verdict::Unchecked,
        });
    }

    /// Messages in the batch.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The messages, in the order they arrived.
    pub fn iter(&self) -> impl Iterator<Item = &InboundMessage> {
        self.items.iter()
    }

    /// The messages, to record what storing them did.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut InboundMessage> {
        self.items.iter_mut()
    }

    /// Marks every unchecked message that `held` says the store already has
    /// as [`Verdict::Held`]: acknowledged without spending a signature
    /// check on it.
    pub fn skip_held<E>(
        &mut self,
        mut held: impl FnMut(&GroupId, &Key) -> Result<bool, E>,
    ) -> Result<(), E> {
        for item in &mut self.items {
            if item.verdict == Verdict::Unchecked && held(&item.group.id, &item.message.key())? {
                item.verdict = Verdict::Held;
            }
        }
        Ok(())
    }

    /// Checks every unchecked message in full: membership, signature (all
    /// in one batch), time against `now`, body. Pure computation.
    pub fn verify(&mut self, now: Time) {
        let mut batch = ed25519_zebra::batch::Verifier::new();
        // The batch's random coefficients come from a hash of everything in
        // it (as ed25519-dalek does with its transcript): deterministic, and
        // no sender can choose inputs that cancel out.
        let mut transcript: Vec<u8> = Vec::new();
        let mut in_batch = 0;
        for item in &mut self.items {
            if item.verdict != Verdict::Unchecked {
                continue;
            }
            if !item.group.is_member(&item.message.author()) {
                item.verdict = Verdict::Invalid(Invalid::NotMember);
                continue;
            }
            let (key, sig, signed) = item.message.signature_parts();
            transcript.extend_from_slice(key.as_ref());
            transcript.extend_from_slice(&sig.to_bytes());
            transcript.extend_from_slice(&signed);
            batch.queue((key, sig, &signed[..]));
            in_batch += 1;
        }
        let all_good = in_batch == 0
            || batch
                .verify(ChaCha20Rng::from_seed(hash(&[
                    b"strand/v2/batch",
                    &transcript,
                ])))
                .is_ok();
        for item in &mut self.items {
            if item.verdict != Verdict::Unchecked {
                continue;
            }
            let signature = if all_good {
                Ok(())
            } else {
                item.message.verify_signature()
            };
            item.verdict = match signature
                .and_then(|()| item.message.check_after_signature(&item.group, now))
            {
                Ok(_) => Verdict::Valid,
                Err(e) => Verdict::Invalid(e),
            };
        }
    }
}
