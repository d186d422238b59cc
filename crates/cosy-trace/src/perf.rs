//! Tracing with perf_event tracepoints: `raw_syscalls:sys_enter` and `raw_syscalls:sys_exit`.
//!
//! For each online CPU, two events (perf_event_open(2), `PERF_TYPE_TRACEPOINT`, one sample per
//! hit with the thread id, a `CLOCK_MONOTONIC` time stamp and the raw record) are bound to the
//! traced task, the exit event writing into the enter event's ring buffer
//! (`PERF_EVENT_IOC_SET_OUTPUT`). `inherit` makes the kernel clone the events into every thread
//! and process the task creates (`-f`); the kernel refuses to mmap inherited per-thread events,
//! hence per-CPU ones. A started program's events are created disabled with `enable_on_exec`,
//! so they count from its execve(2). The tracee never stops: the kernel writes the samples and
//! the tracer reads the mmap'ed buffers while it runs, and sorts the samples by time at the
//! end.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::calls::Collector;
use crate::child::{self, Start};
use crate::error::{Error, Result};
use crate::{Options, Target, Trace};

/// `struct perf_event_attr` up to `config3` (`PERF_ATTR_SIZE_VER8`, 136 bytes).
#[repr(C)]
#[derive(Default)]
struct Attr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_watermark: u32,
    bp_type: u32,
    config1: u64,
    config2: u64,
    branch_sample_type: u64,
    sample_regs_user: u64,
    sample_stack_user: u32,
    clockid: i32,
    sample_regs_intr: u64,
    aux_watermark: u32,
    sample_max_stack: u16,
    reserved2: u16,
    aux_sample_size: u32,
    reserved3: u32,
    sig_data: u64,
    config3: u64,
}

const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_SAMPLE_TID: u64 = 1 << 1;
const PERF_SAMPLE_TIME: u64 = 1 << 2;
const PERF_SAMPLE_RAW: u64 = 1 << 10;
const FLAG_DISABLED: u64 = 1 << 0;
const FLAG_INHERIT: u64 = 1 << 1;
const FLAG_ENABLE_ON_EXEC: u64 = 1 << 12;
const FLAG_WATERMARK: u64 = 1 << 14;
const FLAG_USE_CLOCKID: u64 = 1 << 25;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
const PERF_EVENT_IOC_SET_OUTPUT: libc::c_ulong = 0x2405;
const PERF_EVENT_IOC_SET_FILTER: libc::c_ulong = 0x4008_2406;
const PERF_RECORD_LOST: u32 = 2;
const PERF_RECORD_SAMPLE: u32 = 9;

/// Where tracefs shows the tracepoints' ids.
const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// The ids of `raw_syscalls:sys_enter` and `sys_exit`, mounting tracefs on
/// /sys/kernel/tracing if it is not mounted anywhere (a note says so).
fn tracepoint_ids(notes: &mut Vec<String>) -> Result<(u64, u64)> {
    let read = |dir: &Path| -> Option<(u64, u64)> {
        let id = |name: &str| -> Option<u64> {
            let p = dir.join("events/raw_syscalls").join(name).join("id");
            std::fs::read_to_string(p).ok()?.trim().parse().ok()
        };
        Some((id("sys_enter")?, id("sys_exit")?))
    };
    if let Some(ids) = TRACEFS.iter().find_map(|d| read(Path::new(d))) {
        return Ok(ids);
    }
    let dir = PathBuf::from(TRACEFS[0]);
    let mounted = std::fs::metadata(&dir).is_ok() && {
        // SAFETY: mount(2) with NUL-terminated strings and no data.
        let r = unsafe {
            libc::mount(
                c"nodev".as_ptr(),
                c"/sys/kernel/tracing".as_ptr(),
                c"tracefs".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        r == 0
    };
    match mounted.then(|| read(&dir)).flatten() {
        Some(ids) => {
            notes.push(format!("mounted tracefs on {}", dir.display()));
            Ok(ids)
        }
        None => Err(Error::Unavailable(
            "the raw_syscalls tracepoints are not visible (tracefs is not mounted at \
             /sys/kernel/tracing and cannot be mounted)"
                .into(),
        )),
    }
}

/// The online CPUs (/sys/devices/system/cpu/online, e.g. `0-3,6`).
fn online_cpus() -> Result<Vec<i32>> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .map_err(|e| Error::sys("reading /sys/devices/system/cpu/online", e))?;
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let bad = || Error::Unavailable(format!("cannot read the CPU list {text:?}"));
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (i32, i32) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        cpus.extend(a..=b);
    }
    Ok(cpus)
}

