//! The one harness of the integration tests, shared by every suite:
//!
//! - `process`: [`ChildGuard`] (kills by PID and reaps on drop), [`signal`], [`Proc`] (a
//!   long-running child read line by line), [`Running`] / [`run_shout`] / [`shout`] (a
//!   command waited for, output collected);
//! - `server`: [`ServerProc`], a spawned `shout server` whose `listening on` lines are read
//!   back and whose `summary:` line is parsed after [`ServerProc::stop`]; [`Server`], the
//!   quiet single-worker variant of the fault tests;
//! - `net`: loopback sockets, `/proc` readers, unique loopback addresses, a seeded PRNG;
//! - `fake`: in-process fake UDP servers for client tests;
//! - `python`: python3 helpers, forged datagrams and a loopback sniffer;
//! - `sandbox`: capability checks that turn into `SKIPPED:` notes, scratch directories,
//!   scripts in throwaway namespaces.
//!
//! Everything talks over loopback (or a namespace a test makes) with port 0; every receive
//! and every wait has a deadline; every child is killed and reaped on drop.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code, unused_imports)]

use std::time::Duration;

mod fake;
mod net;
mod process;
mod python;
mod sandbox;
mod server;

pub(crate) use fake::*;
pub(crate) use net::*;
pub(crate) use process::*;
pub(crate) use python::*;
pub(crate) use sandbox::*;
pub(crate) use server::*;

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_shout");

/// Upper bound for any single receive in a test.
pub(crate) const RECV_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest UDP payload over IPv4.
pub(crate) const MAX_V4_PAYLOAD: usize = 65_507;
