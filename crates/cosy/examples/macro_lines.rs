//! `cargo run -p cosy --example macro_lines [DIR]`: the lines, words and bytes of the regular
//! files of a directory (like `wc` over `DIR/*`), as one compound written with
//! `cosy::compound!`.
//!
//! A program that depends only on `cosy`: no libc, no `unsafe`. The compound is verified
//! while this file compiles (shrink `data` below what `read` is given and it no longer
//! compiles), and again at run time against the policy given to `run`.

use cosy::{Policy, RunOptions};

cosy::compound! {
    /// For each regular file of `dir`: open, read up to 1 MiB, count its lines (a built-in)
    /// and its words (`words`, a function of this program), close.
    #[functions(words)]
    pub fn wc(dir: &Path) -> Counts {
        let d = openat(cwd, dir, O_RDONLY | O_DIRECTORY, 0)?;
        let mut files = 0;
        let mut lines = 0;
        let mut words = 0;
        let mut bytes = 0;
        for e in dirents(d) {
            if e.kind != DT_REG {
                continue;
            }
            let mut data = [0u8; 1 << 20];
            let f = openat(d, e, O_RDONLY, 0)?;
            let n = read(f, &mut data)?;
            close(f)?;
            files += 1;
            bytes += n;
            lines += count_lines(&data[..n]);
            words += words(&data[..n]);
        }
        close(d)?;
        Counts { files, lines, words, bytes }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    // Read-only, confined to `dir`; the user function is allowed by name.
    let mut policy = Policy::read_only(&dir);
    policy
        .functions
        .extend(wc::FUNCTIONS.iter().map(|f| f.to_string()));
    let mut options = RunOptions::default();
    options.functions.register("words", |args| {
        let data = args.bytes(0)?;
        Ok(data
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .count() as i64)
    });
    // Under a policy rooted at `dir`, the compound's paths are relative to it.
    let out = wc::run(&policy, &options, ".")?;
    println!(
        "{dir}: {} files, {} lines, {} words, {} bytes ({} operations, {} system calls)",
        out.files, out.lines, out.words, out.bytes, out.stats.ops, out.stats.syscalls
    );
    Ok(())
}
