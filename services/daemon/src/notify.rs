//! Readiness notification: s6-style notification file descriptor
//! (`--notify-fd N`: a newline, then close; what flexvisor's
//! `readiness.kind = "notify-fd"` reads) and systemd-style `NOTIFY_SOCKET`
//! datagrams (`READY=1`).

use std::io::Write as _;
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixDatagram;

/// Sends `READY=1` to `$NOTIFY_SOCKET` when set (abstract `@name` supported).
/// Returns whether a notification was sent.
pub fn sd_notify_ready() -> std::io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    sd_notify_ready_to(&path)?;
    Ok(true)
}

/// Sends `READY=1` to the datagram socket `path` (`@name` is abstract).
fn sd_notify_ready_to(path: &std::ffi::OsStr) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(b"READY=1\n", &addr)?;
    } else {
        sock.send_to(b"READY=1\n", path)?;
    }
    Ok(())
}

/// Writes a newline to fd `fd` and closes it (s6 `notification-fd`).
pub fn fd_notify_ready(fd: i32) -> std::io::Result<()> {
    if fd < 3 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("--notify-fd {fd}: refusing to use stdin/stdout/stderr"),
        ));
    }
    // Check the descriptor is open before taking ownership of it.
    std::fs::metadata(format!("/proc/self/fd/{fd}"))
        .map_err(|e| std::io::Error::new(e.kind(), format!("--notify-fd {fd}: not open: {e}")))?;
    // SAFETY: fd is open (checked above), >= 3, and named by the supervisor
    // as ours to write once and close; nothing else in this process uses it.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    f.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;
    use std::os::fd::IntoRawFd;

    #[test]
    fn notify_fd_gets_a_newline_then_eof() {
        let (mut reader, writer) = std::io::pipe().expect("pipe");
        fd_notify_ready(writer.into_raw_fd()).expect("notify");
        let mut got = Vec::new();
        // EOF proves the write end was closed after the newline.
        reader.read_to_end(&mut got).expect("read");
        assert_eq!(got, b"\n");
    }

    #[test]
    fn notify_fd_refuses_stdio_and_closed_fds() {
        let e = fd_notify_ready(1).expect_err("stdout refused");
        assert!(e.to_string().contains("--notify-fd 1: refusing"), "{e}");
        // A descriptor number far above anything this test process opens.
        let e = fd_notify_ready(1_000_000).expect_err("closed fd refused");
        assert!(
            e.to_string().contains("--notify-fd 1000000: not open"),
            "{e}"
        );
    }

    #[test]
    fn notify_socket_gets_ready_datagram() {
        let dir =
            std::env::temp_dir().join(format!("flexvisor-daemon-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).expect("bind");
        let sent = sd_notify_ready_to(path.as_os_str());
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).expect("recv");
        let _ = std::fs::remove_dir_all(&dir);
        sent.expect("send");
        assert_eq!(&buf[..n], b"READY=1\n");
    }

    #[test]
    fn notify_socket_abstract_name() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("flexvisor-daemon-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .expect("abstract addr");
        let server = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        sd_notify_ready_to(std::ffi::OsStr::new(&format!("@{name}"))).expect("send");
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1\n");
    }
}
