//! Learned quota kept across restarts.
//!
//! What the upstreams said about each account's windows (utilization, resets, statuses —
//! never a credential) is captured from the pools in memory and written by a background
//! task every [`SAVE_EVERY`] and once more at shutdown; nothing on the request path touches
//! the disk. At start the last capture is restored and windows that reset in the meantime
//! are dropped (the scheduler clears stale windows on first use too).
//!
//! Storage sits behind [`QuotaStore`] so a database can back it later; [`JsonQuotaFile`]
//! is the file implementation: `quota.json` under `data_dir`, replaced atomically (temp
//! file, fsync, rename, fsync of the directory), readable by its owner only.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_scheduler::{SavedQuota, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::state::{AppState, now};

/// How often the saver looks for new quota to write.
pub const SAVE_EVERY: Duration = Duration::from_secs(30);

/// The file name under `data_dir`.
pub const QUOTA_FILE: &str = "quota.json";

const FORMAT_VERSION: u32 = 1;

/// Every pool's learned quota, by provider name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QuotaSnapshot {
    pub version: u32,
    pub saved_at: Timestamp,
    pub pools: BTreeMap<String, Vec<SavedQuota>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("could not read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a quota file this sluice can read ({message}); it was moved aside to {aside} and sluice starts without it"
    )]
    Unreadable {
        path: PathBuf,
        aside: PathBuf,
        message: String,
    },
    #[error("could not write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where learned quota is kept between runs. Small on purpose: a database can back it.
pub trait QuotaStore: Send + Sync + 'static {
    /// The last snapshot saved, if any.
    fn load(&self) -> Result<Option<QuotaSnapshot>, StoreError>;
    /// Replace the saved snapshot, durably.
    fn save(&self, snapshot: &QuotaSnapshot) -> Result<(), StoreError>;
}

/// The snapshot as one JSON file.
pub struct JsonQuotaFile {
    path: PathBuf,
}

impl JsonQuotaFile {
    pub fn new(path: PathBuf) -> Self {
        JsonQuotaFile { path }
    }

    /// `quota.json` in `data_dir`.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        JsonQuotaFile::new(data_dir.join(QUOTA_FILE))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl QuotaStore for JsonQuotaFile {
    fn load(&self) -> Result<Option<QuotaSnapshot>, StoreError> {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let message = match serde_json::from_slice::<QuotaSnapshot>(&text) {
            Ok(snapshot) if snapshot.version == FORMAT_VERSION => return Ok(Some(snapshot)),
            Ok(snapshot) => format!("format version {}", snapshot.version),
            Err(e) => e.to_string(),
        };
        // Keep the unreadable file for whoever wants to look at it; never overwrite it.
        let aside = self
            .path
            .with_extension(format!("json.unreadable-{}", now().as_millis()));
        std::fs::rename(&self.path, &aside).map_err(|source| StoreError::Read {
            path: self.path.clone(),
            source,
        })?;
        Err(StoreError::Unreadable {
            path: self.path.clone(),
            aside,
            message,
        })
    }

    fn save(&self, snapshot: &QuotaSnapshot) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(snapshot).expect("a quota snapshot serializes");
        write_atomically(&self.path, &bytes).map_err(|source| StoreError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

/// Write `bytes` to `path` so that a crash leaves either the old file or the new one.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    let name = path
        .file_name()
        .map_or_else(|| "quota".into(), |n| n.to_string_lossy().into_owned());
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = (|| {
        let mut file = options.open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, path)?;
        // Make the rename itself durable.
        #[cfg(unix)]
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Every pool's learned quota, now (in memory, under each pool's short lock).
pub fn capture(app: &AppState) -> QuotaSnapshot {
    QuotaSnapshot {
        version: FORMAT_VERSION,
        saved_at: now(),
        pools: app
            .pools()
            .map(|pool| {
                (
                    pool.provider.as_str().to_owned(),
                    pool.with(|p| p.export_quota()),
                )
            })
            .collect(),
    }
}

/// Put a saved snapshot back into the pools; windows that have reset since are dropped.
pub fn restore(app: &AppState, snapshot: &QuotaSnapshot) {
    let at = now();
    for pool in app.pools() {
        if let Some(saved) = snapshot.pools.get(pool.provider.as_str()) {
            pool.update(|p| p.restore_quota(saved, at));
        }
    }
}

/// Load from `store` into the pools at start. A store that cannot be read is reported and
/// sluice starts without it.
pub fn restore_from(app: &AppState, store: &dyn QuotaStore) {
    match store.load() {
        Ok(Some(snapshot)) => {
            restore(app, &snapshot);
            tracing::info!(saved_at = %snapshot.saved_at, "restored learned quota");
        }
        Ok(None) => {}
        Err(error) => tracing::warn!(%error, "starting without saved quota"),
    }
}

/// The background saver: every `every`, write the quota if it changed; once more when
/// `cancel` fires. Await the handle to be sure the last write is done.
pub fn spawn_saver(
    app: AppState,
    store: Arc<dyn QuotaStore>,
    every: Duration,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let span = tracing::info_span!("quota-saver");
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            let mut written = capture(&app).pools;
            loop {
                let stopping = tokio::select! {
                    () = cancel.cancelled() => true,
                    () = tokio::time::sleep(every) => false,
                };
                let snapshot = capture(&app);
                if snapshot.pools != written {
                    let store = store.clone();
                    let pools = snapshot.pools.clone();
                    match tokio::task::spawn_blocking(move || store.save(&snapshot)).await {
                        Ok(Ok(())) => written = pools,
                        Ok(Err(error)) => tracing::warn!(%error, "could not save learned quota"),
                        Err(error) => tracing::warn!(%error, "quota save task failed"),
                    }
                }
                if stopping {
                    return;
                }
            }
        },
        span,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_round_trips_privately_and_a_bad_one_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let store = JsonQuotaFile::in_data_dir(&dir.path().join("nested"));
        assert!(store.load().unwrap().is_none());
        let mut snapshot = QuotaSnapshot {
            version: FORMAT_VERSION,
            saved_at: Timestamp::from_secs(1_800_000_000),
            pools: BTreeMap::new(),
        };
        snapshot.pools.insert("anthropic".into(), Vec::new());
        store.save(&snapshot).unwrap();
        assert_eq!(store.load().unwrap(), Some(snapshot.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(store.path().parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers.len(),
            1,
            "no temp file left behind: {leftovers:?}"
        );

        std::fs::write(store.path(), b"{ not json").unwrap();
        let error = store.load().unwrap_err();
        assert!(matches!(error, StoreError::Unreadable { .. }), "{error}");
        assert!(!store.path().exists());
        let kept = std::fs::read_dir(store.path().parent().unwrap())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("unreadable")
            })
            .count();
        assert_eq!(kept, 1, "the bad file is kept, not lost");
        store.save(&snapshot).unwrap();
        assert_eq!(store.load().unwrap(), Some(snapshot));
    }
}
