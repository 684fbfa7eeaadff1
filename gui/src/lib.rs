//! strand-gui: the Slint desktop app.
//!
//! **Not built yet.** This is an empty library stub that holds the crate's
//! place in the workspace until its issue (issue 5) lands.
