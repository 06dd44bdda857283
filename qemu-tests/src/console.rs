//! Serial console capture: qemu writes each node's ttyS0 to a file
//! (`-chardev file,append=on`, so a power cycle keeps the history) and the
//! harness waits for lines in it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::proc;

/// Errors waiting on a console.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("console {path}: no line {wanted} within {secs}s; last lines:\n{tail}")]
    Timeout {
        path: PathBuf,
        wanted: String,
        secs: u64,
        tail: String,
    },
}

/// The console log of one node.
#[derive(Debug, Clone)]
pub struct Console {
    path: PathBuf,
}

impl Console {
    /// The console written at `path`.
    pub fn new(path: &Path) -> Console {
        Console {
            path: path.to_owned(),
        }
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Current end of the log: pass it to [`Console::wait_for`] to see
    /// only what comes after.
    pub fn mark(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// Everything logged so far (lossy UTF-8, serial consoles carry noise).
    pub fn text(&self) -> String {
        std::fs::read(&self.path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The complete lines after byte `from` (CR stripped).
    pub fn lines_since(&self, from: u64) -> Vec<String> {
        let Ok(bytes) = std::fs::read(&self.path) else {
            return Vec::new();
        };
        let start = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
        let text = String::from_utf8_lossy(&bytes[start..]).into_owned();
        let complete = text.rfind('\n').map(|i| &text[..i]).unwrap_or("");
        complete
            .lines()
            .map(|l| l.trim_end_matches('\r').to_owned())
            .collect()
    }

    /// Wait until a complete line after byte `from` satisfies `matches`;
    /// returns that line. `wanted` describes it for the error.
    pub fn wait_for(
        &self,
        from: u64,
        wanted: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Result<String, ConsoleError> {
        let found = proc::poll(timeout, || {
            let bytes = std::fs::read(&self.path).ok()?;
            let start = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
            let text = String::from_utf8_lossy(&bytes[start..]).into_owned();
            let complete = text.rfind('\n').map(|i| &text[..i]).unwrap_or("");
            complete
                .lines()
                .map(|l| l.trim_end_matches('\r'))
                .find(|l| matches(l))
                .map(str::to_owned)
        });
        found.ok_or_else(|| ConsoleError::Timeout {
            path: self.path.clone(),
            wanted: wanted.to_owned(),
            secs: timeout.as_secs(),
            tail: self.tail(15),
        })
    }

    /// Wait for a line containing `needle`.
    pub fn wait_for_text(
        &self,
        from: u64,
        needle: &str,
        timeout: Duration,
    ) -> Result<String, ConsoleError> {
        self.wait_for(from, &format!("containing {needle:?}"), timeout, |l| {
            l.contains(needle)
        })
    }

    /// The last `n` lines, for error messages.
    pub fn tail(&self, n: usize) -> String {
        let t = self.text();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_only_for_complete_lines_after_the_mark() {
        let dir = std::env::temp_dir().join(format!("fvq-console-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.log");
        std::fs::write(&p, "boot READY old\r\n").unwrap();
        let c = Console::new(&p);
        let m = c.mark();
        std::fs::write(&p, "boot READY old\r\npartial READY").unwrap();
        let e = c
            .wait_for_text(m, "READY", Duration::from_millis(200))
            .unwrap_err();
        assert!(e.to_string().contains("partial READY"), "{e}");
        std::fs::write(&p, "boot READY old\r\npartial READY now\r\n").unwrap();
        let l = c.wait_for_text(m, "READY", Duration::from_secs(2)).unwrap();
        assert_eq!(l, "partial READY now");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
