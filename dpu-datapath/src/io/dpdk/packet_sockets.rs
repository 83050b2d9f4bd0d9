//! Drops of the `net_af_packet` PMD's sockets, which the PMD never reads.
//!
//! An AF_PACKET socket whose ring is full drops the frame and counts it in
//! the socket (`PACKET_STATISTICS`), not in the interface, and DPDK 22.11's
//! af_packet PMD does not ask. Its sockets are file descriptors of this
//! process, so we find them (AF_PACKET, bound to the port's interface) once
//! the port has started, and read their counters. The kernel resets them on
//! each read, and only we read them: every read adds to our total.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};

/// The PMD's packet sockets on one interface and the drops read so far.
#[derive(Debug)]
pub struct PacketSocketDrops {
    fds: Vec<RawFd>,
    ifindex: i32,
    total: AtomicU64,
}

impl PacketSocketDrops {
    /// The packet sockets of this process bound to `iface` (none found is
    /// an error: the caller logs it and counts without them).
    pub fn find(iface: &str) -> std::io::Result<Self> {
        let ifindex: i32 = std::fs::read_to_string(format!("/sys/class/net/{iface}/ifindex"))?
            .trim()
            .parse()
            .map_err(|_| std::io::Error::other(format!("{iface}: unreadable ifindex")))?;
        let mut fds = Vec::new();
        for entry in std::fs::read_dir("/proc/self/fd")? {
            let entry = entry?;
            let is_socket = std::fs::read_link(entry.path())
                .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
            let fd: Option<RawFd> = entry.file_name().to_str().and_then(|n| n.parse().ok());
            if let (true, Some(fd)) = (is_socket, fd) {
                if packet_socket_ifindex(fd) == Some(ifindex) {
                    fds.push(fd);
                }
            }
        }
        if fds.is_empty() {
            return Err(std::io::Error::other(format!(
                "no AF_PACKET socket of this process is bound to {iface}"
            )));
        }
        let drops = Self {
            fds,
            ifindex,
            total: AtomicU64::new(0),
        };
        drops.read(); // forget what happened before the port started
        drops.total.store(0, Ordering::Relaxed);
        Ok(drops)
    }

    /// Reads (and so resets) every socket's drop counter; the total since
    /// [`PacketSocketDrops::find`].
    pub fn read(&self) -> u64 {
        let mut new = 0u64;
        for &fd in &self.fds {
            // A descriptor the PMD closed (and the number reused) is no longer
            // our packet socket: skip it rather than reset a stranger's count.
            if packet_socket_ifindex(fd) != Some(self.ifindex) {
                continue;
            }
            let mut stats = libc::tpacket_stats {
                tp_packets: 0,
                tp_drops: 0,
            };
            let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
            // SAFETY: `stats` is a writable tpacket_stats and `len` its size, as
            // PACKET_STATISTICS expects for TPACKET_V1/V2 sockets (the kernel
            // writes at most `len` bytes).
            let ret = unsafe {
                libc::getsockopt(
                    fd,
                    libc::SOL_PACKET,
                    libc::PACKET_STATISTICS,
                    (&mut stats as *mut libc::tpacket_stats).cast(),
                    &mut len,
                )
            };
            if ret == 0 {
                new += u64::from(stats.tp_drops);
            }
        }
        self.total.fetch_add(new, Ordering::Relaxed) + new
    }

    pub fn sockets(&self) -> usize {
        self.fds.len()
    }
}

/// The interface an AF_PACKET socket `fd` is bound to; `None` for any other
/// descriptor.
fn packet_socket_ifindex(fd: RawFd) -> Option<i32> {
    let mut domain: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `domain` is a writable c_int and `len` its size; on a descriptor
    // that is not a socket the call fails (ENOTSOCK) without writing.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&mut domain as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if ret != 0 || domain != libc::AF_PACKET {
        return None;
    }
    // SAFETY: an all-zero sockaddr_ll is a valid value of the plain C struct.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `addr` is a writable sockaddr_ll and `len` its size; the kernel
    // writes at most `len` bytes of the socket's address.
    let ret =
        unsafe { libc::getsockname(fd, (&mut addr as *mut libc::sockaddr_ll).cast(), &mut len) };
    (ret == 0).then_some(addr.sll_ifindex)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finds a packet socket of its own on the loopback interface (root
    /// only: AF_PACKET needs CAP_NET_RAW) and reads its counter.
    #[test]
    fn finds_this_process_packet_sockets() {
        let proto = (libc::ETH_P_ALL as u16).to_be() as libc::c_int;
        // SAFETY: plain socket creation; the descriptor is closed below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto) };
        if fd < 0 {
            // Only without CAP_NET_RAW (CI runs as root).
            let err = std::io::Error::last_os_error().raw_os_error();
            assert_eq!(err, Some(libc::EPERM), "packet socket");
            return;
        }
        let lo: i32 = std::fs::read_to_string("/sys/class/net/lo/ifindex")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SAFETY: an all-zero sockaddr_ll is valid; the fields set below are
        // what bind() reads for AF_PACKET.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto as u16;
        addr.sll_ifindex = lo;
        // SAFETY: `addr` is a valid sockaddr_ll of the given length.
        let ret = unsafe {
            libc::bind(
                fd,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        assert_eq!(ret, 0);
        let drops = PacketSocketDrops::find("lo").unwrap();
        assert!(drops.fds.contains(&fd));
        assert_eq!(packet_socket_ifindex(0), None, "stdin is no packet socket");
        let _ = drops.read();
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::close(fd) };
    }
}
