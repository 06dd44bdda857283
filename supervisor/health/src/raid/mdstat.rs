//! Parser for `/proc/mdstat`, the text the kernel's md driver writes
//! (`drivers/md/md.c`, `md_seq_show` and `status_resync`).
//!
//! The parser is a pure function from text to [`MdStat`]. It never fails and
//! never panics: a line it does not understand is kept as an
//! [`UnparsedLine`] (with its 1-based line number) on the array it belongs to,
//! or on the file when it sits outside any array, so the verdict can report
//! UNKNOWN and quote the offending line.
//!
//! Shapes covered (all written by real kernels):
//! - `md0 : active raid1 sdb1[1](F) sda1[0]`, `active (auto-read-only)`,
//!   `active (read-only)`, `inactive sdc[0](S)`; member flags (W)(J)(F)(S)(R)
//!   in any combination;
//! - `N blocks super 1.2 [2/1] [U_]`, metadata 0.90 (no `super`), external
//!   metadata (`super external:imsm`, `super external:/md127/0`), raid0 and
//!   linear with no `[n/m]`, raid5/6/10 geometry words;
//! - progress lines `[=>...]  recovery =  8.5% (89472/1048512)
//!   finish=0.7min speed=22368K/sec` for recovery, resync, check, reshape;
//! - `resync=PENDING`, `resync=DELAYED` (any action word);
//! - `bitmap: 0/8 pages [0KB], 65536KB chunk[, file: /path]` before or after
//!   the progress line.

use serde::{Deserialize, Serialize};

/// Everything `/proc/mdstat` says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MdStat {
    /// Personalities the kernel has loaded (`raid1`, `raid0`, ...).
    pub personalities: Vec<String>,
    /// Arrays in file order.
    pub arrays: Vec<MdArray>,
    /// Devices listed on the `unused devices:` line.
    pub unused_devices: Vec<String>,
    /// Lines outside any array that did not parse.
    pub unparsed: Vec<UnparsedLine>,
}

/// A line the parser did not recognise, kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnparsedLine {
    /// 1-based line number in the mdstat text.
    pub line_no: usize,
    /// The line as read.
    pub text: String,
    /// Why it was not understood.
    pub reason: String,
}

/// Whether the array is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activity {
    /// `active`
    Active,
    /// `inactive`: assembled partially or stopped half way.
    Inactive,
}

/// Read-only marker after `active`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadOnly {
    /// `(read-only)`: set read-only by the administrator.
    ReadOnly,
    /// `(auto-read-only)`: read-only until the first write (normal at boot).
    AutoReadOnly,
}

/// One member device of an array (`sdb1[1](F)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Kernel device name (`sda1`, `nvme0n1p2`, `loop3`).
    pub device: String,
    /// Descriptor number in brackets.
    pub index: u32,
    /// `(F)`: faulty.
    pub faulty: bool,
    /// `(S)`: spare (no role in the array yet).
    pub spare: bool,
    /// `(W)`: write-mostly.
    pub write_mostly: bool,
    /// `(J)`: journal device.
    pub journal: bool,
    /// `(R)`: replacement for another member.
    pub replacement: bool,
}

/// The sync operation a progress line reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncAction {
    /// Rebuilding a member from the others (after a failure or a re-add).
    Recovery,
    /// Making all members consistent (after an unclean shutdown, or `repair`).
    Resync,
    /// Read-only scrub comparing members (`echo check > sync_action`).
    Check,
    /// Changing geometry.
    Reshape,
    /// A word this parser does not know, kept verbatim.
    Other(String),
}

impl SyncAction {
    fn from_word(word: &str) -> SyncAction {
        match word {
            "recovery" => SyncAction::Recovery,
            "resync" => SyncAction::Resync,
            "check" => SyncAction::Check,
            "reshape" => SyncAction::Reshape,
            other => SyncAction::Other(other.to_string()),
        }
    }

    /// The word the kernel uses.
    pub fn as_str(&self) -> &str {
        match self {
            SyncAction::Recovery => "recovery",
            SyncAction::Resync => "resync",
            SyncAction::Check => "check",
            SyncAction::Reshape => "reshape",
            SyncAction::Other(s) => s,
        }
    }
}