fn open_event(attr: &Attr, pid: i32, cpu: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: perf_event_open(2) reads `attr`, whose `size` field is its size; the returned
    // fd, if any, is ours.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr as *const Attr,
            pid,
            cpu,
            -1,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// One CPU's ring buffer, mmap'ed: a header page, then `data_size` bytes of records.
struct RingBuffer {
    fd: OwnedFd,
    base: *mut u8,
    len: usize,
    data_offset: usize,
    data_size: usize,
    record: Vec<u8>,
}

/// Offsets in `struct perf_event_mmap_page`.
const DATA_HEAD: usize = 1024;
const DATA_TAIL: usize = 1032;
const DATA_OFFSET: usize = 1040;
const DATA_SIZE: usize = 1048;

impl RingBuffer {
    fn map(fd: OwnedFd, pages: usize) -> Result<RingBuffer> {
        let page = rustix::param::page_size();
        let len = page * (1 + pages);
        // SAFETY: a new shared mapping of the event's buffer; nothing else maps this memory
        // in our address space, and it is unmapped in Drop.
        let base = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                fd.as_fd(),
                0,
            )
        }
        .map_err(|e| Error::sys("mmap of the perf ring buffer", e))?
        .cast::<u8>();
        let mut ring = RingBuffer {
            fd,
            base,
            len,
            data_offset: page,
            data_size: len - page,
            record: Vec::new(),
        };
        let (offset, size) = (ring.header(DATA_OFFSET), ring.header(DATA_SIZE));
        if size != 0 {
            (ring.data_offset, ring.data_size) = (offset as usize, size as usize);
        }
        Ok(ring)
    }

    fn header_word(&self, at: usize) -> &AtomicU64 {
        // SAFETY: `at` is one of the 8-aligned u64 fields of the header page, which is mapped
        // for the lifetime of `self`; the kernel updates them concurrently, hence atomics.
        unsafe { &*self.base.add(at).cast::<AtomicU64>() }
    }

    fn header(&self, at: usize) -> u64 {
        self.header_word(at).load(Ordering::Acquire)
    }

    /// Hands every complete record to `f`, then frees their space for the kernel.
    fn drain(&mut self, f: &mut impl FnMut(&[u8])) {
        let head = self.header(DATA_HEAD);
        let mut tail = self.header_word(DATA_TAIL).load(Ordering::Relaxed);
        // SAFETY: the data area lies within the mapping; the kernel writes only between head
        // and the tail we publish, so the bytes from tail to head are stable until then.
        let data =
            unsafe { std::slice::from_raw_parts(self.base.add(self.data_offset), self.data_size) };
        while tail + 8 <= head {
            let at = (tail % self.data_size as u64) as usize;
            // Records are 8-aligned and the area's size is a power of two: the 8-byte header
            // never wraps.
            let size = u16::from_ne_bytes([data[at + 6], data[at + 7]]) as usize;
            if size < 8 || tail + size as u64 > head {
                break;
            }
            self.record.clear();
            let first = size.min(self.data_size - at);
            self.record.extend_from_slice(&data[at..at + first]);
            self.record.extend_from_slice(&data[..size - first]);
            f(&self.record);
            tail += size as u64;
        }
        self.header_word(DATA_TAIL).store(tail, Ordering::Release);
    }
}

impl Drop for RingBuffer {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        let _ = unsafe { rustix::mm::munmap(self.base.cast(), self.len) };
    }
}

/// A sample: thread, time, call, and the return value for an exit.
#[derive(Clone, Copy)]
struct Sample {
    t: u64,
    tid: u32,
    nr: u32,
    exit: Option<i64>,
}

/// Parses one record; counts lost samples.
fn parse(
    record: &[u8],
    (enter_id, exit_id): (u64, u64),
    samples: &mut Vec<Sample>,
    lost: &mut u64,
) {
    let u32_at = |i: usize| {
        record
            .get(i..i + 4)
            .map(|b| u32::from_ne_bytes(b.try_into().unwrap_or_default()))
    };
    let u64_at = |i: usize| {
        record
            .get(i..i + 8)
            .map(|b| u64::from_ne_bytes(b.try_into().unwrap_or_default()))
    };
    match u32_at(0) {
        Some(PERF_RECORD_SAMPLE) => {
            // header(8) pid(4) tid(4) time(8) raw_size(4) raw...
            let (Some(tid), Some(t), Some(kind), Some(nr)) =
                (u32_at(12), u64_at(16), record.get(28..30), u64_at(36))
            else {
                return;
            };
            let kind = u16::from_ne_bytes([kind[0], kind[1]]) as u64;
            let exit = if kind == enter_id {
                None
            } else if kind == exit_id {
                Some(u64_at(44).unwrap_or(0) as i64)
            } else {
                return;
            };
            samples.push(Sample {
                t,
                tid,
                nr: nr as u32,
                exit,
            });
        }
        Some(PERF_RECORD_LOST) => *lost += u64_at(16).unwrap_or(0),
        _ => {}
    }
}

