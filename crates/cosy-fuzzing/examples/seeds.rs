//! Writes seed corpora for the fuzz targets: `cargo run -p cosy-fuzzing --example seeds -- DIR`
//! fills `DIR/text_parse` (the repository's examples and generated compounds, printed),
//! `DIR/binary_decode` (the same compounds, encoded) and `DIR/run` (byte strings of several
//! lengths, which the generator turns into compounds).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).ok_or("usage: seeds DIR")?);
    for t in ["text_parse", "binary_decode", "run"] {
        std::fs::create_dir_all(dir.join(t))?;
    }
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for e in std::fs::read_dir(examples)?.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "cosy") {
            let text = std::fs::read(&p)?;
            let name = p
                .file_name()
                .ok_or("no name")?
                .to_string_lossy()
                .into_owned();
            std::fs::write(dir.join("text_parse").join(&name), &text)?;
            if let Ok(loaded) = cosy_format::load(&text) {
                let bytes = cosy_format::binary::encode(&loaded.compound);
                std::fs::write(dir.join("binary_decode").join(&name), bytes)?;
            }
        }
    }
    // A fixed pseudo-random sequence: the same seeds on every machine.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for k in 0..64 {
        let len = 16 + (next() % 1200) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        std::fs::write(dir.join("run").join(format!("seed-{k:02}")), &bytes)?;
        let mut u = arbitrary::Unstructured::new(&bytes);
        if let Some(g) = cosy_fuzzing::generate::compound(&mut u) {
            let text = cosy_format::text::print(&g.compound);
            std::fs::write(dir.join("text_parse").join(format!("gen-{k:02}")), text)?;
            let bin = cosy_format::binary::encode(&g.compound);
            std::fs::write(dir.join("binary_decode").join(format!("gen-{k:02}")), bin)?;
        }
    }
    Ok(())
}