/// A running sync with its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncProgress {
    /// What is running.
    pub action: SyncAction,
    /// Progress in tenths of a percent (the kernel's own resolution).
    pub per_mille: u32,
    /// Blocks done (as printed, 1K units).
    pub done: u64,
    /// Blocks in total.
    pub total: u64,
    /// Kernel's finish estimate in seconds, if printed.
    pub finish_secs: Option<u64>,
    /// Speed in KiB/s, if printed.
    pub speed_kib_s: Option<u64>,
}

impl SyncProgress {
    /// Progress as a float percentage.
    pub fn percent(&self) -> f64 {
        f64::from(self.per_mille) / 10.0
    }
}

/// A sync that is waiting (`resync=PENDING`, `resync=DELAYED`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSync {
    /// The action word before `=`.
    pub action: SyncAction,
    /// `PENDING`, `DELAYED` or whatever the kernel wrote.
    pub reason: String,
}

/// The write-intent bitmap line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bitmap {
    /// Dirty pages.
    pub pages_used: u64,
    /// Total pages.
    pub pages_total: u64,
    /// Chunk size in KiB, if printed.
    pub chunk_kib: Option<u64>,
    /// Bitmap file when external (`file: /path`).
    pub file: Option<String>,
}

/// One md array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MdArray {
    /// `md0`, `md127`, `md_d0`.
    pub name: String,
    /// Active or inactive.
    pub activity: Activity,
    /// Read-only marker.
    pub read_only: Option<ReadOnly>,
    /// Personality (`raid1`), absent for inactive arrays.
    pub level: Option<String>,
    /// Members in the order listed.
    pub members: Vec<Member>,
    /// Size in 1K blocks.
    pub blocks: Option<u64>,
    /// Metadata after `super` (`1.2`, `external:imsm`); `None` for 0.90.
    pub metadata: Option<String>,
    /// `[n/m]`: devices the array should have.
    pub raid_disks: Option<u32>,
    /// `[n/m]`: devices working.
    pub working_disks: Option<u32>,
    /// `[UU_]` map of slots, `true` when up.
    pub slots_up: Option<Vec<bool>>,
    /// Running sync.
    pub progress: Option<SyncProgress>,
    /// Waiting sync.
    pub pending: Option<PendingSync>,
    /// Bitmap line.
    pub bitmap: Option<Bitmap>,
    /// Lines of this array's stanza that did not parse.
    pub unparsed: Vec<UnparsedLine>,
}

impl MdArray {
    /// The `[n/m]` pair says fewer devices work than should, or a slot is down.
    pub fn is_degraded(&self) -> bool {
        let counts = matches!((self.raid_disks, self.working_disks), (Some(n), Some(m)) if m < n);
        let slots = self
            .slots_up
            .as_ref()
            .is_some_and(|s| s.iter().any(|up| !up));
        counts || slots
    }
}

/// Parse the whole text of `/proc/mdstat`. Never fails; see module docs.
pub fn parse(text: &str) -> MdStat {
    let mut out = MdStat::default();
    let mut current: Option<MdArray> = None;

    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            continue;
        }
        let indented = raw.starts_with(char::is_whitespace);

        if !indented {
            if let Some(done) = current.take() {
                out.arrays.push(done);
            }
            if let Some(rest) = trimmed.strip_prefix("Personalities") {
                let rest = rest.trim_start().strip_prefix(':').unwrap_or(rest);
                out.personalities = rest
                    .split_whitespace()
                    .map(|p| p.trim_matches(|c| c == '[' || c == ']').to_string())
                    .filter(|p| !p.is_empty())
                    .collect();
                continue;
            }
            if trimmed.starts_with("read_ahead") {
                // 2.4/2.6-era kernels printed the global read-ahead here.
                continue;
            }
            if let Some(rest) = trimmed.strip_prefix("unused devices:") {
                out.unused_devices = rest
                    .split_whitespace()
                    .filter(|d| *d != "<none>")
                    .map(str::to_string)
                    .collect();
                continue;
            }
            match parse_header(trimmed) {
                Ok(array) => current = Some(array),
                Err(reason) => {
                    let bad = UnparsedLine {
                        line_no,
                        text: raw.to_string(),
                        reason,
                    };
                    // Keep the array (so it is not reported as missing) but
                    // mark it unreadable: its verdict becomes UNKNOWN.
                    match header_name(trimmed) {
                        Some(name) => {
                            let mut array = MdArray::placeholder(name);
                            array.unparsed.push(bad);
                            current = Some(array);
                        }
                        None => out.unparsed.push(bad),
                    }
                }
            }
            continue;
        }

        match current.as_mut() {
            Some(array) => {
                if let Err(reason) = parse_detail(array, trimmed) {
                    array.unparsed.push(UnparsedLine {
                        line_no,
                        text: raw.to_string(),
                        reason,
                    });
                }
            }
            None => out.unparsed.push(UnparsedLine {
                line_no,
                text: raw.to_string(),
                reason: "indented line outside any array".to_string(),
            }),
        }
    }
    if let Some(done) = current.take() {
        out.arrays.push(done);
    }
    out
}

