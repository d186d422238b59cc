//! Every workload at a tiny scale, once: every variant that runs gives the same answer as
//! vanilla (the run fails otherwise), and every case has a measured vanilla.

use std::collections::BTreeSet;

use cosy_bench::{Config, Error, Record, run, workloads};

#[test]
fn every_workload_runs_and_every_variant_agrees() {
    let config = Config {
        runs: 1,
        scale: 0.001,
        ..Config::default()
    };
    let records: Vec<Record> = match run(&config, &mut ()) {
        Ok(r) => r,
        Err(Error::Problems { problems, .. }) => {
            panic!("the benchmark is wrong:\n{}", problems.join("\n"))
        }
        Err(e) => panic!("{e}"),
    };
    // Every part of every workload produced records.
    let seen: BTreeSet<&str> = records.iter().map(|r| r.workload.as_str()).collect();
    for w in workloads::all() {
        for p in w.parts {
            let name = if w.name == "burst" { "burst" } else { p };
            assert!(seen.contains(name), "no records for {name}");
        }
    }
    // Vanilla and direct always run; every record that ran has an answer and no mismatch.
    for r in &records {
        if r.variant == "vanilla" || r.variant == "direct" {
            assert!(
                r.skipped.is_none(),
                "{} {} skipped: {:?}",
                r.workload,
                r.variant,
                r.skipped
            );
        }
        if r.skipped.is_none() {
            assert_eq!(r.runs, 1, "{r:?}");
            assert!(r.params.contains_key("answer"), "{r:?}");
            assert!(!r.params.contains_key("mismatch"), "{r:?}");
        }
        let v: serde_json::Value = serde_json::from_str(&r.to_json_line()).expect("valid JSON");
        assert_eq!(v["workload"], r.workload.as_str());
    }
    let bursts = records.iter().filter(|r| r.workload == "burst").count();
    assert_eq!(bursts, 2 * 11 * 5);
}
