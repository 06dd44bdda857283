//! System slots A/B: which one boots, trying a new one once, and rolling
//! back when it does not reach ready.
//!
//! The state lives on the config partition (`/config/slot`, the mirror
//! md0), as `key=value` lines the initramfs shim reads with `sed`:
//!
//! ```text
//! default=a      # the slot that boots
//! try=b          # a new system written to b, not yet proven
//! tries=1        # boots of `try` left before rolling back
//! failed=b       # the last try that did not reach ready (informational)
//! ```
//!
//! The transitions are one pure function, [`next`]; the shim implements
//! [`Event::Boot`] in shell (`image/data/init.sh`, same rules), `flexctl
//! image update` [`Event::Updated`] and `flexctl image bless` (run by the
//! console report once flexvisor is ready) [`Event::Ready`].

use std::fmt;

/// A system slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }
    pub fn parse(s: &str) -> Option<Slot> {
        match s.trim() {
            "a" | "A" => Some(Slot::A),
            "b" | "B" => Some(Slot::B),
            _ => None,
        }
    }
    /// The GPT partition name of the slot.
    pub fn partition(self) -> &'static str {
        match self {
            Slot::A => crate::layout::SYSTEM_A,
            Slot::B => crate::layout::SYSTEM_B,
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The slot state of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub default: Slot,
    /// A slot being tried, with the boots it has left.
    pub trying: Option<(Slot, u32)>,
    pub failed: Option<Slot>,
}

impl Default for State {
    fn default() -> State {
        State {
            default: Slot::A,
            trying: None,
            failed: None,
        }
    }
}

/// A malformed slot file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("slot file line {line}: {problem}")]
pub struct SlotError {
    pub line: usize,
    pub problem: String,
}

impl State {
    /// Parse a slot file (missing keys take their defaults).
    pub fn parse(text: &str) -> Result<State, SlotError> {
        let mut st = State::default();
        let mut try_slot = None;
        let mut tries = 1;
        for (i, l) in text.lines().enumerate() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let err = |problem: String| SlotError {
                line: i + 1,
                problem,
            };
            let (k, v) = l
                .split_once('=')
                .ok_or_else(|| err(format!("expected key=value, got {l:?}")))?;
            let slot = || Slot::parse(v).ok_or_else(|| err(format!("{k}: {v:?} is not a or b")));
            match k.trim() {
                "default" => st.default = slot()?,
                "try" => try_slot = Some(slot()?),
                "failed" => st.failed = Some(slot()?),
                "tries" => {
                    tries = v
                        .trim()
                        .parse()
                        .map_err(|_| err(format!("tries: {v:?} is not a number")))?
                }
                other => return Err(err(format!("unknown key {other:?}"))),
            }
        }
        st.trying = try_slot.map(|s| (s, tries));
        Ok(st)
    }

    /// The slot file text.
    pub fn render(&self) -> String {
        let mut s = format!("default={}\n", self.default);
        if let Some((t, n)) = self.trying {
            s.push_str(&format!("try={t}\ntries={n}\n"));
        }
        if let Some(f) = self.failed {
            s.push_str(&format!("failed={f}\n"));
        }
        s
    }
}

/// What happens to a node's slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A new system was written to `slot` (the one not running).
    Updated { slot: Slot },
    /// The machine boots (the shim decides which slot).
    Boot,
    /// flexvisor reached ready on `booted`.
    Ready { booted: Slot },
}

/// What to do about an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Boot this slot (for [`Event::Boot`]).
    Boot(Slot),
    /// Boot the default: the tried slot used up its boots without ready.
    RollBack { failed: Slot, to: Slot },
    /// The tried slot reached ready: it is the default now.
    Committed(Slot),
    /// Nothing to change.
    None,
}

/// The pure transition: `(state, event) -> (state, action)`.
pub fn next(st: &State, ev: Event) -> (State, Action) {
    let mut s = st.clone();
    match ev {
        Event::Updated { slot } => {
            s.trying = Some((slot, 1));
            s.failed = None;
            (s, Action::None)
        }
        Event::Boot => match st.trying {
            Some((t, n)) if n > 0 => {
                s.trying = Some((t, n - 1));
                (s, Action::Boot(t))
            }
            Some((t, _)) => {
                s.trying = None;
                s.failed = Some(t);
                (
                    s,
                    Action::RollBack {
                        failed: t,
                        to: st.default,
                    },
                )
            }
            None => (s, Action::Boot(st.default)),
        },
        Event::Ready { booted } => match st.trying {
            Some((t, _)) if t == booted => {
                s.default = t;
                s.trying = None;
                s.failed = None;
                (s, Action::Committed(t))
            }
            _ => (s, Action::None),
        },
    }
}

