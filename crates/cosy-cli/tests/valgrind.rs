//! `cosy run` under valgrind: a program that links cosy must run under the tools it is debugged
//! with. The clock that checks the time limit once crashed there (rustix read the vDSO itself);
//! this runs the built binary under valgrind (memcheck) and compares its output with a plain run.
//!
//! The example is `getpid.cosy`: it has no paths, because some valgrind releases (3.19, for one)
//! do not know openat2, which confines the paths of untrusted compounds, and answer ENOSYS.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/cosy-cli lies two levels below the workspace")
        .to_path_buf()
}

fn valgrind_installed() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `cosy ARGS`, under valgrind when `prefix` names it.
fn run(prefix: &[&str], args: &[&str]) -> Output {
    let cosy = env!("CARGO_BIN_EXE_cosy");
    let mut cmd = match prefix.split_first() {
        Some((tool, rest)) => {
            let mut c = Command::new(tool);
            c.args(rest).arg(cosy);
            c
        }
        None => Command::new(cosy),
    };
    cmd.current_dir(workspace())
        .args(args)
        .output()
        .expect("the command starts")
}

/// The output with the process id's value blanked: it is the one result that differs between
/// two runs.
fn without_pid(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| match l.split_once(" = ") {
            Some(("pid", v)) => {
                assert!(v.parse::<u32>().is_ok(), "pid is a number: {l:?}");
                "pid = _".to_string()
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn cosy_run_under_valgrind_prints_what_it_prints_without() {
    if !valgrind_installed() {
        eprintln!("skipping: valgrind not installed");
        return;
    }
    // The default executor (auto) and the two it chooses from.
    for backend in ["auto", "direct", "ring"] {
        let args = [
            "run",
            "examples/getpid.cosy",
            "count=500",
            "--backend",
            backend,
        ];
        let plain = run(&[], &args);
        assert!(plain.status.success(), "{backend}: {plain:?}");
        let checked = run(&["valgrind", "--error-exitcode=1", "--quiet"], &args);
        assert!(
            checked.status.success(),
            "{backend}: cosy under valgrind failed: {}\n{}",
            checked.status,
            String::from_utf8_lossy(&checked.stderr)
        );
        let expected = without_pid(&plain);
        assert!(expected.contains("calls = 500"), "{backend}: {expected}");
        assert_eq!(without_pid(&checked), expected, "{backend}");
    }
}