/// The array name of a header line that may not parse otherwise.
fn header_name(line: &str) -> Option<&str> {
    let (name, _) = line.split_once(" : ")?;
    let name = name.trim();
    (name.starts_with("md") && !name.contains(char::is_whitespace)).then_some(name)
}

impl MdArray {
    /// An array known by name only (its header did not parse).
    fn placeholder(name: &str) -> MdArray {
        MdArray {
            name: name.to_string(),
            activity: Activity::Inactive,
            read_only: None,
            level: None,
            members: Vec::new(),
            blocks: None,
            metadata: None,
            raid_disks: None,
            working_disks: None,
            slots_up: None,
            progress: None,
            pending: None,
            bitmap: None,
            unparsed: Vec::new(),
        }
    }
}

/// `md0 : active (auto-read-only) raid1 sdb1[1](F) sda1[0]`
fn parse_header(line: &str) -> Result<MdArray, String> {
    let (name, rest) = line
        .split_once(" : ")
        .ok_or_else(|| "expected `mdN : ...` array header".to_string())?;
    let name = name.trim();
    if !name.starts_with("md") || name.contains(char::is_whitespace) {
        return Err(format!("array name {name:?} does not start with `md`"));
    }
    let mut words = rest.split_whitespace().peekable();
    let activity = match words.next() {
        Some("active") => Activity::Active,
        Some("inactive") => Activity::Inactive,
        Some(other) => return Err(format!("unknown array state {other:?}")),
        None => return Err("array header has no state".to_string()),
    };
    let mut read_only = None;
    if let Some(word) = words.peek() {
        match *word {
            "(read-only)" => read_only = Some(ReadOnly::ReadOnly),
            "(auto-read-only)" => read_only = Some(ReadOnly::AutoReadOnly),
            w if w.starts_with('(') => return Err(format!("unknown array marker {w:?}")),
            _ => {}
        }
        if read_only.is_some() {
            words.next();
        }
    }
    let mut level = None;
    if activity == Activity::Active {
        match words.peek() {
            Some(word) if !word.contains('[') => {
                level = Some(word.to_string());
                words.next();
            }
            _ => {}
        }
    }
    let mut members = Vec::new();
    for word in words {
        members.push(parse_member(word)?);
    }
    let mut array = MdArray::placeholder(name);
    array.activity = activity;
    array.read_only = read_only;
    array.level = level;
    array.members = members;
    Ok(array)
}

/// `sdb1[1](W)(F)`
fn parse_member(word: &str) -> Result<Member, String> {
    let open = word
        .find('[')
        .ok_or_else(|| format!("member {word:?} has no `[index]`"))?;
    let close = word[open..]
        .find(']')
        .map(|i| i + open)
        .ok_or_else(|| format!("member {word:?} has no closing `]`"))?;
    let device = &word[..open];
    if device.is_empty() {
        return Err(format!("member {word:?} has no device name"));
    }
    let index: u32 = word[open + 1..close]
        .parse()
        .map_err(|_| format!("member {word:?} has a non-numeric index"))?;
    let mut member = Member {
        device: device.to_string(),
        index,
        faulty: false,
        spare: false,
        write_mostly: false,
        journal: false,
        replacement: false,
    };
    let mut flags = &word[close + 1..];
    while !flags.is_empty() {
        let end = flags
            .find(')')
            .filter(|_| flags.starts_with('('))
            .ok_or_else(|| format!("member {word:?} has malformed flags {flags:?}"))?;
        match &flags[1..end] {
            "F" => member.faulty = true,
            "S" => member.spare = true,
            "W" => member.write_mostly = true,
            "J" => member.journal = true,
            "R" => member.replacement = true,
            other => return Err(format!("member {word:?} has unknown flag ({other})")),
        }
        flags = &flags[end + 1..];
    }
    Ok(member)
}

