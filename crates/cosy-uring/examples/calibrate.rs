//! Print the calibration of this machine and a burst at N = 256 (or the N given).
//!
//! `cargo run --release -p cosy-uring --example calibrate [N] [REPS]`

use std::io::Write as _;

use cosy_uring::Calibration;
use cosy_uring::burst::{self, FdKind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(256), |a| a.parse())?;
    let reps: usize = args.next().map_or(Ok(50), |a| a.parse())?;

    let c = Calibration::measure();
    print!("{}", c.to_text());

    let mut file = tempfile::tempfile()?;
    file.write_all(&vec![b'x'; 4096])?;
    println!("# burst N={n}, {reps} repetitions (ns per operation)");
    println!("vanilla_nop={:.1}", burst::vanilla_nop(n, reps));
    println!("vanilla_pread={:.1}", burst::vanilla_pread(&file, n, reps)?);
    match burst::uring_by_hand_nop(n, reps) {
        Ok(ns) => println!("uring_by_hand_nop={ns:.1}"),
        Err(e) => println!("# uring_by_hand_nop: {e}"),
    }
    for kind in [FdKind::Regular, FdKind::Fixed] {
        match burst::uring_by_hand_pread(&file, n, reps, kind) {
            Ok(ns) => println!("uring_by_hand_pread_{kind:?}={ns:.1}"),
            Err(e) => println!("# uring_by_hand_pread_{kind:?}: {e}"),
        }
    }
    Ok(())
}
