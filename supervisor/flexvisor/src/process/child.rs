//! The child side of a spawn: everything between clone(2) and execve(2).
//!
//! [`run`] clones with `CLONE_VM | CLONE_VFORK`, as posix_spawn(3) does in
//! glibc and musl: the child runs on a small stack of its own inside the
//! supervisor's memory, and the calling thread is suspended until the child
//! has exec'd or exited. Unlike fork(2) nothing of the supervisor's address
//! space is copied (only for exec to throw the copy away again), which is
//! most of what a restart used to cost the supervisor.
//!
//! The price is what the child may do. It reads a [`Plan`] the parent built
//! beforehand and makes raw system calls only: no allocation, no locks, no
//! panics, and no libc wrappers that keep process-wide state (glibc's and
//! musl's setuid family signal every thread of the process, and those would
//! be the supervisor's threads). Before it unblocks signals it resets every
//! caught signal to its default action, so no supervisor handler can run on
//! the shared memory. The step that failed, if any, is left in the plan for
//! the parent to report.
//!
//! Not here: what to run and as whom (`super`), reaping (`crate::reaper`).

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_long, c_void, CString};
use std::os::fd::RawFd;

use nix::unistd::Pid;

/// The step of the child's set-up that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    Signals = 1,
    Session,
    Cgroup,
    Rlimit,
    Stdio,
    Notify,
    Cwd,
    Groups,
    Gid,
    Uid,
    Exec,
}

impl Stage {
    const ALL: [Stage; 11] = [
        Stage::Signals,
        Stage::Session,
        Stage::Cgroup,
        Stage::Rlimit,
        Stage::Stdio,
        Stage::Notify,
        Stage::Cwd,
        Stage::Groups,
        Stage::Gid,
        Stage::Uid,
        Stage::Exec,
    ];

    /// What the child was doing, as an error message names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Signals => "reset signals",
            Stage::Session => "setsid",
            Stage::Cgroup => "join cgroup",
            Stage::Rlimit => "setrlimit",
            Stage::Stdio => "set up stdin/stdout/stderr",
            Stage::Notify => "pass notification descriptor",
            Stage::Cwd => "chdir",
            Stage::Groups => "setgroups",
            Stage::Gid => "setgid",
            Stage::Uid => "setuid",
            Stage::Exec => "exec",
        }
    }

    fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| *s as u8 == v)
    }
}

/// A NUL-terminated array of C strings (argv, envp) that owns its strings.
#[derive(Debug, Default)]
pub struct CArray {
    /// Owns what `ptrs` points to.
    #[allow(dead_code)]
    items: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

impl CArray {
    pub fn new(items: Vec<CString>) -> Self {
        // The strings' buffers live on the heap: moving `items` into the
        // struct keeps these pointers valid.
        let mut ptrs: Vec<*const c_char> = items.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        Self { items, ptrs }
    }

