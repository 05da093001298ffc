//! Network interfaces by name and by index, for IPv6 scope ids (`fe80::1%eth0`).
#![allow(unsafe_code)]

use std::ffi::CString;

/// The index of the interface called `name`, or `None` if there is none.
pub fn interface_index(name: &str) -> Option<u32> {
    let name = CString::new(name).ok()?;
    // SAFETY: `name` is a NUL-terminated string that outlives the call, which only reads it.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

/// Whether an interface has index `index`.
pub fn interface_exists(index: u32) -> bool {
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `name` is IF_NAMESIZE bytes, the most if_indextoname writes; it is not kept.
    let found = unsafe { libc::if_indextoname(index, name.as_mut_ptr()) };
    !found.is_null()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_an_index_and_nonsense_has_none() {
        let lo = interface_index("lo").expect("lo exists on Linux");
        assert!(interface_exists(lo));
        assert_eq!(interface_index("no-such-if0"), None);
        assert_eq!(interface_index("l\0o"), None);
        assert!(!interface_exists(u32::MAX));
    }
}
