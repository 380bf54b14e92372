//! Socket addresses for the libc calls std does not wrap (sendto with
//! flags, bind before an option, sendmmsg).

use std::net::{IpAddr, SocketAddr, SocketAddrV4};

pub(crate) fn sockaddr_v4(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// The socket address for `ip:port`, and its length: `sockaddr_in` for an
/// IPv4 address on an IPv4 socket; `sockaddr_in6` on an IPv6 socket (IPv4
/// addresses then v4-mapped, for a dual-stack socket).
pub(crate) fn sockaddr_of(
    ip: IpAddr,
    port: u16,
    v6_socket: bool,
) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match (ip, v6_socket) {
        (IpAddr::V4(v4), false) => {
            let sa = sockaddr_v4(SocketAddrV4::new(v4, port));
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sa) };
            (
                ss,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        (ip, _) => {
            let v6 = match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            let sa = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: port.to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sa) };
            (
                ss,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

/// [`sockaddr_of`] for a whole socket address: an IPv6 one keeps its flow
/// label and scope (a link-local peer needs its interface).
pub(crate) fn sockaddr_from(
    addr: SocketAddr,
    v6_socket: bool,
) -> (libc::sockaddr_storage, libc::socklen_t) {
    let (mut ss, len) = sockaddr_of(addr.ip(), addr.port(), v6_socket);
    if let SocketAddr::V6(a) = addr {
        // SAFETY: sockaddr_of wrote a sockaddr_in6 for an IPv6 address.
        let sa: &mut libc::sockaddr_in6 =
            unsafe { &mut *(&mut ss as *mut libc::sockaddr_storage).cast() };
        sa.sin6_flowinfo = a.flowinfo();
        sa.sin6_scope_id = a.scope_id();
    }
    (ss, len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};

    #[test]
    fn an_ipv6_address_keeps_its_scope_and_an_ipv4_one_fits_either_socket() {
        let link_local = SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2),
            5407,
            7,
            3,
        ));
        let (ss, len) = sockaddr_from(link_local, true);
        assert_eq!(len as usize, std::mem::size_of::<libc::sockaddr_in6>());
        // SAFETY: the family is AF_INET6, so the storage holds a sockaddr_in6.
        let sa: libc::sockaddr_in6 =
            unsafe { std::ptr::read((&ss as *const libc::sockaddr_storage).cast()) };
        assert_eq!(sa.sin6_family as i32, libc::AF_INET6);
        assert_eq!(u16::from_be(sa.sin6_port), 5407);
        assert_eq!((sa.sin6_flowinfo, sa.sin6_scope_id), (7, 3));
        assert_eq!(
            sa.sin6_addr.s6_addr,
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2).octets()
        );

        let v4 = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 5407));
        let (_, len) = sockaddr_from(v4, false);
        assert_eq!(len as usize, std::mem::size_of::<libc::sockaddr_in>());
        let (ss, len) = sockaddr_from(v4, true);
        assert_eq!(len as usize, std::mem::size_of::<libc::sockaddr_in6>());
        // SAFETY: as above.
        let sa: libc::sockaddr_in6 =
            unsafe { std::ptr::read((&ss as *const libc::sockaddr_storage).cast()) };
        assert_eq!(
            sa.sin6_addr.s6_addr,
            Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped().octets()
        );
    }
}
