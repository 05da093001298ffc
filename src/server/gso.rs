//! The send step's UDP GSO fallback: whether GSO is on, which routes have
//! refused it, and when to give it up for good.
//!
//! A GSO send can be refused for one route's reasons (a segment over its MTU,
//! a device without checksum offload) or for the host's (a kernel or driver
//! that cannot do it). A refusal is blamed on GSO only when the same datagrams
//! then go out one by one; the refusing destination is remembered with its
//! segment size and sent to one by one from then on. Refusals from
//! [`GIVE_UP`] destinations in a row, with no GSO send succeeding between,
//! mean the host refuses GSO: it is turned off.

use std::net::SocketAddr;

/// GSO sends refused in a row before GSO is turned off.
pub(crate) const GIVE_UP: u32 = 64;
/// Refusing destinations remembered at once; one more forgets the oldest.
/// Small, because a host with many refusing routes soon reaches [`GIVE_UP`].
const REMEMBERED: usize = 8;

/// GSO on or off, and the routes that refused it.
#[derive(Debug)]
pub(crate) struct Gso {
    enabled: bool,
    /// Destinations whose route refused GSO, with the smallest segment size refused.
    refused: [Option<(SocketAddr, usize)>; REMEMBERED],
    /// Where the next new refusing destination is written (the oldest entry).
    next: usize,
    /// GSO sends refused in a row.
    in_a_row: u32,
}

impl Gso {
    /// GSO on (`enabled`: asked for, and the socket takes it) or off.
    pub(crate) fn new(enabled: bool) -> Gso {
        Gso { enabled, refused: [None; REMEMBERED], next: 0, in_a_row: 0 }
    }

    /// Whether GSO sends are tried at all.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether segments of `size` bytes to `dst` go out one by one: GSO is
    /// off, or `dst`'s route refused segments this large or smaller.
    #[inline]
    pub(crate) fn refuses(&self, dst: SocketAddr, size: usize) -> bool {
        !self.enabled
            || self.refused.iter().flatten().any(|&(to, refused)| to == dst && size >= refused)
    }

    /// A GSO send went out: the refusals are no longer in a row.
    #[inline]
    pub(crate) fn sent(&mut self) {
        self.in_a_row = 0;
    }

    /// `dst`'s route refused segments of `size` bytes (and took them one by
    /// one). Returns `true` when this refusal turns GSO off.
    pub(crate) fn refused(&mut self, dst: SocketAddr, size: usize) -> bool {
        match self.refused.iter_mut().flatten().find(|(to, _)| *to == dst) {
            Some((_, refused)) => *refused = (*refused).min(size),
            None => {
                self.refused[self.next] = Some((dst, size));
                self.next = (self.next + 1) % REMEMBERED;
            }
        }
        self.in_a_row += 1;
        if self.enabled && self.in_a_row >= GIVE_UP {
            self.enabled = false;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    #[test]
    fn off_means_every_send_goes_one_by_one() {
        let off = Gso::new(false);
        assert!(!off.enabled());
        assert!(off.refuses(addr(1), 1));
        let on = Gso::new(true);
        assert!(on.enabled());
        assert!(!on.refuses(addr(1), 1400));
    }

    #[test]
    fn a_refused_destination_is_spared_at_that_size_and_above() {
        let mut gso = Gso::new(true);
        assert!(!gso.refused(addr(1), 1400));
        assert!(gso.refuses(addr(1), 1400));
        assert!(gso.refuses(addr(1), 9000));
        assert!(!gso.refuses(addr(1), 1000), "smaller segments may pass");
        assert!(!gso.refuses(addr(2), 1400), "another destination is still tried");
        // A smaller refusal lowers the bar; a larger one does not raise it.
        gso.refused(addr(1), 1000);
        gso.refused(addr(1), 5000);
        assert!(gso.refuses(addr(1), 1000));
    }

    #[test]
    fn two_refusing_routes_do_not_make_each_other_retry() {
        let mut gso = Gso::new(true);
        gso.refused(addr(1), 1400);
        gso.refused(addr(2), 1200);
        assert!(gso.refuses(addr(1), 1400) && gso.refuses(addr(2), 1200));
        // The set is bounded: enough new destinations forget the oldest.
        for port in 3..3 + REMEMBERED as u16 - 1 {
            gso.refused(addr(port), 1400);
        }
        assert!(!gso.refuses(addr(1), 1400), "the oldest is forgotten");
        assert!(gso.refuses(addr(2), 1200));
        assert!(gso.enabled());
    }

    #[test]
    fn refusals_in_a_row_turn_gso_off_and_a_success_resets_them() {
        let mut gso = Gso::new(true);
        for port in 0..GIVE_UP as u16 - 1 {
            assert!(!gso.refused(addr(port), 1400));
        }
        gso.sent();
        for port in 0..GIVE_UP as u16 - 1 {
            assert!(!gso.refused(addr(port), 1400));
        }
        assert!(gso.enabled(), "{} in a row at most so far", GIVE_UP - 1);
        assert!(gso.refused(addr(9999), 1400), "the {GIVE_UP}th in a row turns it off");
        assert!(!gso.enabled());
        assert!(gso.refuses(addr(4000), 100));
        assert!(!gso.refused(addr(1), 1400), "said once");
    }
}
