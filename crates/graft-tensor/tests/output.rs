//! Outputs never destroy what graft did not write; temporary entries never
//! outlive their writer; an atomic file is absent or whole after a kill.

use graft_tensor::atomic::{AtomicFile, StagingDir, clean_stale, write_atomic};
use graft_tensor::output::{MARKER_FILE, OutputRules};
use std::fs;
use std::io::Write;
use std::path::Path;

fn stage(dest: &Path, rules: &OutputRules, file: &str, body: &str) -> graft_tensor::Result<()> {
    let staging = StagingDir::create(dest, rules, "test")?;
    fs::write(staging.path().join(file), body).unwrap();
    staging.commit()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_directory_holding_user_files_is_never_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("IMPORTANT.txt"), "keep me").unwrap();
    for force in [false, true] {
        let err = stage(&out, &OutputRules::new().force(force), "a", "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("IMPORTANT.txt"), "{err}");
        assert!(
            err.contains(if force { "did not write" } else { "--force" }),
            "{err}"
        );
        assert_eq!(
            fs::read_to_string(out.join("IMPORTANT.txt")).unwrap(),
            "keep me"
        );
        assert_eq!(entries(tmp.path()), ["out"], "nothing left beside it");
    }
}

#[test]
fn force_replaces_an_earlier_graft_output_but_not_one_a_user_added_to() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    // An empty directory is replaced without --force: nothing is lost.
    fs::create_dir(&out).unwrap();
    stage(&out, &OutputRules::new(), "model", "one").unwrap();
    assert_eq!(entries(&out), [MARKER_FILE, "model"]);
    assert!(stage(&out, &OutputRules::new(), "model", "two").is_err());
    stage(&out, &OutputRules::new().force(true), "model", "two").unwrap();
    assert_eq!(fs::read_to_string(out.join("model")).unwrap(), "two");
    fs::write(out.join("notes.md"), "mine").unwrap();
    let err = stage(&out, &OutputRules::new().force(true), "model", "three")
        .unwrap_err()
        .to_string();
    assert!(err.contains("notes.md"), "{err}");
    assert_eq!(fs::read_to_string(out.join("model")).unwrap(), "two");
    assert_eq!(entries(tmp.path()), ["out"]);
}

#[test]
fn an_output_that_is_contains_or_lies_inside_an_input_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = tmp.path().join("models");
    let base = inputs.join("base");
    fs::create_dir_all(&base).unwrap();
    fs::write(base.join("model.safetensors"), "weights").unwrap();
    let rules = OutputRules::new().force(true).input(&base);
    for (out, word) in [
        (base.clone(), "is the input"),
        (inputs.clone(), "contains the input"),
        (tmp.path().to_path_buf(), "contains the input"),
        (base.join("merged"), "lies inside"),
        (inputs.join("x/../base"), "is the input"),
    ] {
        let err = stage(&out, &rules, "a", "x").unwrap_err().to_string();
        assert!(err.contains(word), "{}: {err}", out.display());
    }
    assert_eq!(
        fs::read_to_string(base.join("model.safetensors")).unwrap(),
        "weights"
    );
    assert_eq!(entries(&base), ["model.safetensors"]);
}

#[test]
fn a_file_or_a_link_in_the_outputs_place_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("out");
    fs::write(&file, "a file").unwrap();
    let err = stage(&file, &OutputRules::new().force(true), "a", "x")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a directory"), "{err}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "a file");
    let target = tmp.path().join("real");
    fs::create_dir(&target).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = stage(&link, &OutputRules::new().force(true), "a", "x")
        .unwrap_err()
        .to_string();
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(entries(tmp.path()), ["link", "out", "real"]);
}

/// A pid that no process has: beyond the kernel's pid_max.
fn dead_pid() -> u32 {
    let max: u32 = fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4_194_304);
    max + 1
}

#[test]
fn stale_entries_of_dead_owners_are_removed_and_live_ones_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("out");
    let dead = dead_pid();
    let stale_dir = tmp.path().join(format!(".graft-tmp-out-{dead}-0"));
    fs::create_dir(&stale_dir).unwrap();
    fs::write(stale_dir.join("shard"), "partial").unwrap();
    let stale_file = tmp.path().join(format!(".graft-tmp-out-{dead}-1"));
    fs::write(&stale_file, "partial").unwrap();
    // pid 1 always exists: its entry is live.
    let live = tmp.path().join(".graft-tmp-out-1-0");
    fs::write(&live, "live").unwrap();
    // Another target's entry and a user's file that merely looks similar.
    let other = tmp.path().join(format!(".graft-tmp-other-{dead}-0"));
    fs::write(&other, "other").unwrap();
    let lookalike = tmp.path().join(".graft-tmp-out-notes");
    fs::write(&lookalike, "user").unwrap();
    let done = clean_stale(&dest);
    assert_eq!(done.removed.len(), 2, "{done:?}");
    assert!(!stale_dir.exists() && !stale_file.exists());
    assert!(live.exists() && other.exists() && lookalike.exists());
}

