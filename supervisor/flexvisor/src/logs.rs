//! Service output: one pipe per service, owned by the supervisor, that
//! outlives every restart of the service.
//!
//! The supervisor holds both ends, so output written just before a crash
//! stays in the pipe until read; bytes are assembled into lines (never split
//! mid-line, except lines over [`MAX_LINE`]), timestamped, kept as an
//! in-memory tail and appended to `<dir>/<service>.log`, rotated by size
//! into `.1` … `.N`.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::OFlag;
use serde::{Deserialize, Serialize};

use crate::service::spec::LogSpec;

/// Longer lines are cut into pieces of this size.
pub const MAX_LINE: usize = 16 * 1024;

/// One captured line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub unix_ms: u64,
    pub text: String,
}

impl LogLine {
    pub fn render(&self) -> String {
        format!("{} {}", rfc3339_ms(self.unix_ms), self.text)
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `2026-11-25T13:20:17.123Z`.
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil-from-days (proleptic Gregorian), H. Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// Splits a byte stream into lines. Pure.
#[derive(Debug, Default, Clone)]
pub struct Assembler {
    partial: Vec<u8>,
}

impl Assembler {
    /// Feed bytes; returns the completed lines (without the newline).
    pub fn feed(&mut self, mut bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let room = MAX_LINE - self.partial.len();
            match bytes.iter().take(room).position(|b| *b == b'\n') {
                Some(i) => {
                    self.partial.extend_from_slice(&bytes[..i]);
                    out.push(self.take());
                    bytes = &bytes[i + 1..];
                }
                None if bytes.len() >= room => {
                    self.partial.extend_from_slice(&bytes[..room]);
                    out.push(self.take());
                    bytes = &bytes[room..];
                }
                None => {
                    self.partial.extend_from_slice(bytes);
                    bytes = &[];
                }
            }
        }
        out
    }

    /// The unterminated rest, if any (used when the writer is gone).
    pub fn flush(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        s.trim_end_matches('\r').to_owned()
    }
}

/// The output of one service.
#[derive(Debug)]
pub struct LogSink {
    read: OwnedFd,
    write: OwnedFd,
    asm: Assembler,
    tail: VecDeque<LogLine>,
    spec: LogSpec,
    file: Option<LogFile>,
}

#[derive(Debug)]
struct LogFile {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    /// Why the file could not be opened, for the operator.
    error: Option<String>,
}

impl LogFile {
    fn open(path: PathBuf) -> Self {
        let opened = OpenOptions::new().create(true).append(true).open(&path);
        let error = opened
            .as_ref()
            .err()
            .map(|e| format!("{}: {e}; keeping output in memory only", path.display()));
        let file = opened.ok();
        let size = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        Self {
            path,
            file,
            size,
            error,
        }
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn rotate(&mut self, keep: u32) {
        self.file = None;
        if keep == 0 {
            let _ = fs::remove_file(&self.path);
        } else {
            for n in (1..keep).rev() {
                let _ = fs::rename(self.rotated(n), self.rotated(n + 1));
            }
            let _ = fs::rename(&self.path, self.rotated(1));
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .ok();
        self.size = 0;
    }

    fn append(&mut self, line: &str, spec: &LogSpec) {
        let len = line.len() as u64 + 1;
        if self.size > 0 && self.size + len > spec.max_bytes {
            self.rotate(spec.files);
        }
        if let Some(f) = &mut self.file {
            let mut buf = Vec::with_capacity(line.len() + 1);
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            if f.write_all(&buf).is_ok() {
                self.size += len;
            }
        }
    }
}

impl LogSink {
    /// A new pipe; with `dir`, lines also go to `<dir>/<name>.log`.
    pub fn new(name: &str, dir: Option<&Path>, spec: LogSpec) -> io::Result<Self> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        // Writers (services) must block when the pipe is full rather than
        // lose output; only our read end is non-blocking.
        nix::fcntl::fcntl(&write, nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()))?;
        let file = dir.map(|d| LogFile::open(d.join(format!("{name}.log"))));
        Ok(Self {
            read,
            write,
            asm: Assembler::default(),
            tail: VecDeque::new(),
            spec,
            file,
        })
    }

