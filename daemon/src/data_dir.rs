//! Private data directories: what the agent and the switch keep on disk (sled journals and
//! queues, card PIN records, key store files) is readable by their own user only, whatever umask
//! they were started with.
//!
//! - [`secure_dir`] creates a data directory with mode 0700 (its parents as the umask says), or
//!   takes an existing one and tightens a mode open to group or others to 0700. It refuses to
//!   start on a directory that belongs to another user (that user could read or swap the data) or
//!   that is writable by group or others (anyone could have planted or replaced files in it
//!   already: the operator must look before the daemon trusts its contents).
//! - [`tighten_files`] sets every regular file under a directory to 0600 and every directory to
//!   0700. sled creates its files (`db`, `conf`, `snap.*`, `blobs/`) with the process's umask
//!   (0644 under the usual 022) and offers no way to choose the mode, so the daemons call this
//!   right after opening their stores. Files sled creates later get the umask's mode again, but
//!   inside a 0700 directory nobody else can reach them; the next start tightens them too.
//! - [`secure_file`] tightens one file (a key store kept outside the data directory) to 0600.
//!
//! Symbolic links inside a data directory are left alone (never followed, never changed).
//! Only Unix permissions are handled: on other systems these functions create the directory and
//! check nothing.

use std::io;
use std::path::{Path, PathBuf};

/// Why a data directory or file cannot be made private. Each says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataDirError {
    /// Creating, reading or changing the directory or a file failed.
    #[error("{path}: {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    /// The path exists and is not a directory.
    #[error("{path}: not a directory (a data directory is expected here: move the file away)")]
    NotADirectory { path: PathBuf },
    /// Another user owns the directory or file.
    #[error("{path}: owned by uid {owner}, but this process runs as uid {us}: the data must belong to the daemon's own user (chown -R {us} {path})")]
    OtherOwner { path: PathBuf, owner: u32, us: u32 },
    /// Group or others may write into the directory.
    #[error("{path}: mode {mode:04o} lets group or others write into it, so its contents may have been tampered with: check them, then chmod 700 {path}")]
    WritableByOthers { path: PathBuf, mode: u32 },
}

/// What [`secure_dir`] found and did, for the daemon's start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirState {
    /// The directory did not exist and was created with mode 0700.
    Created,
    /// It existed with mode 0700 (or stricter).
    AlreadyPrivate,
    /// It existed with the given mode, open to group or others for reading; now 0700.
    Tightened { mode_before: u32 },
}

/// Creates `path` with mode 0700 or makes an existing directory private; see the module docs.
pub fn secure_dir(path: &Path) -> Result<DirState, DataDirError> {
    let created = create(path)?;
    imp::check_and_tighten_dir(path, created)
}

/// Sets every regular file under `dir` (recursively) to 0600 and every directory to 0700;
/// returns how many modes were changed. Symbolic links are not followed.
pub fn tighten_files(dir: &Path) -> Result<usize, DataDirError> {
    imp::tighten_tree(dir)
}

/// Sets `path` to mode 0600 if it exists (refusing a file of another user); `Ok(false)` when
/// there is no such file yet.
pub fn secure_file(path: &Path) -> Result<bool, DataDirError> {
    imp::secure_file(path)
}

fn create(path: &Path) -> Result<bool, DataDirError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => return Ok(false),
        Ok(_) => {
            return Err(DataDirError::NotADirectory {
                path: path.to_owned(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(DataDirError::Io {
                path: path.to_owned(),
                action: "cannot read its metadata",
                source,
            })
        }
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| DataDirError::Io {
            path: parent.to_owned(),
            action: "cannot create the parent directory",
            source,
        })?;
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match builder.create(path) {
        Ok(()) => Ok(true),
        // Another process made it in between: judge it as an existing directory.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(source) => Err(DataDirError::Io {
            path: path.to_owned(),
            action: "cannot create the directory",
            source,
        }),
    }
}

#[cfg(unix)]
mod imp {
    use std::fs::{self, Permissions};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::Path;

    use super::{DataDirError, DirState};

    const GROUP_OTHER: u32 = 0o077;
    const GROUP_OTHER_WRITE: u32 = 0o022;

