//! What the fault tests need from the machine (checks that turn into `SKIPPED:` notes), a
//! lock for the timing-sensitive ones, scratch directories, and scripts run in throwaway
//! user, network and PID namespaces.

use std::io::Write;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::net::unique_loopback;
use super::process::{Finished, Running};
use super::BIN;

/// Something a test needs from the machine.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Need {
    /// Binding source ports below 1024 (root, or CAP_NET_BIND_SERVICE).
    PrivilegedPorts,
    /// `python3` with raw sockets: IPPROTO_RAW to forge, AF_PACKET to sniff (CAP_NET_RAW).
    RawSockets,
    /// `unshare -rn --pid --fork` (user, network and PID namespaces).
    Unshare,
    /// `nft`, to drop packets inside a namespace.
    Nft,
    /// `ip` from iproute2, for veth pairs.
    Ip,
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

const RAW_PY: &str = "import socket
socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW).close()
socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800)).close()";

/// Whether everything in `needs` is here; if not, prints `SKIPPED: test: reason` on stderr.
pub(crate) fn require(test: &str, needs: &[Need]) -> bool {
    for need in needs {
        let missing = match need {
            Need::PrivilegedPorts => UdpSocket::bind((unique_loopback(), 1))
                .is_err()
                .then_some("cannot bind ports below 1024 (needs root)"),
            Need::RawSockets => (!runs("python3", &["-c", RAW_PY]))
                .then_some("python3 with raw sockets (root, CAP_NET_RAW) not available"),
            Need::Unshare => {
                (!runs("unshare", &["-rn", "--pid", "--fork", "--kill-child", "true"]))
                    .then_some("`unshare -rn --pid --fork` does not work here")
            }
            Need::Nft => (!runs("nft", &["--version"]))
                .then_some("nft (nftables) not installed: apt-get install nftables"),
            Need::Ip => (!runs("ip", &["-V"])).then_some("ip (iproute2) not installed"),
        };
        if let Some(reason) = missing {
            eprintln!("SKIPPED: {test}: {reason}");
            return false;
        }
    }
    true
}

/// Serialises the tests whose outcome depends on timing or on a quiet loopback: the
/// floods would starve the others' servers (and swamp the sniffer) on a 2-core machine.
/// Only the namespace tests, which have their own loopback and tolerate delay, run beside.
pub(crate) fn exclusive() -> MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Scratch directories and namespaces

/// A scratch directory under the system temp dir, removed on drop.
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    /// A fresh, empty directory named after the test and our PID.
    pub(crate) fn new(test: &str) -> Scratch {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("shout-test-{test}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating a scratch directory");
        Scratch(dir)
    }

    /// Its path.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Writes a file in it.
    pub(crate) fn write(&self, name: &str, contents: &[u8]) {
        let mut f = std::fs::File::create(self.0.join(name)).expect("create scratch file");
        f.write_all(contents).expect("write scratch file");
    }

    /// A file's contents ("" if absent, so a failed script still shows what it left).
    pub(crate) fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.0.join(name)).unwrap_or_default()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `sh -c SCRIPT` in fresh user, network and PID namespaces (`unshare -rn --pid --fork
/// --kill-child`), with `BIN` (the shout binary), `DIR` (the scratch dir) and `env` set.
/// The script sees only its own loopback (down until it brings it up) and its own PIDs;
/// when it ends or is killed, everything it started dies with its PID namespace.
pub(crate) fn in_namespace(
    script: &str,
    dir: &Scratch,
    env: &[(&str, &str)],
    timeout: Duration,
) -> Finished {
    let mut cmd = Command::new("unshare");
    cmd.args(["-rn", "--pid", "--fork", "--kill-child", "sh", "-c", script])
        .env("BIN", BIN)
        .env("DIR", dir.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Running::spawn(cmd).finish(timeout)
}
