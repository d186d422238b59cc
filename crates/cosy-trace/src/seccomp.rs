//! The seccomp filter of the ptrace mechanism when only some calls are traced: a classic BPF
//! program that returns `SECCOMP_RET_TRACE` for the calls of interest (the tracee then stops
//! for the tracer, `PTRACE_EVENT_SECCOMP`) and `SECCOMP_RET_ALLOW` for every other call, which
//! runs without a stop.

/// `AUDIT_ARCH_*` of the architecture the call numbers are for (linux/audit.h).
const AUDIT_ARCH: Option<u32> = if cfg!(target_arch = "x86_64") {
    Some(0xc000_003e)
} else if cfg!(target_arch = "aarch64") {
    Some(0xc000_00b7)
} else if cfg!(target_arch = "riscv64") {
    Some(0xc000_00f3)
} else {
    None
};

/// Offsets in `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jeq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    }
}

/// The filter that traces the calls `nrs` (at most 255), or `None` where the architecture is
/// not known here or the list is too long. Calls of another architecture (a 32-bit call on a
/// 64-bit kernel) are allowed untraced.
pub fn filter(nrs: &[u32]) -> Option<Vec<libc::sock_filter>> {
    let arch = AUDIT_ARCH?;
    let n = u8::try_from(nrs.len()).ok()?;
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    let mut prog = vec![
        stmt(load, ARCH),
        jeq(arch, 1, 0),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
        stmt(load, NR),
    ];
    // The k-th comparison jumps over the n-k-1 after it and the ALLOW, to the TRACE.
    for (k, &nr) in nrs.iter().enumerate() {
        prog.push(jeq(nr, n - k as u8, 0));
    }
    prog.push(stmt(ret, libc::SECCOMP_RET_ALLOW));
    prog.push(stmt(ret, libc::SECCOMP_RET_TRACE));
    Some(prog)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `prog` on a `seccomp_data` with `arch` and `nr`, as the kernel would.
    fn run(prog: &[libc::sock_filter], arch: u32, nr: u32) -> u32 {
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = prog[pc];
            match i.code as u32 {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    acc = if i.k == ARCH { arch } else { nr };
                }
                c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => {
                    pc += if acc == i.k { i.jt } else { i.jf } as usize;
                }
                c if c == libc::BPF_RET | libc::BPF_K => return i.k,
                c => panic!("unexpected instruction {c:#x}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn traces_exactly_the_calls_listed() {
        let Some(arch) = AUDIT_ARCH else {
            eprintln!("skipping: no seccomp filter on this architecture");
            return;
        };
        let prog = filter(&[0, 3, 257]).expect("a filter");
        for nr in 0..400 {
            let want = if [0, 3, 257].contains(&nr) {
                libc::SECCOMP_RET_TRACE
            } else {
                libc::SECCOMP_RET_ALLOW
            };
            assert_eq!(run(&prog, arch, nr), want, "nr {nr}");
        }
        assert_eq!(run(&prog, 0x4000_0003, 3), libc::SECCOMP_RET_ALLOW);
        assert!(filter(&[1; 256]).is_none());
    }
}
