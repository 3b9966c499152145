//! Who is on the other end of an accepted loopback TCP connection: the uid that owns
//! the peer's socket. SO_PEERCRED answers this for a Unix socket only; for TCP the
//! kernel tells it through NETLINK_SOCK_DIAG (what `ss -e` shows), and, where a
//! sandbox refuses netlink, through `/proc/net/tcp` and `/proc/net/tcp6`.
//!
//! Both ends are on this machine, so the peer's socket is one of the kernel's own:
//! it is the TCP socket whose source is the connection's peer address and whose
//! destination is the connection's local address.

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use netlink_sys::Socket;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::time::Duration;

/// The kernel answers a socket lookup at once; this only bounds a broken netlink.
const NETLINK_TIMEOUT: Duration = Duration::from_secs(2);

/// The uid of the process that owns the other end of a TCP connection accepted on
/// this machine: `local` is the accepted socket's local address, `peer` its peer
/// address (`TcpStream::local_addr`, `peer_addr`). `Ok(None)` when no local socket
/// matches (the peer is on another machine, or has already closed).
///
/// Blocking, but fast: one netlink round trip to the kernel (or one read of
/// `/proc/net/tcp*` when netlink is refused).
pub fn peer_uid(local: SocketAddr, peer: SocketAddr) -> io::Result<Option<u32>> {
    let (local, peer) = (unmap(local), unmap(peer));
    match netlink_peer_uid(local, peer) {
        Ok(found) => Ok(found),
        // No netlink here (a sandbox, seccomp, an old kernel): the /proc tables say the same.
        Err(e) if netlink_unavailable(&e) => proc_peer_uid(local, peer),
        Err(e) => Err(e),
    }
}

/// An IPv4-mapped IPv6 address (a dual-stack listener's view of an IPv4 client) as
/// the IPv4 address the client's own socket has.
fn unmap(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        SocketAddr::V4(_) => a,
    }
}

fn netlink_unavailable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPERM | libc::EACCES | libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT | libc::EOPNOTSUPP)
    ) || e.kind() == io::ErrorKind::Unsupported
        || e.kind() == io::ErrorKind::TimedOut
        || e.kind() == io::ErrorKind::WouldBlock
}

/// One exact lookup (not a dump) of the peer's socket by its 4-tuple.
fn netlink_peer_uid(local: SocketAddr, peer: SocketAddr) -> io::Result<Option<u32>> {
    if local.is_ipv4() != peer.is_ipv4() {
        return Ok(None);
    }
    let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
    rustix::net::sockopt::set_socket_timeout(
        socket.as_fd(),
        rustix::net::sockopt::Timeout::Recv,
        Some(NETLINK_TIMEOUT),
    )?;
    socket.bind_auto()?;
    socket.connect(&netlink_sys::SocketAddr::new(0, 0))?;

    let mut socket_id = if peer.is_ipv4() { SocketId::new_v4() } else { SocketId::new_v6() };
    // The peer's socket: from the peer address to ours.
    socket_id.source_address = peer.ip();
    socket_id.source_port = peer.port();
    socket_id.destination_address = local.ip();
    socket_id.destination_port = local.port();
    // "No cookie": match on the addresses alone.
    socket_id.cookie = [0xff; 8];
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST;
    let mut request = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family: if peer.is_ipv4() { AF_INET } else { AF_INET6 },
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::all(),
            socket_id,
        })
        .into(),
    );
    request.finalize();
    let mut out = vec![0; request.buffer_len()];
    request.serialize(&mut out);
    socket.send(&out, 0)?;

    let mut buf = Vec::with_capacity(8192);
    loop {
        buf.clear();
        let n = socket.recv(&mut buf, 0)?;
        if n == 0 {
            return Ok(None);
        }
        let mut offset = 0;
        while offset < buf.len() {
            let msg = NetlinkMessage::<SockDiagMessage>::deserialize(&buf[offset..])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("sock_diag answer: {e}")))?;
            match msg.payload {
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                    let id = &r.header.socket_id;
                    if id.source_address == peer.ip()
                        && id.source_port == peer.port()
                        && id.destination_address == local.ip()
                        && id.destination_port == local.port()
                    {
                        return Ok(Some(r.header.uid));
                    }
                }
                NetlinkPayload::Error(e) => {
                    return match e.code.map(|c| -c.get()) {
                        None => Ok(None),
                        // No such socket.
                        Some(libc::ENOENT) => Ok(None),
                        Some(errno) => Err(io::Error::from_raw_os_error(errno)),
                    };
                }
                NetlinkPayload::Done(_) => return Ok(None),
                _ => {}
            }
            let len = msg.header.length as usize;
            if len == 0 {
                break;
            }
            offset += len;
        }
    }
}

/// The same lookup in `/proc/net/tcp` (IPv4) or `/proc/net/tcp6` (IPv6).
fn proc_peer_uid(local: SocketAddr, peer: SocketAddr) -> io::Result<Option<u32>> {
    if local.is_ipv4() != peer.is_ipv4() {
        return Ok(None);
    }
    let table = if peer.is_ipv4() { "/proc/net/tcp" } else { "/proc/net/tcp6" };
    let text = std::fs::read_to_string(table)?;
    Ok(find_in_proc_table(&text, local, peer))
}

/// Finds the socket from `peer` to `local` in a `/proc/net/tcp*` table and returns
/// its uid column.
fn find_in_proc_table(text: &str, local: SocketAddr, peer: SocketAddr) -> Option<u32> {
    text.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (src, dst, uid) = (fields.get(1)?, fields.get(2)?, fields.get(7)?);
        if parse_proc_addr(src)? == peer && parse_proc_addr(dst)? == local {
            uid.parse().ok()
        } else {
            None
        }
    })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6). The kernel prints each