    fn as_ptr(&self) -> *const *const c_char {
        self.ptrs.as_ptr()
    }
}

/// Everything the child needs, built by the parent before the clone.
#[derive(Debug)]
pub struct Plan {
    /// Paths to try in order: the program itself, or the PATH search of
    /// execvp(3) done beforehand.
    pub candidates: Vec<CString>,
    /// `candidates` came from a PATH search: a missing one means try the
    /// next (execvp(3) semantics).
    pub searched: bool,
    pub argv: CArray,
    pub envp: CArray,
    /// For a file without a `#!` line (ENOEXEC): `/bin/sh FILE ARGS...`,
    /// FILE filled in by the child, as glibc's execvp(3) does.
    pub sh_argv: Box<[Cell<*const c_char>]>,
    pub cwd: Option<CString>,
    /// `cgroup.procs` of the cgroup to join.
    pub cgroup_procs: Option<CString>,
    /// (resource, [soft, hard]) for prlimit64(2).
    pub limits: Vec<(c_int, [u64; 2])>,
    pub stdin: RawFd,
    /// Becomes stdout and stderr.
    pub output: RawFd,
    /// (our descriptor, the number the service wants it at).
    pub notify: Option<(RawFd, RawFd)>,
    /// (uid, gid, supplementary groups).
    pub ids: Option<(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)>,
    /// Written by the child when a step fails (0: none).
    stage: Cell<u8>,
    errno: Cell<c_int>,
}

impl Plan {
    pub fn new(candidates: Vec<CString>, searched: bool, argv: CArray, envp: CArray) -> Self {
        let mut sh: Vec<Cell<*const c_char>> = vec![Cell::new(c"/bin/sh".as_ptr())];
        sh.push(Cell::new(std::ptr::null()));
        sh.extend(argv.ptrs.iter().skip(1).map(|p| Cell::new(*p)));
        Self {
            candidates,
            searched,
            argv,
            envp,
            sh_argv: sh.into_boxed_slice(),
            cwd: None,
            cgroup_procs: None,
            limits: Vec::new(),
            stdin: -1,
            output: -1,
            notify: None,
            ids: None,
            stage: Cell::new(0),
            errno: Cell::new(0),
        }
    }
}

/// Why a spawn failed.
#[derive(Debug)]
pub struct Failure {
    /// `None`: clone(2) itself failed.
    pub stage: Option<Stage>,
    pub error: std::io::Error,
}

/// Room for the child's few small frames (it never allocates or recurses).
const STACK_BYTES: usize = 64 * 1024;

#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct StackChunk([u8; 16]);

/// Start the child of `plan`; returns once it has exec'd. On failure the
/// child has already exited, and is reaped here (nobody else knows its pid).
pub fn run(plan: &Plan) -> Result<Pid, Failure> {
    if plan.candidates.is_empty() {
        return Err(Failure {
            stage: Some(Stage::Exec),
            error: std::io::Error::from_raw_os_error(libc::ENOENT),
        });
    }
    plan.stage.set(0);
    plan.errno.set(0);
    let mut stack: Vec<StackChunk> = Vec::with_capacity(STACK_BYTES / 16);
    // The stack grows down: the child starts at the end of the buffer,
    // which is 16-byte aligned as the x86-64 and AArch64 ABIs want.
    let top = stack
        .as_mut_ptr()
        .wrapping_add(stack.capacity())
        .cast::<c_void>();
    // No signal may be handled in the child before it has reset the
    // handlers: they would run on the supervisor's memory.
    let all = nix::sys::signal::SigSet::all();
    let old = all.thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_SETMASK);
    // SAFETY: `child` only reads `plan` and writes its two Cells; `plan`
    // and `stack` outlive the child's use of them because CLONE_VFORK
    // suspends this thread until the child has exec'd or exited; `top` is
    // the aligned end of `stack`, which nothing else uses meanwhile.
    let pid = unsafe {
        libc::clone(
            child,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::from_ref(plan).cast_mut().cast::<c_void>(),
        )
    };
    let clone_error = std::io::Error::last_os_error();
    if let Ok(old) = old {
        let _ = old.thread_set_mask();
    }
    drop(stack);
    if pid < 0 {
        return Err(Failure {
            stage: None,
            error: clone_error,
        });
    }
    let pid = Pid::from_raw(pid);
    match Stage::from_u8(plan.stage.get()) {
        None => Ok(pid),
        Some(stage) => {
            // The child has exited (CLONE_VFORK returned): collect it.
            let _ = nix::sys::wait::waitpid(pid, None);
            Err(Failure {
                stage: Some(stage),
                error: std::io::Error::from_raw_os_error(plan.errno.get()),
            })
        }
    }
}

/// The child's entry point; returns (its exit status) only on failure.
extern "C" fn child(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `&Plan` that `run` passed to clone(2); the
    // parent thread is suspended (CLONE_VFORK) and keeps it alive until
    // this child has exec'd or exited.
    let plan = unsafe { &*arg.cast::<Plan>() };
    let (stage, errno) = set_up_and_exec(plan);
    plan.stage.set(stage as u8);
    plan.errno.set(errno);
    127
}

/// A raw system call: `Err(errno)` on failure.
///
/// # Safety
/// The arguments must be what system call `nr` expects (pointers valid for
/// the call); unused trailing arguments are ignored by the kernel.
unsafe fn sys(nr: c_long, a: c_long, b: c_long, c: c_long, d: c_long) -> Result<c_long, c_int> {
    // SAFETY: forwarded from the caller.
    let r = unsafe { libc::syscall(nr, a, b, c, d) };
    if r < 0 {
        Err(nix::errno::Errno::last_raw())
    } else {
        Ok(r)
    }
}