/// Makes event `fd` write its samples into the ring buffer of `target` (same CPU).
fn set_output(fd: &OwnedFd, target: &OwnedFd) -> Result<()> {
    // SAFETY: an ioctl on our perf fd naming another of our perf fds.
    let r = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            PERF_EVENT_IOC_SET_OUTPUT,
            target.as_raw_fd(),
        )
    };
    if r != 0 {
        return Err(Error::last("PERF_EVENT_IOC_SET_OUTPUT"));
    }
    Ok(())
}

/// The tracepoint filter that keeps the calls `nrs` (rt_sigreturn(2) exits with the number of
/// the registers it restores, -1).
fn filter_text(nrs: &[u32]) -> std::ffi::CString {
    let mut terms: Vec<String> = nrs.iter().map(|n| format!("id == {n}")).collect();
    if nrs.contains(&(syscalls::Sysno::rt_sigreturn.id() as u32)) {
        terms.push("id == -1".into());
    }
    if terms.is_empty() {
        terms.push("id == -2".into());
    }
    std::ffi::CString::new(terms.join(" || ")).unwrap_or_default()
}

/// Sets a tracepoint filter on event `fd`; false if the kernel refuses it.
fn set_filter(fd: &OwnedFd, filter: &std::ffi::CStr) -> bool {
    // SAFETY: the ioctl reads the NUL-terminated string, which outlives the call.
    unsafe { libc::ioctl(fd.as_raw_fd(), PERF_EVENT_IOC_SET_FILTER, filter.as_ptr()) == 0 }
}

/// What every task's events are made of.
struct Setup<'a> {
    cpus: &'a [i32],
    attrs: [Attr; 2],
    pages: usize,
    filter: Option<&'a std::ffi::CStr>,
}

/// The events of one traced task on every CPU, writing into `rings` (one per CPU, created by
/// the first task); `filtered` turns false if the kernel refuses the filter.
fn attach_task(
    task: i32,
    setup: &Setup<'_>,
    rings: &mut Vec<RingBuffer>,
    others: &mut Vec<OwnedFd>,
    filtered: &mut bool,
) -> Result<()> {
    let (attrs, pages, filter) = (&setup.attrs, setup.pages, setup.filter);
    for (i, &cpu) in setup.cpus.iter().enumerate() {
        let open = |attr: &Attr| {
            open_event(attr, task, cpu).map_err(|e| match e.raw_os_error() {
                Some(libc::EACCES | libc::EPERM) => Error::Permission(format!(
                    "perf_event_open on the raw_syscalls tracepoints: {e} (see \
                     /proc/sys/kernel/perf_event_paranoid)"
                )),
                Some(libc::ESRCH) => Error::NoProcess(task),
                _ => Error::Unavailable(format!("perf_event_open: {e}")),
            })
        };
        let enter = open(&attrs[0])?;
        let exit = open(&attrs[1])?;
        if let Some(f) = filter {
            *filtered &= set_filter(&enter, f) && set_filter(&exit, f);
        }
        if rings.len() <= i {
            rings.push(RingBuffer::map(enter, pages)?);
        } else {
            set_output(&enter, &rings[i].fd)?;
            others.push(enter);
        }
        set_output(&exit, &rings[i].fd)?;
        others.push(exit);
    }
    Ok(())
}

