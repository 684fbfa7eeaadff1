//! The `strand` command line: its clap types and, one function per
//! command, what each asks of a device and prints.

pub mod args;