/// The kernel's `struct sigaction` (not libc's), large enough for every
/// architecture's layout; only the handler (first field) is read.
#[repr(C)]
#[derive(Default)]
struct KernelSigaction {
    handler: usize,
    rest: [u64; 3],
}

const KERNEL_SIGSET_BYTES: c_long = 8;

fn ptr<T>(p: *const T) -> c_long {
    p as c_long
}

/// Set up the process and exec; returns only on failure, with the step and
/// errno.
fn set_up_and_exec(plan: &Plan) -> (Stage, c_int) {
    match set_up(plan) {
        Ok(()) => (Stage::Exec, exec(plan)),
        Err(e) => e,
    }
}

fn set_up(plan: &Plan) -> Result<(), (Stage, c_int)> {
    let at = |stage: Stage| move |e: c_int| (stage, e);
    // SAFETY: every `sys` call below passes plain integers, descriptors,
    // or pointers to data owned by `plan` or this frame, valid for the
    // duration of the call.
    unsafe {
        // Signals: caught ones back to default, SIGPIPE to default (Rust
        // ignores it), then nothing blocked; ignored ones stay ignored, as
        // across any exec.
        for sig in 1..=64 {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            let mut old = KernelSigaction::default();
            let q = sys(
                libc::SYS_rt_sigaction,
                c_long::from(sig),
                0,
                ptr(&raw mut old),
                KERNEL_SIGSET_BYTES,
            );
            if q.is_err() {
                continue;
            }
            let caught = old.handler != libc::SIG_DFL && old.handler != libc::SIG_IGN;
            if caught || sig == libc::SIGPIPE {
                let dfl = KernelSigaction::default();
                sys(
                    libc::SYS_rt_sigaction,
                    c_long::from(sig),
                    ptr(&raw const dfl),
                    0,
                    KERNEL_SIGSET_BYTES,
                )
                .map_err(at(Stage::Signals))?;
            }
        }
        let empty: u64 = 0;
        sys(
            libc::SYS_rt_sigprocmask,
            c_long::from(libc::SIG_SETMASK),
            ptr(&raw const empty),
            0,
            KERNEL_SIGSET_BYTES,
        )
        .map_err(at(Stage::Signals))?;

        sys(libc::SYS_setsid, 0, 0, 0, 0).map_err(at(Stage::Session))?;

        if let Some(path) = &plan.cgroup_procs {
            let fd = sys(
                libc::SYS_openat,
                c_long::from(libc::AT_FDCWD),
                ptr(path.as_ptr()),
                c_long::from(libc::O_WRONLY | libc::O_CLOEXEC),
                0,
            )
            .map_err(at(Stage::Cgroup))?;
            let w = sys(libc::SYS_write, fd, ptr(b"0".as_ptr()), 1, 0);
            let _ = sys(libc::SYS_close, fd, 0, 0, 0);
            w.map_err(at(Stage::Cgroup))?;
        }

        for (res, lim) in &plan.limits {
            sys(
                libc::SYS_prlimit64,
                0,
                c_long::from(*res),
                ptr(lim.as_ptr()),
                0,
            )
            .map_err(at(Stage::Rlimit))?;
        }

        // Descriptors below 3 would be overwritten by the stdio set-up:
        // move them up first.
        let above = |fd: RawFd| -> Result<RawFd, c_int> {
            if fd >= 3 {
                return Ok(fd);
            }
            let r = sys(
                libc::SYS_fcntl,
                c_long::from(fd),
                c_long::from(libc::F_DUPFD_CLOEXEC),
                3,
                0,
            )?;
            Ok(RawFd::try_from(r).unwrap_or(-1))
        };
        let output = above(plan.output).map_err(at(Stage::Stdio))?;
        let notify = match plan.notify {
            Some((have, want)) => Some((above(have).map_err(at(Stage::Notify))?, want)),
            None => None,
        };
        place(plan.stdin, 0).map_err(at(Stage::Stdio))?;
        place(output, 1).map_err(at(Stage::Stdio))?;
        place(output, 2).map_err(at(Stage::Stdio))?;
        let keep = match notify {
            Some((have, want)) => {
                place(have, want).map_err(at(Stage::Notify))?;
                want
            }
            None => -1,
        };
        // Only 0, 1, 2 and the notification descriptor reach the service.
        close_from(3, keep);

        if let Some(cwd) = &plan.cwd {
            sys(libc::SYS_chdir, ptr(cwd.as_ptr()), 0, 0, 0).map_err(at(Stage::Cwd))?;
        }

        // Last, and with raw calls: the libc wrappers would signal every
        // thread of the (shared) process.
        if let Some((uid, gid, groups)) = &plan.ids {
            sys(
                libc::SYS_setgroups,
                c_long::try_from(groups.len()).unwrap_or(0),
                ptr(groups.as_ptr()),
                0,
                0,
            )
            .map_err(at(Stage::Groups))?;
            sys(libc::SYS_setgid, c_long::from(*gid), 0, 0, 0).map_err(at(Stage::Gid))?;
            sys(libc::SYS_setuid, c_long::from(*uid), 0, 0, 0).map_err(at(Stage::Uid))?;
        }
    }
    Ok(())
}

