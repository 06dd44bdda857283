//! Starting processes: a fresh session and process group, the service's
//! cgroup joined before `exec`, rlimits, the notification descriptor, user
//! and groups dropped last, a clean environment.
//!
//! [`spawn`] prepares everything in the supervisor (argument and
//! environment arrays, the PATH search, user and group ids) and hands it to
//! [`child`], which clones without copying the supervisor's memory and
//! makes only raw system calls until exec. The returned pid is reaped by
//! [`crate::reaper`], except a child that failed before exec, which
//! [`spawn`] collects itself and reports with the failing step and errno.

mod child;

use std::collections::HashMap;
use std::ffi::{c_int, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::OnceLock;

use nix::unistd::{Gid, Group, Pid, Uid, User};

use crate::service::spec::{Rlimit, RlimitKind, ServiceSpec};

pub use child::Stage;

/// Default PATH of services (PID 1 has no login environment to inherit).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("unknown user `{0}`")]
    NoUser(String),
    #[error("unknown group `{0}`")]
    NoGroup(String),
    #[error("cannot look up user/group: {0}")]
    Lookup(#[source] nix::Error),
    /// The child could not be set up or exec'd: the program, the step and
    /// the errno (`/usr/sbin/x: exec: No such file or directory`).
    #[error("{path}: {}: {source}", stage.as_str())]
    Exec {
        path: String,
        stage: Stage,
        #[source]
        source: io::Error,
    },
    #[error("cannot create a process for {path}: {source}")]
    Clone {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot open /dev/null: {0}")]
    DevNull(#[source] io::Error),
    #[error("bad string (NUL byte) in {0}")]
    Nul(&'static str),
}

/// The ids a service with `user`/`group` runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: Uid,
    pub gid: Gid,
    pub groups: Vec<libc::gid_t>,
    pub home: String,
}

/// Everything needed to start one process.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    pub group: Option<String>,
    /// `user`/`group` already resolved (see [`Identities`]); looked up by
    /// [`spawn`] when `None`.
    pub identity: Option<Identity>,
    pub cwd: Option<PathBuf>,
    pub rlimits: Vec<Rlimit>,
    /// `cgroup.procs` of the cgroup to join before exec.
    pub cgroup_procs: Option<PathBuf>,
}

impl Launch {
    /// The main process of a service.
    pub fn service(spec: &ServiceSpec) -> Self {
        Self {
            program: spec.command.clone(),
            args: spec.args.clone(),
            env: spec
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            user: spec.user.clone(),
            group: spec.group.clone(),
            identity: None,
            cwd: spec.cwd.clone(),
            rlimits: spec.rlimits.clone(),
            cgroup_procs: None,
        }
    }

    /// A check or hook command run with the service's identity.
    pub fn command(argv: &[String], like: Option<&ServiceSpec>) -> Self {
        let mut l = like.map(Self::service).unwrap_or_default();
        l.program = argv.first().cloned().unwrap_or_default();
        l.args = argv.iter().skip(1).cloned().collect();
        l.rlimits.clear();
        l
    }
}

/// Look up `user`/`group` in the user database (NSS: /etc/passwd,
/// /etc/group); `None` when neither is set.
pub fn resolve_ids(
    user: Option<&str>,
    group: Option<&str>,
) -> Result<Option<Identity>, SpawnError> {
    if user.is_none() && group.is_none() {
        return Ok(None);
    }
    let mut ids = Identity {
        uid: Uid::from_raw(0),
        gid: Gid::from_raw(0),
        groups: vec![],
        home: "/".into(),
    };
    if let Some(u) = user {
        let pw = User::from_name(u)
            .map_err(SpawnError::Lookup)?
            .ok_or_else(|| SpawnError::NoUser(u.to_owned()))?;
        ids.uid = pw.uid;
        ids.gid = pw.gid;
        ids.home = pw.dir.to_string_lossy().into_owned();
        let name = CString::new(u).map_err(|_| SpawnError::Nul("user"))?;
        ids.groups = nix::unistd::getgrouplist(&name, pw.gid)
            .map_err(SpawnError::Lookup)?
            .into_iter()
            .map(Gid::as_raw)
            .collect();
    }
    if let Some(g) = group {
        let gr = Group::from_name(g)
            .map_err(SpawnError::Lookup)?
            .ok_or_else(|| SpawnError::NoGroup(g.to_owned()))?;
        ids.gid = gr.gid;
        if !ids.groups.contains(&gr.gid.as_raw()) {
            ids.groups.push(gr.gid.as_raw());
        }
    }
    if ids.groups.is_empty() {
        ids.groups.push(ids.gid.as_raw());
    }
    Ok(Some(ids))
}

/// Resolved identities by (user, group), so a restart does not read the
/// user database again. Lookups that fail are not kept (the next start
/// tries again and reports the same error); [`Identities::clear`] on reload
/// picks up changed users.
#[derive(Debug, Default)]
pub struct Identities {
    known: HashMap<(Option<String>, Option<String>), Identity>,
}

impl Identities {
    /// The identity of `user`/`group`, from the cache or looked up.
    pub fn get(
        &mut self,
        user: Option<&str>,
        group: Option<&str>,
    ) -> Result<Option<Identity>, SpawnError> {
        if user.is_none() && group.is_none() {
            return Ok(None);
        }
        let key = (user.map(str::to_owned), group.map(str::to_owned));
        if let Some(i) = self.known.get(&key) {
            return Ok(Some(i.clone()));
        }
        let found = resolve_ids(user, group)?;
        if let Some(i) = &found {
            self.known.insert(key, i.clone());
        }
        Ok(found)
    }

    pub fn clear(&mut self) {
        self.known.clear();
    }
}

fn resource(k: RlimitKind) -> c_int {
    // The constants' type differs between glibc and musl.
    #[allow(clippy::unnecessary_cast, clippy::cast_possible_wrap)]
    let r = match k {
        RlimitKind::Nofile => libc::RLIMIT_NOFILE,
        RlimitKind::Nproc => libc::RLIMIT_NPROC,
        RlimitKind::Core => libc::RLIMIT_CORE,
        RlimitKind::Memlock => libc::RLIMIT_MEMLOCK,
        RlimitKind::Stack => libc::RLIMIT_STACK,
        RlimitKind::As => libc::RLIMIT_AS,
        RlimitKind::Fsize => libc::RLIMIT_FSIZE,
        RlimitKind::Cpu => libc::RLIMIT_CPU,
        RlimitKind::Data => libc::RLIMIT_DATA,
    } as c_int;
    r
}

/// flexvisor's one read-only /dev/null, stdin of every service.
fn dev_null() -> Result<RawFd, SpawnError> {
    static NULL: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(fd) = NULL.get() {
        return Ok(fd.as_raw_fd());
    }
    let fd = nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| SpawnError::DevNull(e.into()))?;
    Ok(NULL.get_or_init(|| fd).as_raw_fd())
}

fn cstring(s: impl Into<Vec<u8>>, what: &'static str) -> Result<CString, SpawnError> {
    CString::new(s).map_err(|_| SpawnError::Nul(what))
}

/// The environment of a service: PATH and HOME, then its own variables
/// (which win), one entry per name.
fn environment<'a>(l: &'a Launch, home: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut env: Vec<(&str, &str)> = vec![("PATH", DEFAULT_PATH), ("HOME", home)];
    for (k, v) in &l.env {
        match env.iter_mut().find(|(n, _)| *n == k.as_str()) {
            Some(e) => e.1 = v.as_str(),
            None => env.push((k.as_str(), v.as_str())),
        }
    }
    env
}