/// 32-bit word of the network-order address as a native-endian number.
fn parse_proc_addr(s: &str) -> Option<SocketAddr> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok()?.to_ne_bytes())
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::process::{Command, Stdio};

    fn own_uid() -> u32 {
        rustix::process::getuid().as_raw()
    }

    fn is_root() -> bool {
        rustix::process::geteuid().as_raw() == 0
    }

    /// Accepts one connection and returns its (local, peer) addresses, plus both streams.
    fn connect_to_self(ip: IpAddr) -> Option<(TcpStream, TcpStream)> {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0)).ok()?;
        let client = TcpStream::connect(listener.local_addr().ok()?).ok()?;
        let (server, _) = listener.accept().ok()?;
        Some((client, server))
    }

    fn check_own_uid(ip: IpAddr) {
        let Some((_client, server)) = connect_to_self(ip) else {
            eprintln!("no {ip} loopback here; skipped");
            return;
        };
        let (local, peer) = (server.local_addr().unwrap(), server.peer_addr().unwrap());
        assert_eq!(peer_uid(local, peer).unwrap(), Some(own_uid()));
        assert_eq!(netlink_peer_uid(local, peer).unwrap(), Some(own_uid()), "netlink itself");
        assert_eq!(proc_peer_uid(local, peer).unwrap(), Some(own_uid()), "the /proc fallback");
        // Our own accepted socket is not the peer's: the direction matters.
        assert_eq!(proc_peer_uid(peer, local).unwrap(), Some(own_uid()));
        assert_eq!(netlink_peer_uid(local, SocketAddr::new(peer.ip(), 1)).unwrap(), None);
        assert_eq!(proc_peer_uid(local, SocketAddr::new(peer.ip(), 1)).unwrap(), None);
    }

    #[test]
    fn finds_this_process_uid_over_ipv4() {
        check_own_uid(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn finds_this_process_uid_over_ipv6() {
        check_own_uid(IpAddr::V6(Ipv6Addr::LOCALHOST));
    }

    #[test]
    fn a_dual_stack_listener_sees_an_ipv4_client_through_its_mapped_address() {
        let Ok(listener) = TcpListener::bind("[::]:0") else {
            eprintln!("no IPv6 here; skipped");
            return;
        };
        let port = listener.local_addr().unwrap().port();
        let Ok(_client) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
            eprintln!("the [::] listener is IPv6-only here; skipped");
            return;
        };
        let (server, _) = listener.accept().unwrap();
        let (local, peer) = (server.local_addr().unwrap(), server.peer_addr().unwrap());
        assert!(peer.to_string().starts_with("[::ffff:127.0.0.1]"), "{peer}");
        assert_eq!(peer_uid(local, peer).unwrap(), Some(own_uid()));
    }

    #[test]
    fn no_socket_means_none() {
        let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 1));
        let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 2));
        assert_eq!(peer_uid(local, peer).unwrap(), None);
    }

    /// A child under another uid connects; the uid found is that one, not ours.
    fn check_other_uid(ip: IpAddr) {
        if !is_root() {
            eprintln!("not root: cannot run a child as uid 65534; skipped");
            return;
        }
        let Ok(listener) = TcpListener::bind(SocketAddr::new(ip, 0)) else {
            eprintln!("no {ip} loopback here; skipped");
            return;
        };
        let port = listener.local_addr().unwrap().port();
        let host = match ip {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => a.to_string(),
        };
        // The child holds the connection until its stdin closes.
        let mut child = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "bash", "-c"])
            .arg(format!("exec 3<>/dev/tcp/{host}/{port}; read -r _"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = accept_within(&listener, &mut child);
        let (local, peer) = (server.local_addr().unwrap(), server.peer_addr().unwrap());
        let found = peer_uid(local, peer);
        let by_proc = proc_peer_uid(local, peer);
        drop(child.stdin.take());
        child.wait().unwrap();
        let mut rest = Vec::new();
        let _ = server.read_to_end(&mut rest);
        assert_eq!(found.unwrap(), Some(65534));
        assert_eq!(by_proc.unwrap(), Some(65534));
    }

    /// Accepts the child's connection, failing (not hanging) when the child gives up.
    fn accept_within(listener: &TcpListener, child: &mut std::process::Child) -> TcpStream {
        listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            match listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    return s;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("accept: {e}"),
            }
            if let Some(st) = child.try_wait().unwrap() {
                panic!("the child exited before connecting: {st}");
            }
            assert!(std::time::Instant::now() < deadline, "the child never connected");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn finds_another_uid_over_ipv4() {
        check_other_uid(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn finds_another_uid_over_ipv6() {
        check_other_uid(IpAddr::V6(Ipv6Addr::LOCALHOST));
    }

    #[test]
    fn reads_proc_tables() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
                  0: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 1 1\n";
        let (local, peer) = ("127.0.0.1:54321".parse().unwrap(), "127.0.0.1:8080".parse().unwrap());
        // Written on a little-endian machine; the words read back the same on one.
        if cfg!(target_endian = "little") {
            assert_eq!(find_in_proc_table(v4, local, peer), Some(1000));
            assert_eq!(find_in_proc_table(v4, peer, local), None);
            let v6 =
                "header\n 0: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:D431 \
                      01 00000000:00000000 00:00000000 00000000 65534 0 1\n";
            let (l6, p6) = ("[::1]:54321".parse().unwrap(), "[::1]:8080".parse().unwrap());
            assert_eq!(find_in_proc_table(v6, l6, p6), Some(65534));
        }
        assert_eq!(parse_proc_addr("zz:1"), None);
        assert_eq!(find_in_proc_table("header\n garbage\n", local, peer), None);
    }
}
