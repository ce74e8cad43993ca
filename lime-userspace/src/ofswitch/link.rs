//! Link state of the switch-side interfaces, read with `SIOCGIFFLAGS` on a socket opened
//! inside the physical switch's network namespace (sysfs would show the namespace it
//! was mounted in, not the caller's).
use super::state::Link;

/// The link of each of `ifnames`, in the current thread's network namespace.
#[must_use]
pub fn links(ifnames: &[String]) -> Vec<Link> {
    // SAFETY: plain socket(2); the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return vec![Link::Live; ifnames.len()];
    }
    let out = ifnames
        .iter()
        .map(|name| {
            // SAFETY: ifreq is plain data; zeroed is a valid value.
            let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
            for (d, s) in req
                .ifr_name
                .iter_mut()
                .zip(name.bytes().take(libc::IFNAMSIZ - 1))
            {
                *d = s as libc::c_char;
            }
            // SAFETY: fd is a socket, req a valid ifreq with a NUL-terminated name.
            let r = unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &raw mut req) };
            if r < 0 {
                return Link::Gone;
            }
            // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
            let flags = i32::from(unsafe { req.ifr_ifru.ifru_flags });
            if flags & libc::IFF_UP == 0 {
                Link::Disabled
            } else if flags & libc::IFF_RUNNING == 0 {
                Link::Down
            } else {
                Link::Live
            }
        })
        .collect();
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_up_and_a_missing_interface_is_gone() {
        let l = links(&["lo".to_owned(), "lime-no-such-if".to_owned()]);
        assert_eq!(l[1], Link::Gone);
        assert_ne!(l[0], Link::Gone, "every namespace has lo");
    }
}