/// Make `from` available as descriptor `to`, open across exec.
fn place(from: RawFd, to: RawFd) -> Result<(), c_int> {
    // SAFETY: fcntl/dup3 on descriptor numbers only.
    unsafe {
        if from == to {
            sys(
                libc::SYS_fcntl,
                c_long::from(to),
                c_long::from(libc::F_SETFD),
                0,
                0,
            )?;
        } else {
            sys(libc::SYS_dup3, c_long::from(from), c_long::from(to), 0, 0)?;
        }
    }
    Ok(())
}

/// Mark every descriptor >= `from` except `keep` close-on-exec
/// (close_range(2) with CLOSE_RANGE_CLOEXEC, Linux 5.11; on older kernels
/// descriptors opened without CLOEXEC may leak).
fn close_from(from: u32, keep: RawFd) {
    const CLOSE_RANGE_CLOEXEC: c_long = 1 << 2;
    let range = |a: u32, b: u32| {
        if a <= b {
            // SAFETY: close_range only changes descriptor flags.
            let _ = unsafe {
                sys(
                    libc::SYS_close_range,
                    c_long::from(a),
                    c_long::from(b),
                    CLOSE_RANGE_CLOEXEC,
                    0,
                )
            };
        }
    };
    match u32::try_from(keep) {
        Ok(k) if k >= from => {
            range(from, k - 1);
            range(k + 1, u32::MAX);
        }
        _ => range(from, u32::MAX),
    }
}

/// execve(2) each candidate as execvp(3) would; returns the errno to
/// report once none could be run.
fn exec(plan: &Plan) -> c_int {
    let mut seen_eacces = false;
    let mut last = libc::ENOENT;
    for path in &plan.candidates {
        // SAFETY: NUL-terminated path and NULL-terminated arrays of
        // NUL-terminated strings, all owned by `plan`.
        let r = unsafe {
            sys(
                libc::SYS_execve,
                ptr(path.as_ptr()),
                ptr(plan.argv.as_ptr()),
                ptr(plan.envp.as_ptr()),
                0,
            )
        };
        let Err(e) = r else { continue };
        match e {
            libc::ENOEXEC => {
                if let Some(slot) = plan.sh_argv.get(1) {
                    slot.set(path.as_ptr());
                }
                // SAFETY: as above; `sh_argv` is NULL-terminated (it ends
                // with argv's terminating NULL).
                let _ = unsafe {
                    sys(
                        libc::SYS_execve,
                        ptr(c"/bin/sh".as_ptr()),
                        ptr(plan.sh_argv.as_ptr().cast::<*const c_char>()),
                        ptr(plan.envp.as_ptr()),
                        0,
                    )
                };
                return libc::ENOEXEC;
            }
            libc::EACCES if plan.searched => seen_eacces = true,
            libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT
                if plan.searched =>
            {
                last = e;
            }
            _ => return e,
        }
    }
    if seen_eacces {
        libc::EACCES
    } else {
        last
    }
}
