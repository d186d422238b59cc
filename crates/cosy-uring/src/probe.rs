//! Is io_uring usable here, and which opcodes does the kernel know?
//!
//! io_uring_setup(2) fails with `ENOSYS` on kernels built without io_uring and with `EPERM` when a
//! seccomp filter forbids it or the `kernel.io_uring_disabled` sysctl is 2 (or 1 and the process
//! is not in `kernel.io_uring_group`). When a ring can be made, `IORING_REGISTER_PROBE`
//! (io_uring_register(2)) lists the opcodes the kernel supports.
//!
//! Setting the environment variable [`ENV_NO_URING`] (`COSY_NO_URING=1`) makes
//! [`Probe::detect`] report io_uring unavailable, so callers and tests can force the plain
//! system-call path.

use std::sync::OnceLock;

use io_uring::{IoUring, opcode};

/// The environment variable that disables io_uring for cosy: set to anything but `""` or `"0"`.
pub const ENV_NO_URING: &str = "COSY_NO_URING";

/// The environment variable that makes tests which need io_uring fail, instead of skipping,
/// when it is unavailable: set to `1` where io_uring is known to work (.ci/run does), so that a
/// regression in setting up rings cannot pass as "skipped".
pub const ENV_REQUIRE_URING: &str = "COSY_REQUIRE_URING";

/// Whether [`ENV_REQUIRE_URING`] is `1`.
pub fn uring_required() -> bool {
    std::env::var_os(ENV_REQUIRE_URING).is_some_and(|v| v == "1")
}

/// For a test (or example) that needs io_uring: `false` when io_uring is available
/// ([`Probe::detect`]); when it is not, prints `skipping WHAT: io_uring unavailable (why)` and
/// returns `true`, or, with [`ENV_REQUIRE_URING`]`=1`, panics, so that the test fails.
///
/// ```
/// if cosy_uring::skip_without_uring("this example") {
///     return;
/// }
/// let ring = cosy_uring::Ring::new(8).expect("io_uring is available");
/// ```
#[track_caller]
pub fn skip_without_uring(what: &str) -> bool {
    let probe = Probe::detect();
    if probe.available() {
        return false;
    }
    let why = probe.reason().unwrap_or("no reason given");
    assert!(
        !uring_required(),
        "{what} needs io_uring, which is unavailable ({why}), and {ENV_REQUIRE_URING}=1 requires it"
    );
    eprintln!("skipping {what}: io_uring unavailable ({why})");
    true
}

/// What the running kernel offers of io_uring.
///
/// Cheap to clone (a bit set and an optional reason).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    available: bool,
    reason: Option<String>,
    ops: [u64; 4],
    features: Features,
}

/// Some `IORING_FEAT_*` bits the kernel reports from io_uring_setup(2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// `IORING_FEAT_NODROP`: completions are never dropped when the CQ ring overflows.
    pub nodrop: bool,
    /// `IORING_FEAT_SUBMIT_STABLE`: data for submission is consumed at submit time.
    pub submit_stable: bool,
    /// `IORING_FEAT_RW_CUR_POS`: an offset of `-1` reads or writes at the file position.
    pub rw_cur_pos: bool,
    /// `IORING_FEAT_SQPOLL_NONFIXED`: SQPOLL works with non-registered descriptors.
    pub sqpoll_nonfixed: bool,
    /// `IORING_FEAT_LINKED_FILE`: files of linked requests are resolved when they run.
    pub linked_file: bool,
}

static KERNEL: OnceLock<Probe> = OnceLock::new();

impl Probe {
    /// Probe io_uring, honouring [`ENV_NO_URING`].
    ///
    /// The kernel is asked once per process, and the environment variable read once (both
    /// are cached).
    pub fn detect() -> Probe {
        if disabled_by_env() {
            return Probe::disabled(format!("disabled by {ENV_NO_URING}"));
        }
        Probe::kernel().clone()
    }

