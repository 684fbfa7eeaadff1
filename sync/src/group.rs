//! Groups: a conversation's id, key and members.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::identity::AuthorId;

/// A group's id. Derived from secrets, so only members can compute it; it
/// travels only inside Noise sessions.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(pub [u8; 32]);

impl std::fmt::Debug for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GroupId({})", crate::hex_prefix(&self.0))
    }
}

/// A group's symmetric key: encrypts message bodies (XChaCha20-Poly1305).
#[derive(Clone)]
pub struct GroupKey(Zeroizing<[u8; 32]>);

impl GroupKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        GroupKey(Zeroizing::new(bytes))
    }

    /// The raw key bytes, for the node to encrypt at rest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A conversation: 1:1 chats now, private groups later. Messages in it are
/// valid only if authored by one of `members`.
#[derive(Clone)]
pub struct Group {
    /// Its id.
    pub id: GroupId,
    key: GroupKey,
    /// Shared between clones: every contact of a group's member holds the
    /// group, and a list of 500 members is 16 KB.
    members: Arc<[AuthorId]>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("id", &self.id)
            .field("members", &self.members.len())
            .finish_non_exhaustive()
    }
}

impl Group {
    /// A group with the given id, key and members.
    pub fn new(id: GroupId, key: GroupKey, mut members: Vec<AuthorId>) -> Self {
        members.sort_unstable();
        members.dedup();
        Group {
            id,
            key,
            members: members.into(),
        }
    }

    /// Whether `author` may write to this group.
    pub fn is_member(&self, author: &AuthorId) -> bool {
        self.members.binary_search(author).is_ok()
    }

    /// The members' signing keys, sorted.
    pub fn members(&self) -> &[AuthorId] {
        &self.members
    }

    /// The body encryption key.
    pub fn key(&self) -> &GroupKey {
        &self.key
    }
}