    /// The effective uid of this process: the owner of `/proc/self` on Linux, else the owner of
    /// a directory this process has just created (`fallback`).
    fn our_uid(fallback: Option<u32>) -> Option<u32> {
        fs::metadata("/proc/self")
            .map(|m| m.uid())
            .ok()
            .or(fallback)
    }

    fn io<'a>(
        path: &'a Path,
        action: &'static str,
    ) -> impl FnOnce(std::io::Error) -> DataDirError + 'a {
        move |source| DataDirError::Io {
            path: path.to_owned(),
            action,
            source,
        }
    }

    fn check_owner(path: &Path, meta: &fs::Metadata, us: Option<u32>) -> Result<(), DataDirError> {
        match us {
            Some(us) if meta.uid() != us => Err(DataDirError::OtherOwner {
                path: path.to_owned(),
                owner: meta.uid(),
                us,
            }),
            _ => Ok(()),
        }
    }

    pub(super) fn check_and_tighten_dir(
        path: &Path,
        created: bool,
    ) -> Result<DirState, DataDirError> {
        let meta = fs::metadata(path).map_err(io(path, "cannot read its metadata"))?;
        let us = our_uid(created.then_some(meta.uid()));
        check_owner(path, &meta, us)?;
        let mode = meta.mode() & 0o7777;
        if created {
            // The umask may have taken bits away from 0700, never added any; make it exact.
            if mode & 0o777 != 0o700 {
                set_mode(path, 0o700)?;
            }
            return Ok(DirState::Created);
        }
        if mode & GROUP_OTHER_WRITE != 0 {
            return Err(DataDirError::WritableByOthers {
                path: path.to_owned(),
                mode,
            });
        }
        if mode & GROUP_OTHER == 0 {
            return Ok(DirState::AlreadyPrivate);
        }
        set_mode(path, 0o700)?;
        Ok(DirState::Tightened { mode_before: mode })
    }

    fn set_mode(path: &Path, mode: u32) -> Result<(), DataDirError> {
        fs::set_permissions(path, Permissions::from_mode(mode))
            .map_err(io(path, "cannot change its mode"))
    }

    pub(super) fn tighten_tree(dir: &Path) -> Result<usize, DataDirError> {
        let mut changed = 0;
        // An explicit stack instead of recursion: a bound on nothing but the tree itself, and no
        // stack overflow on a deep one.
        let mut pending = vec![dir.to_owned()];
        while let Some(current) = pending.pop() {
            let entries = fs::read_dir(&current).map_err(io(&current, "cannot list it"))?;
            for entry in entries {
                let entry = entry.map_err(io(&current, "cannot list it"))?;
                let path = entry.path();
                let meta =
                    fs::symlink_metadata(&path).map_err(io(&path, "cannot read its metadata"))?;
                let want = if meta.is_dir() {
                    pending.push(path.clone());
                    0o700
                } else if meta.is_file() {
                    0o600
                } else {
                    continue; // symbolic links, sockets, fifos: not ours to change
                };
                if meta.mode() & 0o777 & !want != 0 {
                    set_mode(&path, want)?;
                    changed += 1;
                }
            }
        }
        Ok(changed)
    }

    pub(super) fn secure_file(path: &Path) -> Result<bool, DataDirError> {
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(DataDirError::Io {
                    path: path.to_owned(),
                    action: "cannot read its metadata",
                    source,
                })
            }
        };
        check_owner(path, &meta, our_uid(None))?;
        if meta.mode() & GROUP_OTHER != 0 {
            set_mode(path, 0o600)?;
        }
        Ok(true)
    }
}

#[cfg(not(unix))]
mod imp {
    use std::path::Path;

    use super::{DataDirError, DirState};

    pub(super) fn check_and_tighten_dir(_: &Path, created: bool) -> Result<DirState, DataDirError> {
        Ok(if created {
            DirState::Created
        } else {
            DirState::AlreadyPrivate
        })
    }

    pub(super) fn tighten_tree(_: &Path) -> Result<usize, DataDirError> {
        Ok(0)
    }

    pub(super) fn secure_file(path: &Path) -> Result<bool, DataDirError> {
        Ok(path.exists())
    }
}
