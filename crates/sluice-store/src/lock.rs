//! One serving sluice per data directory.
//!
//! `sluice serve` holds an exclusive advisory lock on `data_dir/sluice.lock` for as long as it
//! runs, with its pid and listening address written inside. A second server on the same data
//! directory is refused: two processes refreshing the same rotating tokens would kill them.
//! The CLI reads the lock to learn whether a sluice is running and where (to signal it, to
//! reach it, to let it carry out a removal). The kernel drops the lock when the process dies,
//! however it dies, so a stale file never blocks a restart.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "sluice.lock";

/// The sluice that holds a data directory's lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningServer {
    pub pid: u32,
    /// The address it actually listens on (after `--listen` and port 0 are resolved).
    pub listen: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another sluice (pid {}) is already serving from {} on {}; two would refresh the same rotating tokens and lose them",
        .running.pid, .data_dir.display(), .running.listen
    )]
    Held {
        data_dir: PathBuf,
        running: RunningServer,
    },
    #[error("another sluice is already serving from {}", .0.display())]
    HeldUnknown(PathBuf),
    #[error("could not lock {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The held lock; dropping it releases the data directory.
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Take the data directory for a server listening on `listen`, or say who has it.
    pub fn acquire(data_dir: &Path, listen: SocketAddr) -> Result<DataDirLock, LockError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(io)?;
        let mut file = open_lock_file(&path).map_err(io)?;
        if !try_lock(&file).map_err(io)? {
            return Err(match read_info(&mut file) {
                Some(running) => LockError::Held {
                    data_dir: data_dir.to_path_buf(),
                    running,
                },
                None => LockError::HeldUnknown(data_dir.to_path_buf()),
            });
        }
        let info = RunningServer {
            pid: std::process::id(),
            listen,
        };
        let text = serde_json::to_string(&info).unwrap_or_default();
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(DataDirLock { file, path })
    }

    /// The running sluice serving from `data_dir`, if any.
    pub fn running(data_dir: &Path) -> Option<RunningServer> {
        let path = data_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new().read(true).write(true).open(&path).ok()?;
        match try_lock(&file) {
            // Nobody holds it: nothing is running. Our lock goes with the file handle.
            Ok(true) => None,
            Ok(false) => read_info(&mut file),
            Err(_) => None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        // Clear the contents so a reader never mistakes a stopped server for a running one;
        // the lock itself goes away with the file handle.
        let _ = self.file.set_len(0);
    }
}

fn open_lock_file(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

fn read_info(file: &mut File) -> Option<RunningServer> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// Try to take the exclusive lock without waiting: `Ok(false)` when someone else holds it.
#[cfg(unix)]
fn try_lock(file: &File) -> std::io::Result<bool> {
    use rustix::fs::{FlockOperation, flock};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> std::io::Result<bool> {
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_server_is_refused_and_the_lock_names_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let listen: SocketAddr = "127.0.0.1:8787".parse().unwrap();
        assert_eq!(DataDirLock::running(dir.path()), None);
        let lock = DataDirLock::acquire(dir.path(), listen).unwrap();
        let running = DataDirLock::running(dir.path()).expect("running");
        assert_eq!(running.pid, std::process::id());
        assert_eq!(running.listen, listen);
        let error = DataDirLock::acquire(dir.path(), listen).unwrap_err();
        assert!(error.to_string().contains("already serving"), "{error}");
        drop(lock);
        assert_eq!(DataDirLock::running(dir.path()), None);
        DataDirLock::acquire(dir.path(), listen).expect("free again");
    }
}
