//! The example of the safe-asynchronous-system-calls poster, on a session: check that a file
//! may be written (`faccessat2`), open it (`openat`), and — if both succeeded — write to it and
//! close it. The access check and the open are sent together and got after one barrier; on the
//! ring they go to the kernel in one submission, and so do the write and the close.
//!
//! `cargo run -p cosy-exec --example session [direct|ring] [FILE]`
//!
//! (The poster closes the race between the check and the open with a transaction; sessions do
//! not have transactions yet: this shows the send / barrier / get shape of the code.)

use std::process::ExitCode;

use cosy_exec::Backend;
use cosy_exec::session::{Call, Fd, Session};
use cosy_model::Policy;
use cosy_model::flags::{Access, AtFlags, Mode, OFlags};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let backend: Backend = match args.next().as_deref().unwrap_or("ring").parse() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let given = args.next().map(std::path::PathBuf::from);
    let temporary = given.is_none();
    let file = given.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("cosy-session-example-{}.dat", std::process::id()))
    });
    if !file.exists()
        && let Err(e) = std::fs::write(&file, b"")
    {
        eprintln!("cannot create {}: {e}", file.display());
        return ExitCode::FAILURE;
    }
    let mut s = match Session::new(backend, &Policy::trusted()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let done = poster(&mut s, &file);
    drop(s);
    if temporary {
        let _ = std::fs::remove_file(&file);
    }
    match done {
        Ok(st) => {
            println!(
                "wrote {} on {backend} ({} system calls, {} through the ring in {} io_uring_enter calls)",
                file.display(),
                st.syscalls,
                st.ring_ops,
                st.ring_enters
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}

fn poster(
    s: &mut Session,
    file: &std::path::Path,
) -> Result<cosy_exec::Stats, Box<dyn std::error::Error>> {
    let data = s.buffer(64)?;
    let text = b"written after faccessat2 and openat\n";
    s.bytes_mut(data)?[..text.len()].copy_from_slice(text);

    // send(access(fn, W_OK)); send(open(fn, O_WRONLY)); barrier(); r = get(); fd = get();
    let r = s.send(Call::faccessat2(
        Fd::Cwd,
        file,
        Access::WRITE_OK,
        AtFlags::empty(),
    ))?;
    let fd = s.send(Call::openat(
        Fd::Cwd,
        file,
        OFlags::WRONLY | OFlags::TRUNC,
        Mode::empty(),
    ))?;
    s.barrier();
    s.get(r)?;
    s.get(fd)?;

    // if (r == 0 && fd > 0) { write(fd, ...); close(fd); }
    let w = s.send(Call::write(fd, data.prefix(text.len() as i64)))?;
    let c = s.send(Call::close(fd))?;
    s.get(w)?;
    s.get(c)?;
    Ok(s.stats())
}
