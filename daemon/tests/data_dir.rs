//! Data directories end up 0700 and their files 0600 whatever the umask; a directory that another
//! user owns or that others may write into stops the daemon instead.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use daemon::data_dir::{secure_dir, secure_file, tighten_files, DataDirError, DirState};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Set in the child process that runs under umask 000 (the umask is process-wide and std cannot
/// set it without `unsafe`, so a shell sets it for a copy of this test binary).
const CHILD_DIR: &str = "DATA_DIR_TEST_UMASK_000_DIR";

#[test]
fn under_umask_000_a_new_data_dir_is_0700_and_its_files_0600() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        let dir = Path::new(&dir).join("data");
        assert_eq!(secure_dir(&dir).unwrap(), DirState::Created);
        // What sled does: create files and directories with the umask's default modes.
        std::fs::write(dir.join("db"), b"records").unwrap();
        std::fs::create_dir(dir.join("blobs")).unwrap();
        std::fs::write(dir.join("blobs").join("1"), b"blob").unwrap();
        assert_eq!(
            mode(&dir.join("db")),
            0o666,
            "the child runs under umask 000"
        );
        tighten_files(&dir).unwrap();
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let me = std::env::current_exe().unwrap();
    let status = Command::new("sh")
        .arg("-c")
        .arg("umask 000 && exec \"$0\" --exact under_umask_000_a_new_data_dir_is_0700_and_its_files_0600 --test-threads 1")
        .arg(&me)
        .env(CHILD_DIR, tmp.path())
        .status()
        .unwrap();
    assert!(status.success(), "the child under umask 000 failed");
    let dir = tmp.path().join("data");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("db")), 0o600);
    assert_eq!(mode(&dir.join("blobs")), 0o700);
    assert_eq!(mode(&dir.join("blobs").join("1")), 0o600);
}

#[test]
fn an_existing_world_readable_data_dir_is_tightened() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    std::fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o755);
    std::fs::write(dir.join("conf"), b"x").unwrap();
    chmod(&dir.join("conf"), 0o644);
    assert_eq!(
        secure_dir(&dir).unwrap(),
        DirState::Tightened { mode_before: 0o755 }
    );
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(tighten_files(&dir).unwrap(), 1);
    assert_eq!(mode(&dir.join("conf")), 0o600);
    assert_eq!(secure_dir(&dir).unwrap(), DirState::AlreadyPrivate);
    assert_eq!(tighten_files(&dir).unwrap(), 0, "nothing left to change");
}

#[test]
fn a_data_dir_others_may_write_into_is_refused_and_left_as_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("queue");
    std::fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o777);
    let err = secure_dir(&dir).unwrap_err();
    assert!(
        matches!(err, DataDirError::WritableByOthers { mode: 0o777, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 700"), "{err}");
    assert_eq!(mode(&dir), 0o777, "the operator looks first");
}

#[test]
fn a_file_where_the_data_dir_should_be_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state");
    std::fs::write(&path, b"not a dir").unwrap();
    let err = secure_dir(&path).unwrap_err();
    assert!(matches!(err, DataDirError::NotADirectory { .. }), "{err}");
}

#[test]
fn a_data_dir_of_another_user_is_refused_and_left_as_it_is() {
    use std::os::unix::fs::MetadataExt;
    let us = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0);
    let tmp = tempfile::tempdir().unwrap();
    let (dir, owner) = if us == 0 {
        // As root: a directory handed to another uid.
        let dir = tmp.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        chmod(&dir, 0o755);
        std::os::unix::fs::chown(&dir, Some(4242), Some(4242)).unwrap();
        (dir, 4242)
    } else {
        // Not root: "/" is root's.
        (Path::new("/").to_owned(), 0)
    };
    let mode_before = mode(&dir);
    let err = secure_dir(&dir).unwrap_err();
    assert!(
        matches!(err, DataDirError::OtherOwner { owner: o, us: u, .. } if o == owner && u == us),
        "{err}"
    );
    assert!(err.to_string().contains("chown"), "{err}");
    assert_eq!(std::fs::metadata(&dir).unwrap().uid(), owner);
    assert_eq!(mode(&dir), mode_before, "nothing changed");
}

#[test]
fn a_key_store_file_is_made_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("keys.json");
    assert!(!secure_file(&file).unwrap(), "no file yet");
    std::fs::write(&file, b"{}").unwrap();
    chmod(&file, 0o644);
    assert!(secure_file(&file).unwrap());
    assert_eq!(mode(&file), 0o600);
}
