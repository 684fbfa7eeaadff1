//! strand-sim: a deterministic discrete-event simulator that runs the real
//! strand-sync state machines on thousands of simulated devices.
//!
//! **Not built yet.** This is an empty library stub that holds the crate's
//! place in the workspace until its issue (issue 4) lands.