#[test]
fn a_locked_entry_survives_even_when_its_pid_is_unknown() {
    // A writer in another pid namespace: its pid means nothing here, its lock does.
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("out");
    let entry = tmp.path().join(format!(".graft-tmp-out-{}-0", dead_pid()));
    fs::write(&entry, "live elsewhere").unwrap();
    let holder = fs::File::open(&entry).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a valid descriptor.
    assert_eq!(unsafe { libc::flock(holder.as_raw_fd(), libc::LOCK_EX) }, 0);
    assert!(clean_stale(&dest).removed.is_empty());
    assert!(entry.exists());
    drop(holder);
    assert_eq!(clean_stale(&dest).removed.len(), 1);
}

#[test]
fn an_old_output_moved_aside_by_a_killed_replacement_is_put_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("out");
    let old = tmp.path().join(format!(".graft-old-out-{}-0", dead_pid()));
    fs::create_dir(&old).unwrap();
    fs::write(old.join("model"), "old").unwrap();
    let done = clean_stale(&dest);
    assert_eq!(done.restored, vec![dest.clone()]);
    assert_eq!(fs::read_to_string(dest.join("model")).unwrap(), "old");
    // With the output present, a leftover old copy is removed instead.
    fs::create_dir(&old).unwrap();
    assert_eq!(clean_stale(&dest).removed, vec![old.clone()]);
    assert!(!old.exists() && dest.join("model").exists());
}

#[test]
fn a_failed_flush_removes_the_temporary_file() {
    // /dev/full accepts the open and fails every write: the temp file is
    // beside it, so write through a directory whose files cannot grow
    // instead: RLIMIT_FSIZE in a child process.
    if std::env::var_os("GRAFT_FSIZE_CHILD").is_some() {
        let dest = Path::new(&std::env::var("GRAFT_FSIZE_CHILD").unwrap()).to_path_buf();
        let mut f = AtomicFile::create(&dest).unwrap();
        // Fits the writer's buffer: the failure comes at the flush in commit.
        f.write_all(&vec![7u8; 512 << 10]).unwrap();
        let result = f.commit();
        assert!(result.is_err(), "the limit should make the write fail");
        std::process::exit(0);
    }
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("big.bin");
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "--exact",
        "a_failed_flush_removes_the_temporary_file",
        "--nocapture",
    ])
    .env("GRAFT_FSIZE_CHILD", &dest);
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: 64 << 10,
                rlim_max: 64 << 10,
            };
            libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
            Ok(())
        });
    }
    let status = cmd.status().unwrap();
    assert!(status.success(), "child failed: {status}");
    assert!(
        entries(tmp.path()).is_empty(),
        "left: {:?}",
        entries(tmp.path())
    );
}

#[test]
fn a_killed_atomic_writer_leaves_the_file_absent_or_whole() {
    const PAYLOAD: usize = 8 << 20;
    if let Ok(dest) = std::env::var("GRAFT_KILL_CHILD") {
        // Rewrites the file forever; the parent kills it.
        let mut i = 0u8;
        loop {
            i = i.wrapping_add(1);
            write_atomic(&dest, &vec![i; PAYLOAD]).unwrap();
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("model.bin");
    let exe = std::env::current_exe().unwrap();
    let mut seen_whole = 0;
    for k in 0..8u64 {
        let mut child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "a_killed_atomic_writer_leaves_the_file_absent_or_whole",
            ])
            .env("GRAFT_KILL_CHILD", &dest)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Odd rounds kill at a fixed delay (often before the first commit:
        // a child linking libtorch can take longer than that to start);
        // even rounds wait for a first commit, then kill mid-rewrite, so
        // at least one kill lands after a commit on any machine.
        if k % 2 == 0 {
            let start = std::time::Instant::now();
            while !dest.exists() && start.elapsed() < std::time::Duration::from_secs(60) {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            std::thread::sleep(std::time::Duration::from_millis(3 + 11 * k));
        } else {
            std::thread::sleep(std::time::Duration::from_millis(40 + 37 * k));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        if let Ok(bytes) = fs::read(&dest) {
            assert_eq!(bytes.len(), PAYLOAD, "a partial file at the destination");
            assert!(bytes.iter().all(|&b| b == bytes[0]), "a mixed file");
            seen_whole += 1;
        }
        // The next writer cleans up after the killed one.
        write_atomic(tmp.path().join("model.bin"), b"next").unwrap();
        assert_eq!(entries(tmp.path()), ["model.bin"], "after kill {k}");
        fs::remove_file(&dest).unwrap();
    }
    assert!(
        seen_whole > 0,
        "no kill landed after a commit: the test saw nothing"
    );
}
