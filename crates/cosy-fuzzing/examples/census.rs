//! What the `run` target's inputs become: `cargo run -p cosy-fuzzing --example census -- DIR`
//! counts, per origin of the generated compound (`cosy_fuzzing::generate::Origin`), the inputs
//! of a corpus directory and how many of them the verifier accepts under the harness's policy
//! (those reach the executors).

use std::collections::BTreeMap;

use cosy_fuzzing::run::Harness;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: census DIR")?;
    let harness = Harness::new()?;
    let policy = harness.policy();
    let mut counts: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for e in std::fs::read_dir(dir)?.flatten() {
        let bytes = std::fs::read(e.path())?;
        let mut u = arbitrary::Unstructured::new(&bytes);
        let (origin, verified) = match cosy_fuzzing::generate::compound(&mut u) {
            Some(g) => {
                let c = Harness::prepare(g.compound);
                let ok = cosy_verify::verify(c, &policy).is_ok();
                (format!("{:?}", g.origin), ok)
            }
            None => ("binary, not decoding".to_string(), false),
        };
        let entry = counts.entry(origin).or_default();
        entry.0 += 1;
        entry.1 += u32::from(verified);
    }
    let (mut all, mut ran) = (0, 0);
    for (origin, (n, v)) in &counts {
        println!("{origin:>22}: {n:6} inputs, {v:6} verify");
        all += n;
        ran += v;
    }
    println!("{:>22}: {all:6} inputs, {ran:6} verify", "all");
    Ok(())
}
