//! The `graft` command as a user runs it.

use std::process::Command;

fn graft(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(args)
        .output()
        .expect("graft runs")
}

#[test]
fn reproduce_lists_the_registered_experiments() {
    let out = graft(&["reproduce", "--list"]);
    assert!(out.status.success());
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(names.contains(&"baselines".to_string()), "{names:?}");
}

#[test]
fn unknown_experiment_is_refused_with_the_registered_names() {
    let out = graft(&["reproduce", "no-such-experiment"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-experiment") && err.contains("baselines"),
        "{err}"
    );
}
