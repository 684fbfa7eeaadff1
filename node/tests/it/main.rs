//! strand-node integration tests: one binary.
//!
//! - `profile`: creating, unlocking and locking profiles on real redb
//!   files; wrong passphrases, a second owner (another process), corrupt
//!   and newer files; what is and is not readable at rest.
//! - `sync`: two profiles' redb stores reconciled by strand-sync sessions.

mod lan;
mod profile;
mod sync;
