//! The host side of the upstream network: a tap device inside the run's
//! namespace, cabled to the `upstream` switch. The CMM and the EN2092
//! agents listen on the tap's addresses, so guests reach them over their
//! bonds and the modules' uplinks exactly as on the chassis management
//! network (and lose them when the uplinks go down).
//!
//! The only unsafe code of the crate is the `TUNSETIFF` ioctl here.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::netns::Netns;
use crate::proc::{self, ProcError};

/// Errors creating the tap port.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("cannot create tap `{name}` in namespace {netns}: {detail}")]
    Create {
        name: String,
        netns: String,
        detail: String,
    },
    #[error(transparent)]
    Proc(#[from] ProcError),
    #[error("tap port socket {path}: {source}")]
    Socket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

// TUNSETIFF is _IOW('T', 202, int) in <linux/if_tun.h>, but takes a
// pointer to a struct ifreq.
nix::ioctl_write_ptr_bad!(
    tunsetiff,
    nix::request_code_write!(b'T', 202, std::mem::size_of::<libc::c_int>()),
    libc::ifreq
);

fn open_tap(name: &str) -> std::io::Result<File> {
    let file = File::options()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    use std::os::fd::AsRawFd;
    // SAFETY: the fd is an open /dev/net/tun and `req` a valid, initialised
    // ifreq that outlives the call; the kernel only reads and writes it.
    unsafe { tunsetiff(file.as_raw_fd(), &req) }.map_err(std::io::Error::from)?;
    Ok(file)
}

/// A running tap port; the forwarding threads stop on drop (the device
/// goes with the namespace).
#[derive(Debug)]
pub struct TapPort {
    name: String,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl TapPort {
    /// Create tap `name` in `netns`, bring it up with `addresses` (CIDR),
    /// and forward its frames to and from the switch at `switch`, from the
    /// socket `endpoint` (which the caller adds as a switch port).
    pub fn start(
        netns: &Netns,
        name: &str,
        addresses: &[String],
        switch: &Path,
        endpoint: &Path,
    ) -> Result<TapPort, TapError> {
        let owned = name.to_owned();
        let file = netns
            .within(move || open_tap(&owned))
            .and_then(|r| r)
            .map_err(|e| TapError::Create {
                name: name.to_owned(),
                netns: netns.name().to_owned(),
                detail: e.to_string(),
            })?;
        proc::run(netns.command("ip").args(["link", "set", name, "up"]))?;
        for a in addresses {
            proc::run(netns.command("ip").args(["addr", "add", a, "dev", name]))?;
        }
        let sock_err = |source| TapError::Socket {
            path: endpoint.to_owned(),
            source,
        };
        let _ = std::fs::remove_file(endpoint);
        let sock = UnixDatagram::bind(endpoint).map_err(sock_err)?;
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(sock_err)?;
        sock.set_write_timeout(Some(Duration::from_millis(20)))
            .map_err(sock_err)?;
        let sock = Arc::new(sock);
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();

        let (mut rx_file, tx_file) = (file.try_clone().map_err(sock_err)?, file);
        let (s1, st1, sw) = (Arc::clone(&sock), Arc::clone(&stop), switch.to_owned());
        threads.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 9216];
            while !st1.load(Ordering::Relaxed) {
                let mut fds = [PollFd::new(rx_file.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::from(200u16)) {
                    Ok(n) if n > 0 => {}
                    Ok(_) => continue,
                    Err(_) => break,
                }
                match rx_file.read(&mut buf) {
                    Ok(n) if n >= 14 => {
                        let _ = s1.send_to(&buf[..n], &sw);
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }));
        let (s2, st2) = (Arc::clone(&sock), Arc::clone(&stop));
        threads.push(std::thread::spawn(move || {
            let mut tx_file = tx_file;
            let mut buf = vec![0u8; 9216];
            while !st2.load(Ordering::Relaxed) {
                match s2.recv(&mut buf) {
                    Ok(n) => {
                        let _ = tx_file.write(&buf[..n]);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                        ) => {}
                    Err(_) => break,
                }
            }
        }));
        Ok(TapPort {
            name: name.to_owned(),
            stop,
            threads,
        })
    }

    /// The device name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TapPort {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