    /// What the kernel offers, ignoring [`ENV_NO_URING`]; probed once per process.
    pub fn kernel() -> &'static Probe {
        KERNEL.get_or_init(Probe::probe_kernel)
    }

    /// A probe that reports io_uring unavailable for `reason`.
    pub fn disabled(reason: impl Into<String>) -> Probe {
        Probe {
            available: false,
            reason: Some(reason.into()),
            ops: [0; 4],
            features: Features::default(),
        }
    }

    /// Whether rings can be created (io_uring_setup(2) works and the probe succeeded).
    pub fn available(&self) -> bool {
        self.available
    }

    /// Why io_uring is unavailable (`None` when it is available).
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// Whether the kernel supports the opcode (`IORING_OP_*`, e.g. `io_uring::opcode::Nop::CODE`).
    /// Always `false` when io_uring is unavailable.
    pub fn supports(&self, opcode: u8) -> bool {
        self.ops[usize::from(opcode / 64)] & (1 << (opcode % 64)) != 0
    }

    /// Every supported opcode, in increasing order.
    pub fn supported_opcodes(&self) -> Vec<u8> {
        (0..=u8::MAX).filter(|&op| self.supports(op)).collect()
    }

    /// The `IORING_FEAT_*` bits of interest.
    pub fn features(&self) -> Features {
        self.features
    }

    /// This probe with `opcode` reported unsupported (to test fallbacks as on a kernel that
    /// lacks it). A ring built with the result ([`RingBuilder::probe`](crate::RingBuilder::probe))
    /// refuses the opcode.
    pub fn without(mut self, opcode: u8) -> Probe {
        self.ops[usize::from(opcode / 64)] &= !(1 << (opcode % 64));
        self
    }

    fn probe_kernel() -> Probe {
        let ring = match IoUring::new(2) {
            Ok(ring) => ring,
            Err(e) => return Probe::disabled(setup_failure(&e)),
        };
        let mut probe = io_uring::Probe::new();
        if let Err(e) = ring.submitter().register_probe(&mut probe) {
            return Probe::disabled(format!(
                "IORING_REGISTER_PROBE failed ({e}); kernel older than 5.6"
            ));
        }
        let mut ops = [0u64; 4];
        for op in 0..=u8::MAX {
            if probe.is_supported(op) {
                ops[usize::from(op / 64)] |= 1 << (op % 64);
            }
        }
        let p = ring.params();
        Probe {
            available: true,
            reason: None,
            ops,
            features: Features {
                nodrop: p.is_feature_nodrop(),
                submit_stable: p.is_feature_submit_stable(),
                rw_cur_pos: p.is_feature_rw_cur_pos(),
                sqpoll_nonfixed: p.is_feature_sqpoll_nonfixed(),
                linked_file: p.is_feature_linked_file(),
            },
        }
    }
}

fn disabled_by_env() -> bool {
    static DISABLED: OnceLock<bool> = OnceLock::new();
    *DISABLED.get_or_init(|| match std::env::var_os(ENV_NO_URING) {
        Some(v) => !v.is_empty() && v != "0",
        None => false,
    })
}

fn setup_failure(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOSYS) => "io_uring_setup: ENOSYS (kernel built without io_uring)".to_string(),
        Some(libc::EPERM) => {
            let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "?".to_string());
            format!(
                "io_uring_setup: EPERM (seccomp filter or sysctl kernel.io_uring_disabled={sysctl})"
            )
        }
        _ => format!("io_uring_setup: {e}"),
    }
}

/// The name of an io_uring opcode (`IORING_OP_*` without the prefix, lower case) for the
/// opcodes this crate issues; `"op"` for others.
pub fn opcode_name(op: u8) -> &'static str {
    const NAMES: &[(u8, &str)] = &[
        (opcode::Nop::CODE, "nop"),
        (opcode::Readv::CODE, "readv"),
        (opcode::Writev::CODE, "writev"),
        (opcode::Fsync::CODE, "fsync"),
        (opcode::ReadFixed::CODE, "read_fixed"),
        (opcode::WriteFixed::CODE, "write_fixed"),
        (opcode::OpenAt::CODE, "openat"),
        (opcode::Close::CODE, "close"),
        (opcode::Statx::CODE, "statx"),
        (opcode::Read::CODE, "read"),
        (opcode::Write::CODE, "write"),
        (opcode::OpenAt2::CODE, "openat2"),
        (opcode::Splice::CODE, "splice"),
        (opcode::RenameAt::CODE, "renameat"),
        (opcode::UnlinkAt::CODE, "unlinkat"),
        (opcode::MkDirAt::CODE, "mkdirat"),
        (opcode::Ftruncate::CODE, "ftruncate"),
        (opcode::SymlinkAt::CODE, "symlinkat"),
        (opcode::LinkAt::CODE, "linkat"),
        (opcode::FGetXattr::CODE, "fgetxattr"),
        (opcode::FSetXattr::CODE, "fsetxattr"),
    ];
    NAMES
        .iter()
        .find(|(code, _)| *code == op)
        .map_or("op", |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_probe_supports_nothing() {
        let p = Probe::disabled("test");
        assert!(!p.available());
        assert_eq!(p.reason(), Some("test"));
        assert!(p.supported_opcodes().is_empty());
    }

    #[test]
    fn opcode_names() {
        assert_eq!(opcode_name(opcode::Nop::CODE), "nop");
        assert_eq!(opcode_name(opcode::Statx::CODE), "statx");
        assert_eq!(opcode_name(250), "op");
    }
}