    /// Why the log file could not be opened, if it could not.
    pub fn file_error(&self) -> Option<&str> {
        self.file.as_ref().and_then(|f| f.error.as_deref())
    }

    /// The descriptor services write to.
    pub fn writer(&self) -> BorrowedFd<'_> {
        self.write.as_fd()
    }

    pub fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    pub fn set_spec(&mut self, spec: LogSpec) {
        self.spec = spec;
        while self.tail.len() > self.spec.tail_lines {
            self.tail.pop_front();
        }
    }

    /// Read everything available; returns the completed lines.
    pub fn drain(&mut self) -> Vec<LogLine> {
        let mut buf = [0u8; 8192];
        let mut lines = Vec::new();
        loop {
            match nix::unistd::read(&self.read, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let now = now_ms();
                    for text in self.asm.feed(&buf[..n]) {
                        lines.push(LogLine { unix_ms: now, text });
                    }
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => break,
            }
        }
        for l in &lines {
            self.keep(l);
        }
        lines
    }

    /// After the service's process ended: read what is left and emit an
    /// unterminated last line, so nothing it wrote is lost.
    pub fn drain_final(&mut self) -> Vec<LogLine> {
        let mut lines = self.drain();
        if let Some(text) = self.asm.flush() {
            let l = LogLine {
                unix_ms: now_ms(),
                text,
            };
            self.keep(&l);
            lines.push(l);
        }
        lines
    }

    fn keep(&mut self, l: &LogLine) {
        if let Some(f) = &mut self.file {
            f.append(&l.render(), &self.spec);
        }
        self.tail.push_back(l.clone());
        while self.tail.len() > self.spec.tail_lines {
            self.tail.pop_front();
        }
    }

    /// The last `n` lines in memory.
    pub fn tail(&self, n: usize) -> Vec<LogLine> {
        let skip = self.tail.len().saturating_sub(n);
        self.tail.iter().skip(skip).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_time() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn assembles_split_lines() {
        let mut a = Assembler::default();
        assert!(a.feed(b"hel").is_empty());
        assert_eq!(a.feed(b"lo\nwor"), vec!["hello"]);
        assert_eq!(a.feed(b"ld\r\n\n"), vec!["world", ""]);
        assert_eq!(a.flush(), None);
    }

    #[test]
    fn rotates_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let spec = LogSpec {
            max_bytes: 1024,
            files: 2,
            tail_lines: 5,
        };
        let mut sink = LogSink::new("svc", Some(dir.path()), spec).unwrap();
        let line = "x".repeat(100);
        for _ in 0..40 {
            nix::unistd::write(sink.writer(), format!("{line}\n").as_bytes()).unwrap();
            sink.drain();
        }
        assert!(dir.path().join("svc.log.1").exists());
        assert!(dir.path().join("svc.log.2").exists());
        assert!(!dir.path().join("svc.log.3").exists());
        let len = fs::metadata(dir.path().join("svc.log")).unwrap().len();
        assert!(len <= 1024, "{len}");
        assert_eq!(sink.tail(100).len(), 5);
    }

    #[test]
    fn unwritable_log_dir_is_reported_and_memory_still_works() {
        let mut sink = LogSink::new(
            "svc",
            Some(Path::new("/nonexistent/dir")),
            LogSpec::default(),
        )
        .unwrap();
        assert!(sink
            .file_error()
            .unwrap()
            .contains("/nonexistent/dir/svc.log"));
        nix::unistd::write(sink.writer(), b"kept\n").unwrap();
        sink.drain();
        assert_eq!(sink.tail(1)[0].text, "kept");
    }

    proptest! {
        /// Lines joined back with newlines give the input back.
        #[test]
        fn no_byte_lost(chunks in proptest::collection::vec("[a-z\n]{0,40}", 0..20)) {
            let mut a = Assembler::default();
            let mut out = Vec::new();
            for c in &chunks {
                out.extend(a.feed(c.as_bytes()));
            }
            let input: String = chunks.concat();
            let mut rebuilt = out.iter().map(|l| format!("{l}\n")).collect::<String>();
            if let Some(rest) = a.flush() {
                rebuilt.push_str(&rest);
            }
            prop_assert_eq!(rebuilt, input);
        }
    }
}