/// One indented line of an array stanza.
fn parse_detail(array: &mut MdArray, line: &str) -> Result<(), String> {
    if let Some(rest) = line.strip_prefix("bitmap:") {
        array.bitmap = Some(parse_bitmap(rest.trim())?);
        return Ok(());
    }
    if line.starts_with('[') && line.contains('%') {
        array.progress = Some(parse_progress(line)?);
        return Ok(());
    }
    if let Some((action, state)) = line.split_once('=') {
        let action = action.trim();
        let state = state.trim();
        if !action.is_empty()
            && action.chars().all(|c| c.is_ascii_alphabetic())
            && !state.is_empty()
            && state.chars().all(|c| c.is_ascii_uppercase())
        {
            array.pending = Some(PendingSync {
                action: SyncAction::from_word(action),
                reason: state.to_string(),
            });
            return Ok(());
        }
        // A progress line without the bar (very narrow terminals never
        // happen in procfs, but old kernels omitted it for huge arrays).
        if line.contains('%') {
            array.progress = Some(parse_progress(line)?);
            return Ok(());
        }
        return Err(format!("unknown `key=value` line for {}", array.name));
    }
    if line
        .split_whitespace()
        .nth(1)
        .is_some_and(|w| w == "blocks")
    {
        return parse_blocks(array, line);
    }
    Err(format!("unrecognised line in the stanza of {}", array.name))
}

/// `976629760 blocks super 1.2 level 5, 512k chunk, algorithm 2 [3/2] [UU_]`
fn parse_blocks(array: &mut MdArray, line: &str) -> Result<(), String> {
    let mut words = line.split_whitespace().peekable();
    let blocks = words
        .next()
        .and_then(|w| w.parse::<u64>().ok())
        .ok_or_else(|| "block count is not a number".to_string())?;
    array.blocks = Some(blocks);
    words.next(); // "blocks"
    if words.peek() == Some(&"super") {
        words.next();
        let meta = words
            .next()
            .ok_or_else(|| "`super` without a metadata version".to_string())?;
        array.metadata = Some(meta.to_string());
    }
    for word in words {
        if let Some(inner) = word.strip_prefix('[').and_then(|w| w.strip_suffix(']')) {
            if let Some((n, m)) = inner.split_once('/') {
                let n = n
                    .parse()
                    .map_err(|_| format!("bad device count {word:?}"))?;
                let m = m
                    .parse()
                    .map_err(|_| format!("bad device count {word:?}"))?;
                array.raid_disks = Some(n);
                array.working_disks = Some(m);
            } else if !inner.is_empty() && inner.chars().all(|c| c == 'U' || c == '_') {
                array.slots_up = Some(inner.chars().map(|c| c == 'U').collect());
            } else {
                return Err(format!("bad slot map {word:?}"));
            }
        }
        // Other words are personality geometry ("level 5,", "512k chunk",
        // "2 near-copies", "algorithm 2"): informative only.
    }
    Ok(())
}

