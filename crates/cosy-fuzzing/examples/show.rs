//! Prints the compound a fuzz input of the `run` target becomes (its origin, then the text):
//! `cargo run -p cosy-fuzzing --example show -- FILE`, for triaging a finding.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: show FILE")?;
    let bytes = std::fs::read(path)?;
    let mut u = arbitrary::Unstructured::new(&bytes);
    match cosy_fuzzing::generate::compound(&mut u) {
        Some(g) => {
            let c = cosy_fuzzing::run::Harness::prepare(g.compound);
            println!("# origin: {:?}", g.origin);
            print!("{}", cosy_format::text::print(&c));
        }
        None => println!("# binary bytes that do not decode"),
    }
    Ok(())
}