/// Why a slot could not be written.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Gpt {
        path: String,
        #[source]
        source: crate::gpt::GptError,
    },
    #[error("{path} has no partition `{name}`")]
    NoPartition { path: String, name: String },
    #[error("the new system ({new} bytes) does not fit slot {slot} of {path} ({room} bytes)")]
    TooBig {
        path: String,
        slot: Slot,
        new: u64,
        room: u64,
    },
}

fn table_of(f: &mut std::fs::File, path: &str) -> Result<crate::gpt::Table, UpdateError> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |source| UpdateError::Io {
        path: path.to_owned(),
        source,
    };
    let len = f.seek(SeekFrom::End(0)).map_err(io)?;
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut primary = vec![0u8; crate::gpt::Table::PRIMARY_BYTES];
    f.read_exact(&mut primary).map_err(io)?;
    crate::gpt::Table::parse(&primary, len / crate::gpt::SECTOR).map_err(|source| {
        UpdateError::Gpt {
            path: path.to_owned(),
            source,
        }
    })
}

/// Copy the system of slot A of the image file `from` into `slot` of
/// `disk` (a node disk or image file, by GPT partition name), up to the
/// source's last non-zero MiB; fsync'ed. Returns the bytes written.
pub fn write_system(
    from: &std::path::Path,
    disk: &std::path::Path,
    slot: Slot,
) -> Result<u64, UpdateError> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let (fp, dp) = (from.display().to_string(), disk.display().to_string());
    let fio = |source| UpdateError::Io {
        path: fp.clone(),
        source,
    };
    let dio = |source| UpdateError::Io {
        path: dp.clone(),
        source,
    };
    let mut src = std::fs::File::open(from).map_err(fio)?;
    let st = table_of(&mut src, &fp)?;
    let sp = st
        .partitions
        .iter()
        .find(|p| p.name == crate::layout::SYSTEM_A)
        .ok_or_else(|| UpdateError::NoPartition {
            path: fp.clone(),
            name: crate::layout::SYSTEM_A.into(),
        })?
        .clone();
    let mut dst = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(disk)
        .map_err(dio)?;
    let dt = table_of(&mut dst, &dp)?;
    let tp = dt
        .partitions
        .iter()
        .find(|p| p.name == slot.partition())
        .ok_or_else(|| UpdateError::NoPartition {
            path: dp.clone(),
            name: slot.partition().into(),
        })?
        .clone();
    // The source's content: its partition up to the last non-zero MiB.
    let mut buf = vec![0u8; crate::layout::MIB as usize];
    let mut chunks = Vec::new();
    let mut used = 0u64;
    let mut off = 0u64;
    while off < sp.size() {
        let n = (sp.size() - off).min(buf.len() as u64) as usize;
        src.seek(SeekFrom::Start(sp.offset() + off)).map_err(fio)?;
        src.read_exact(&mut buf[..n]).map_err(fio)?;
        if buf[..n].iter().any(|b| *b != 0) {
            used = off + n as u64;
        }
        chunks.push(off);
        off += n as u64;
    }
    if used > tp.size() {
        return Err(UpdateError::TooBig {
            path: dp,
            slot,
            new: used,
            room: tp.size(),
        });
    }
    let mut written = 0;
    for off in chunks.into_iter().take_while(|o| *o < used) {
        let n = (used - off).min(buf.len() as u64) as usize;
        src.seek(SeekFrom::Start(sp.offset() + off)).map_err(fio)?;
        src.read_exact(&mut buf[..n]).map_err(fio)?;
        dst.seek(SeekFrom::Start(tp.offset() + off)).map_err(dio)?;
        dst.write_all(&buf[..n]).map_err(dio)?;
        written += n as u64;
    }
    dst.sync_all().map_err(dio)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_tries_once_then_commits_on_ready() {
        let st = State::default();
        let (st, _) = next(&st, Event::Updated { slot: Slot::B });
        let (st, a) = next(&st, Event::Boot);
        assert_eq!(a, Action::Boot(Slot::B));
        let (st, a) = next(&st, Event::Ready { booted: Slot::B });
        assert_eq!(a, Action::Committed(Slot::B));
        assert_eq!(st.default, Slot::B);
        assert_eq!(next(&st, Event::Boot).1, Action::Boot(Slot::B));
    }

    #[test]
    fn a_try_that_never_gets_ready_rolls_back_on_the_next_boot() {
        let (st, _) = next(&State::default(), Event::Updated { slot: Slot::B });
        let (st, a) = next(&st, Event::Boot);
        assert_eq!(a, Action::Boot(Slot::B));
        // Crash, watchdog or power cycle: no Ready.
        let (st, a) = next(&st, Event::Boot);
        assert_eq!(
            a,
            Action::RollBack {
                failed: Slot::B,
                to: Slot::A
            }
        );
        assert_eq!(st.failed, Some(Slot::B));
        assert_eq!(next(&st, Event::Boot).1, Action::Boot(Slot::A));
        // Ready on the old slot does not commit the failed one.
        let (st2, a) = next(&st, Event::Ready { booted: Slot::A });
        assert_eq!((a, st2.default), (Action::None, Slot::A));
    }

    #[test]
    fn slot_file_round_trip_and_errors() {
        let st = State {
            default: Slot::B,
            trying: Some((Slot::A, 1)),
            failed: None,
        };
        assert_eq!(State::parse(&st.render()).unwrap(), st);
        assert_eq!(State::parse("").unwrap(), State::default());
        let e = State::parse("default=a\ntry=c\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(State::parse("slot a").is_err());
        assert!(State::parse("colour=b").is_err());
    }

    #[test]
    fn system_of_a_new_image_lands_in_slot_b_only() {
        use crate::ids::Seed;
        use crate::layout::{table, Sizes, MIB};
        use std::io::{Read, Seek, SeekFrom, Write};
        let dir = std::env::temp_dir().join(format!("fv-slots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let seed = Seed {
            deployment: "d".into(),
            chassis: "c".into(),
            bay: 5,
        };
        let sizes = Sizes {
            esp: 2 * MIB,
            system: 4 * MIB,
            config: 2 * MIB,
            data: 2 * MIB,
        };
        let t = table(sizes, &seed, "disk1");
        let make = |name: &str, fill_a: u8| {
            let p = dir.join(name);
            let mut f = std::fs::File::create(&p).unwrap();
            f.set_len(t.total_sectors * 512).unwrap();
            f.write_all(&t.primary().unwrap()).unwrap();
            f.seek(SeekFrom::Start(t.backup_offset())).unwrap();
            f.write_all(&t.backup().unwrap()).unwrap();
            let a = t
                .partitions
                .iter()
                .find(|p| p.name == "fv-system-a")
                .unwrap();
            f.seek(SeekFrom::Start(a.offset())).unwrap();
            f.write_all(&vec![fill_a; (3 * MIB / 2) as usize]).unwrap();
            p
        };
        let node = make("node.img", 0xAA);
        let new = make("new.img", 0xBB);
        let n = write_system(&new, &node, Slot::B).unwrap();
        assert_eq!(n, 2 * MIB, "up to the last non-zero MiB");
        let read = |name: &str, len: usize| {
            let p = t.partitions.iter().find(|p| p.name == name).unwrap();
            let mut f = std::fs::File::open(&node).unwrap();
            f.seek(SeekFrom::Start(p.offset())).unwrap();
            let mut b = vec![0u8; len];
            f.read_exact(&mut b).unwrap();
            b
        };
        assert!(read("fv-system-b", (3 * MIB / 2) as usize)
            .iter()
            .all(|b| *b == 0xBB));
        assert!(read("fv-system-a", (3 * MIB / 2) as usize)
            .iter()
            .all(|b| *b == 0xAA));
        assert!(read("fv-config", 4096).iter().all(|b| *b == 0));
        // A system larger than the slot is refused before anything is written.
        let big = make("big.img", 0xCC);
        {
            let a = t
                .partitions
                .iter()
                .find(|p| p.name == "fv-system-a")
                .unwrap();
            let mut f = std::fs::OpenOptions::new().write(true).open(&big).unwrap();
            f.seek(SeekFrom::Start(a.offset())).unwrap();
            f.write_all(&vec![0xCC; (4 * MIB) as usize]).unwrap();
        }
        let small = Sizes {
            system: 2 * MIB,
            ..sizes
        };
        let ts = table(small, &seed, "disk1");
        let tiny = dir.join("tiny.img");
        let mut f = std::fs::File::create(&tiny).unwrap();
        f.set_len(ts.total_sectors * 512).unwrap();
        f.write_all(&ts.primary().unwrap()).unwrap();
        let e = write_system(&big, &tiny, Slot::B).unwrap_err();
        assert!(e.to_string().contains("does not fit slot b"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    proptest::proptest! {
        #[test]
        fn boot_always_names_a_slot_and_tries_run_out(tries in 0u32..5, start_b: bool) {
            let default = if start_b { Slot::B } else { Slot::A };
            let mut st = State { default, trying: Some((default.other(), tries)), failed: None };
            for _ in 0..=tries {
                let (s, a) = next(&st, Event::Boot);
                let named = matches!(a, Action::Boot(_) | Action::RollBack { .. });
                proptest::prop_assert!(named, "boot gave {:?}", a);
                st = s;
            }
            proptest::prop_assert!(st.trying.is_none());
            proptest::prop_assert_eq!(st.default, default);
        }
    }
}
