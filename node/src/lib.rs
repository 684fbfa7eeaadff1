//! strand-node: a Strand device.
//!
//! **Not built yet.** This is an empty library stub that holds the crate's
//! place in the workspace until its issue (issue 3: the redb store, the
//! runtime, the `strand` CLI) lands. It depends on `strand-sync` and
//! `strand-transport` so the workspace's arrows are in place from the start.
