//! The stateful reflector's session table (RFC 8972 §4 and RFC 8762 §4.3.1):
//! per-session sequence numbers and counters, keyed by the sender's address,
//! port and SSID. The table is sized once and never grows: idle sessions age
//! out, and when every slot is busy a new session is answered statelessly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// Sessions a stateful reflector holds by default (per worker).
pub const DEFAULT_SESSIONS: usize = 4096;

/// What identifies a session: the sender's address and port, and its SSID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionKey {
    /// The sender's address and UDP port.
    pub src: SocketAddr,
    /// The SSID from the test packet (0 when the sender uses none).
    pub ssid: u16,
}

/// One session's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    /// The Sequence Number the next reflected packet carries (starts at 0).
    pub next_seq: u32,
    /// Test packets received (R_RxC).
    pub received: u32,
    /// Reflected packets sent (R_TxC): counted when the reply is made, since
    /// this module does no I/O.
    pub transmitted: u32,
    /// The previous reflected packet: its Sequence Number and transmit
    /// timestamp, for Follow-Up Telemetry.
    pub last_reflected: Option<(u32, u64)>,
    /// When the last test packet arrived.
    last_seen: SystemTime,
}

/// A bounded table of sessions.
#[derive(Debug)]
pub struct SessionTable {
    map: HashMap<SessionKey, Session>,
    capacity: usize,
    idle: Duration,
    last_sweep: Option<SystemTime>,
}

impl SessionTable {
    /// A table for at most `capacity` sessions, each forgotten after `idle`
    /// without a packet. All memory is taken here, none per packet.
    pub fn new(capacity: usize, idle: Duration) -> Self {
        Self { map: HashMap::with_capacity(capacity), capacity, idle, last_sweep: None }
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The session for `key` as of `now`, created if there is room; `None`
    /// when the table is full of live sessions. A session idle for longer than
    /// the idle time starts over from sequence number 0.
    pub fn touch(&mut self, key: SessionKey, now: SystemTime) -> Option<&mut Session> {
        let idle = self.idle;
        let fresh = Session {
            next_seq: 0,
            received: 0,
            transmitted: 0,
            last_reflected: None,
            last_seen: now,
        };
        if !self.map.contains_key(&key) && self.map.len() >= self.capacity {
            self.sweep(now);
            if self.map.len() >= self.capacity {
                return None;
            }
        }
        let s = self.map.entry(key).or_insert(fresh);
        if is_idle(s.last_seen, now, idle) {
            *s = fresh;
        }
        // A clock that steps back must not make a session look idle later on.
        s.last_seen = now.max(s.last_seen);
        Some(s)
    }

    /// Drops idle sessions; at most once per quarter of the idle time (and at
    /// least a second apart), so a table full of live sessions costs a full
    /// scan only now and then, not on every packet from a stranger.
    fn sweep(&mut self, now: SystemTime) {
        let gap = (self.idle / 4).max(Duration::from_secs(1)).min(self.idle);
        if let Some(last) = self.last_sweep {
            if !is_idle(last, now, gap) && now >= last {
                return;
            }
        }
        self.last_sweep = Some(now);
        let idle = self.idle;
        self.map.retain(|_, s| !is_idle(s.last_seen, now, idle));
    }
}

/// True when more than `idle` has passed from `since` to `now`.
fn is_idle(since: SystemTime, now: SystemTime, idle: Duration) -> bool {
    now.duration_since(since).is_ok_and(|d| d > idle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn key(port: u16, ssid: u16) -> SessionKey {
        SessionKey { src: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)), ssid }
    }

    #[test]
    fn sessions_are_per_address_port_and_ssid() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let mut t = SessionTable::new(8, Duration::from_secs(10));
        t.touch(key(1, 1), t0).unwrap().next_seq = 5;
        assert_eq!(t.touch(key(1, 1), t0).unwrap().next_seq, 5);
        assert_eq!(t.touch(key(1, 2), t0).unwrap().next_seq, 0);
        assert_eq!(t.touch(key(2, 1), t0).unwrap().next_seq, 0);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn a_full_table_refuses_until_sessions_age_out() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let idle = Duration::from_secs(10);
        let mut t = SessionTable::new(2, idle);
        assert!(t.touch(key(1, 0), t0).is_some());
        assert!(t.touch(key(2, 0), t0).is_some());
        assert!(t.touch(key(3, 0), t0).is_none(), "full of live sessions");
        assert_eq!(t.len(), 2);
        // Still live at exactly the idle time; gone after it.
        assert!(t.touch(key(3, 0), t0 + idle).is_none());
        let later = t0 + idle + Duration::from_secs(5);
        assert!(t.touch(key(3, 0), later).is_some());
        assert_eq!(t.len(), 1);
        assert!(t.map.capacity() >= 2);
    }

    #[test]
    fn an_idle_session_starts_over() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let mut t = SessionTable::new(1, Duration::from_secs(1));
        t.touch(key(1, 0), t0).unwrap().next_seq = 7;
        let s = t.touch(key(1, 0), t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(s.next_seq, 0);
        // A clock stepping back keeps the session.
        t.touch(key(1, 0), t0 + Duration::from_secs(2)).unwrap().next_seq = 3;
        assert_eq!(t.touch(key(1, 0), t0).unwrap().next_seq, 3);
    }

    #[test]
    fn zero_capacity_holds_nothing() {
        let mut t = SessionTable::new(0, Duration::from_secs(1));
        assert!(t.touch(key(1, 0), SystemTime::UNIX_EPOCH).is_none());
        assert!(t.is_empty());
    }
}
