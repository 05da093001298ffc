//! shout's integration tests: one test binary (as ripgrep and hickory-dns do), one
//! module per suite, over the shared harness in `common`. Run one suite with
//! `cargo test --test integration SUITE::`, e.g. `cargo test --test integration stamp_server::`.
//! Long stress runs are `#[ignore]`d and run by `.ci/run extended`.

mod common;

mod bench_cli;
mod chaos;
mod client_cli;
mod docs_cli;
mod faults;
mod hardening;
mod interop_python;
mod layout;
mod ops_cli;
mod probe_cli;
mod probe_engine;
mod probe_native;
mod reply_path;
mod server_cli;
mod stamp_bench;
mod stamp_interop;
mod stamp_props;
mod stamp_server;
