//! Bluetooth LE: the link layer that makes a byte stream of small packets,
//! and the radio it runs over.
//!
//! * [`link`]: the sans-IO link layer (framing into ATT- or L2CAP-sized
//!   packets, reassembly, selective-repeat retransmission, credit-style
//!   flow control, MTU results, a clear error on a broken link).
//! * [`radio`]: an emulated BLE connection in virtual time (PHY, connection
//!   interval, MTU each way, loss, drops) with a two-ended harness, for
//!   tests and benchmarks.

pub mod link;
pub mod radio;