/// Where execvp(3) would look for `program` with `path` as PATH: the
/// program itself when it names a file (contains `/`), else each PATH
/// entry (an empty one is the working directory). The bool: searched.
fn candidates(program: &str, path: &str) -> (Vec<String>, bool) {
    if program.contains('/') || program.is_empty() {
        return (vec![program.to_owned()], false);
    }
    let list = path
        .split(':')
        .map(|dir| {
            if dir.is_empty() {
                program.to_owned()
            } else {
                format!("{}/{program}", dir.trim_end_matches('/'))
            }
        })
        .collect();
    (list, true)
}

/// Start `l` with stdout and stderr on `output`, optionally passing
/// `notify` (our descriptor, number wanted in the child). The child leads a
/// new session and process group (pgid = pid).
pub fn spawn(
    l: &Launch,
    output: BorrowedFd<'_>,
    notify: Option<(&OwnedFd, RawFd)>,
) -> Result<Pid, SpawnError> {
    let looked_up;
    let ids = match &l.identity {
        Some(i) => Some(i),
        None => {
            looked_up = resolve_ids(l.user.as_deref(), l.group.as_deref())?;
            looked_up.as_ref()
        }
    };
    let env = environment(l, ids.map_or("/", |i| i.home.as_str()));
    let path_var = env
        .iter()
        .find(|(k, _)| *k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| *v);
    let (found, searched) = candidates(&l.program, path_var);
    let candidates = found
        .into_iter()
        .map(|c| cstring(c, "program"))
        .collect::<Result<Vec<_>, _>>()?;
    let argv = std::iter::once(&l.program)
        .chain(&l.args)
        .map(|a| cstring(a.as_str(), "arguments"))
        .collect::<Result<Vec<_>, _>>()?;
    let envp = env
        .iter()
        .map(|(k, v)| cstring(format!("{k}={v}"), "environment"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut plan = child::Plan::new(
        candidates,
        searched,
        child::CArray::new(argv),
        child::CArray::new(envp),
    );
    plan.cwd = match &l.cwd {
        Some(c) => Some(cstring(c.as_os_str().as_encoded_bytes(), "cwd")?),
        None => None,
    };
    plan.cgroup_procs = match &l.cgroup_procs {
        Some(p) => Some(cstring(p.as_os_str().as_encoded_bytes(), "cgroup path")?),
        None => None,
    };
    plan.limits = l
        .rlimits
        .iter()
        .map(|r| {
            let v = r.value.unwrap_or(libc::RLIM64_INFINITY);
            (resource(r.resource), [v, v])
        })
        .collect();
    plan.stdin = dev_null()?;
    plan.output = output.as_raw_fd();
    plan.notify = notify.map(|(fd, want)| (fd.as_raw_fd(), want));
    plan.ids = ids.map(|i| (i.uid.as_raw(), i.gid.as_raw(), i.groups.clone()));
    child::run(&plan).map_err(|f| match f.stage {
        Some(stage) => SpawnError::Exec {
            path: l.program.clone(),
            stage,
            source: f.error,
        },
        None => SpawnError::Clone {
            path: l.program.clone(),
            source: f.error,
        },
    })
}

/// A pidfd for `pid` (which need not be our child): it turns readable
/// once the process has ended, whoever reaps it.
pub fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new file
    // descriptor or -1; no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: the kernel just returned `fd` as a new descriptor we own.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Parent, process group and session of a process, from the text of
/// `/proc/<pid>/stat` (the command name may contain spaces and parens:
/// fields are counted after its last `)`).
pub fn parse_stat(text: &str) -> Option<(i32, i32, i32)> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let _state = f.next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgrp = f.next()?.parse().ok()?;
    let session = f.next()?.parse().ok()?;
    Some((ppid, pgrp, session))
}

/// [`parse_stat`] of a live process; `None` once it is gone.
pub fn stat(pid: Pid) -> Option<(i32, i32, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Whether `pid` descends from `ancestor` (walking parents, bounded).
pub fn descends_from(pid: Pid, ancestor: Pid) -> bool {
    let mut p = pid.as_raw();
    for _ in 0..64 {
        if p == ancestor.as_raw() {
            return true;
        }
        match stat(Pid::from_raw(p)) {
            Some((ppid, _, _)) if ppid > 1 => p = ppid,
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod stat_tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn path_search_follows_execvp() {
        assert_eq!(
            candidates("/usr/bin/x", "/a:/b"),
            (vec!["/usr/bin/x".to_owned()], false)
        );
        assert_eq!(candidates("./x", "/a"), (vec!["./x".to_owned()], false));
        assert_eq!(
            candidates("x", "/a/:/b::"),
            (
                vec!["/a/x".into(), "/b/x".into(), "x".into(), "x".into()],
                true
            )
        );
    }

    #[test]
    fn service_variables_override_path_and_home_once() {
        let l = Launch {
            env: vec![
                ("PATH".into(), "/opt/bin".into()),
                ("A".into(), "1".into()),
                ("A".into(), "2".into()),
            ],
            ..Launch::default()
        };
        assert_eq!(
            environment(&l, "/home/x"),
            vec![("PATH", "/opt/bin"), ("HOME", "/home/x"), ("A", "2")]
        );
    }

    #[test]
    fn identities_are_looked_up_once_and_failures_retried() {
        let mut ids = Identities::default();
        assert_eq!(ids.get(None, None).unwrap(), None);
        let root = ids.get(Some("root"), None).unwrap().unwrap();
        assert_eq!(root.uid.as_raw(), 0);
        assert_eq!(ids.known.len(), 1);
        assert!(matches!(
            ids.get(Some("no-such-user-here"), None),
            Err(SpawnError::NoUser(_))
        ));
        assert_eq!(ids.known.len(), 1);
        ids.clear();
        assert!(ids.known.is_empty());
    }

    #[test]
    fn a_failed_exec_names_program_step_and_errno() {
        let out = nix::unistd::pipe().unwrap();
        let l = Launch {
            program: "/no/such/program".into(),
            ..Launch::default()
        };
        let e = spawn(&l, out.1.as_fd(), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/no/such/program: exec: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn spawned_child_runs_with_output_on_the_pipe() {
        use std::io::Read;
        let (r, w) = nix::unistd::pipe().unwrap();
        let l = Launch {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "echo hello $FOO; exit 3".into()],
            env: vec![("FOO".into(), "bar".into())],
            ..Launch::default()
        };
        let pid = spawn(&l, w.as_fd(), None).unwrap();
        drop(w);
        let mut text = String::new();
        std::fs::File::from(r).read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello bar\n");
        assert_eq!(
            nix::sys::wait::waitpid(pid, None).unwrap(),
            nix::sys::wait::WaitStatus::Exited(pid, 3)
        );
    }

    #[test]
    fn stat_fields_after_the_command_name() {
        let t = "42 (my (odd) name) S 7 42 40 0 -1 4194560 0 0";
        assert_eq!(parse_stat(t), Some((7, 42, 40)));
        assert_eq!(parse_stat("garbage"), None);
        let me = parse_stat(&std::fs::read_to_string("/proc/self/stat").unwrap()).unwrap();
        assert_eq!(me.0, nix::unistd::getppid().as_raw());
    }
}