/// `[=>....]  recovery =  8.5% (89472/1048512) finish=0.7min speed=22368K/sec`
fn parse_progress(line: &str) -> Result<SyncProgress, String> {
    let rest = match line.strip_prefix('[') {
        Some(r) => {
            let close = r
                .find(']')
                .ok_or_else(|| "progress bar has no closing `]`".to_string())?;
            &r[close + 1..]
        }
        None => line,
    };
    let (action, rest) = rest
        .split_once('=')
        .ok_or_else(|| "progress line has no `action =`".to_string())?;
    let action = action.trim();
    if action.is_empty() || !action.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(format!("bad sync action {action:?}"));
    }
    let rest = rest.trim_start();
    let (pct, rest) = rest
        .split_once('%')
        .ok_or_else(|| "progress has no percentage".to_string())?;
    let per_mille = parse_per_mille(pct.trim())?;
    let rest = rest.trim_start();
    let (counts, rest) = rest
        .strip_prefix('(')
        .and_then(|r| r.split_once(')'))
        .ok_or_else(|| "progress has no `(done/total)`".to_string())?;
    let (done, total) = counts
        .split_once('/')
        .ok_or_else(|| format!("bad progress counts {counts:?}"))?;
    let done = done
        .parse()
        .map_err(|_| format!("bad progress count {done:?}"))?;
    let total = total
        .parse()
        .map_err(|_| format!("bad progress total {total:?}"))?;
    let mut finish_secs = None;
    let mut speed_kib_s = None;
    for word in rest.split_whitespace() {
        if let Some(v) = word.strip_prefix("finish=") {
            let mins = v
                .strip_suffix("min")
                .ok_or_else(|| format!("finish {v:?} not in minutes"))?;
            finish_secs = Some(parse_tenths(mins)? * 6);
        } else if let Some(v) = word.strip_prefix("speed=") {
            let kib = v
                .strip_suffix("K/sec")
                .ok_or_else(|| format!("speed {v:?} not in K/sec"))?;
            speed_kib_s = Some(kib.parse().map_err(|_| format!("bad speed {v:?}"))?);
        } else {
            return Err(format!("unknown progress field {word:?}"));
        }
    }
    Ok(SyncProgress {
        action: SyncAction::from_word(action),
        per_mille,
        done,
        total,
        finish_secs,
        speed_kib_s,
    })
}

/// `8.5` -> 85; `100.0` -> 1000.
fn parse_per_mille(s: &str) -> Result<u32, String> {
    let tenths = parse_tenths(s)?;
    u32::try_from(tenths)
        .ok()
        .filter(|v| *v <= 1000)
        .ok_or_else(|| format!("percentage {s:?} out of range"))
}

/// A decimal with at most one fractional digit, in tenths.
fn parse_tenths(s: &str) -> Result<u64, String> {
    let (int, frac) = s.split_once('.').unwrap_or((s, "0"));
    let int: u64 = int.parse().map_err(|_| format!("bad number {s:?}"))?;
    let frac: u64 = match frac.len() {
        1 => frac.parse().map_err(|_| format!("bad number {s:?}"))?,
        _ => return Err(format!("bad number {s:?}")),
    };
    int.checked_mul(10)
        .and_then(|v| v.checked_add(frac))
        .ok_or_else(|| format!("number {s:?} too large"))
}

/// `0/8 pages [0KB], 65536KB chunk, file: /bitmap`
fn parse_bitmap(rest: &str) -> Result<Bitmap, String> {
    let mut parts = rest.split(',').map(str::trim);
    let pages = parts.next().unwrap_or_default();
    let pages = pages
        .split_whitespace()
        .next()
        .ok_or_else(|| "bitmap line has no page count".to_string())?;
    let (used, total) = pages
        .split_once('/')
        .ok_or_else(|| format!("bad bitmap pages {pages:?}"))?;
    let pages_used = used
        .parse()
        .map_err(|_| format!("bad bitmap pages {pages:?}"))?;
    let pages_total = total
        .parse()
        .map_err(|_| format!("bad bitmap pages {pages:?}"))?;
    let mut chunk_kib = None;
    let mut file = None;
    for part in parts {
        if let Some(c) = part.strip_suffix("KB chunk") {
            chunk_kib = Some(
                c.parse()
                    .map_err(|_| format!("bad bitmap chunk {part:?}"))?,
            );
        } else if let Some(f) = part.strip_prefix("file:") {
            file = Some(f.trim().to_string());
        } else {
            return Err(format!("unknown bitmap field {part:?}"));
        }
    }
    Ok(Bitmap {
        pages_used,
        pages_total,
        chunk_kib,
        file,
    })
}

#[cfg(test)]
mod tests;