/// Traces with perf_event; `notes` receives what the reader should know.
pub fn trace(options: &Options, notes: &mut Vec<String>) -> Result<Trace> {
    let (enter_id, exit_id) = tracepoint_ids(notes)?;
    let cpus = online_cpus()?;
    let pages = options.buffer_pages.next_power_of_two().max(8);
    let started = matches!(options.target, Target::Command(_));
    let attr = |id: u64| {
        let mut flags = FLAG_WATERMARK | FLAG_USE_CLOCKID;
        if options.follow {
            flags |= FLAG_INHERIT;
        }
        if started {
            flags |= FLAG_DISABLED | FLAG_ENABLE_ON_EXEC;
        }
        Attr {
            kind: PERF_TYPE_TRACEPOINT,
            size: std::mem::size_of::<Attr>() as u32,
            config: id,
            sample_period: 1,
            sample_type: PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_RAW,
            flags,
            wakeup_watermark: (pages * rustix::param::page_size() / 4) as u32,
            clockid: libc::CLOCK_MONOTONIC,
            ..Attr::default()
        }
    };
    let attrs = [attr(enter_id), attr(exit_id)];

    let (pid, mut child, tasks) = match &options.target {
        Target::Command(argv) => {
            let c = child::spawn(argv, Start::Gate)?;
            let pid = c.pid;
            (pid, Some(c), vec![pid])
        }
        Target::Pid(pid) => {
            if !child::exists(*pid) {
                return Err(Error::NoProcess(*pid));
            }
            let tasks = if options.follow {
                threads(*pid)?
            } else {
                vec![*pid]
            };
            (*pid, None, tasks)
        }
    };
    let mut rings = Vec::new();
    let mut others = Vec::new();
    let filter = options.calls.as_deref().map(filter_text);
    let mut filtered = true;
    let setup = Setup {
        cpus: &cpus,
        attrs,
        pages,
        filter: filter.as_deref(),
    };
    let opened = tasks
        .iter()
        .try_for_each(|&t| attach_task(t, &setup, &mut rings, &mut others, &mut filtered));
    if filter.is_some() && !filtered {
        notes.push(
            "the kernel refused the tracepoint filter: every call is recorded, the others \
             dropped afterwards"
                .into(),
        );
    }
    if let Err(e) = opened {
        if let Some(c) = &child {
            c.kill();
        }
        return Err(e);
    }
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid).ok_or(Error::NoProcess(pid))?,
        rustix::process::PidfdFlags::empty(),
    );
    let pidfd = match pidfd {
        Ok(fd) => fd,
        Err(e) => {
            if let Some(c) = &child {
                c.kill();
            }
            return Err(Error::sys("pidfd_open", e));
        }
    };
    let t0 = child::monotonic_ns();
    if let (Some(c), Target::Command(argv)) = (&mut child, &options.target) {
        c.release(&argv[0])?;
    }

    let mut samples = Vec::new();
    let mut lost = 0;
    let mut seen_interrupts = child::interrupts();
    let mut interrupted = false;
    let drain = |rings: &mut Vec<RingBuffer>, samples: &mut Vec<Sample>, lost: &mut u64| {
        for ring in rings.iter_mut() {
            ring.drain(&mut |r| parse(r, (enter_id, exit_id), samples, lost));
        }
    };
    // A ring whose event's task has ended reports POLLHUP for good: it is still drained, but
    // no longer polled (it would make poll return at once, forever).
    let mut hung = vec![false; rings.len()];
    loop {
        let mut fds = vec![rustix::event::PollFd::new(
            &pidfd,
            rustix::event::PollFlags::IN,
        )];
        let polled_rings: Vec<usize> = (0..rings.len()).filter(|&i| !hung[i]).collect();
        fds.extend(
            polled_rings
                .iter()
                .map(|&i| rustix::event::PollFd::new(&rings[i].fd, rustix::event::PollFlags::IN)),
        );
        let timeout = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        let polled = rustix::event::poll(&mut fds, Some(&timeout));
        let done = !fds[0].revents().is_empty();
        for (fd, &i) in fds[1..].iter().zip(&polled_rings) {
            if fd
                .revents()
                .intersects(rustix::event::PollFlags::HUP | rustix::event::PollFlags::ERR)
            {
                hung[i] = true;
            }
        }
        drop(fds);
        match polled {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                if let Some(c) = &child {
                    c.kill();
                }
                return Err(Error::sys("poll", e));
            }
        }
        drain(&mut rings, &mut samples, &mut lost);
        if done {
            break;
        }
        let n = child::interrupts();
        if n > seen_interrupts {
            seen_interrupts = n;
            interrupted = true;
            match &child {
                // Started: pass the interrupt on (a second one kills), trace to the end.
                Some(c) => {
                    let sig = if n > 1 { libc::SIGKILL } else { libc::SIGINT };
                    // SAFETY: kill(2) on our unreaped child.
                    unsafe { libc::kill(c.pid, sig) };
                }
                // Attached: stop tracing; the program runs on.
                None => break,
            }
        }
    }
    drain(&mut rings, &mut samples, &mut lost);
    let wall_ns = child::monotonic_ns().saturating_sub(t0);
    drop(others);
    drop(rings);
    let exit = match &child {
        Some(c) => Some(child::wait_exit(c.pid)?),
        None => None,
    };

    samples.sort_by_key(|s| s.t);
    let mut collector = Collector::new();
    for s in &samples {
        match s.exit {
            None => collector.enter(s.tid, s.nr, s.t),
            Some(ret) => collector.exit(s.tid, Some(s.nr), ret, s.t),
        }
    }
    if lost > 0 {
        notes.push(format!(
            "{lost} events were lost (the ring buffers overflowed); counts are low: use a \
             larger --buffer"
        ));
    }
    Ok(Trace::new(
        crate::Mechanism::Perf,
        collector,
        exit,
        wall_ns,
        interrupted,
        std::mem::take(notes),
    ))
}

/// The threads of process `pid` (/proc/PID/task).
pub(crate) fn threads(pid: i32) -> Result<Vec<i32>> {
    let dir = format!("/proc/{pid}/task");
    let entries = std::fs::read_dir(&dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NoProcess(pid),
        _ => Error::sys(format!("reading {dir}"), e),
    })?;
    let mut tids: Vec<i32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    Ok(tids)
}
