//! History of `.kplug/stats`: the daemon samples the snapshot every `--history-period`
//! (default 1 s) into a SQLite database, and `kplugfs stats --history` reads it back.
//!
//! **Off the request path.** One thread (`kplugfs-history`) owns the connection: it renders
//! the same document `cat .kplug/stats` shows (a few µs: the core's lock is held only to copy
//! its counters), inserts it, and every `PRUNE_EVERY` deletes rows older than
//! `--history-retention` (default 24 h). No FUSE worker ever touches the database. Any
//! database error is logged once, shown in `stats` as `history.error`, and ends the thread:
//! history is a convenience, never a reason to fail a mount or a read.
//!
//! **Layout.** One table, `snapshots`: the sample time, the key counters as integer columns
//! (so the common queries need no JSON parsing), and the whole document as `json` for
//! anything else. The database runs in WAL mode, so `kplugfs stats --history` reads while the
//! daemon writes. Counters are cumulative since the mount; a mount restarted on the same
//! database starts them again from 0 (`started_unix_ms` changes), which readers treat as a
//! reset. docs/METRICS.md documents the schema.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};

use super::schema::{HistoryInfo, Stats};

/// Default `--history-period`.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(1);
/// Default `--history-retention`: a day of 1 s samples is 86,400 rows of ~3 KiB, about
/// 250 MiB at most; a day is enough to look back at last night's run.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Prune old rows at most this often (a DELETE on the time index; cheap, but no need to run
/// it every second).
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// The schema, created when missing.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS snapshots (
    time_ms                INTEGER NOT NULL,
    started_unix_ms        INTEGER NOT NULL,
    uptime_ms              INTEGER NOT NULL,
    cache_hits             INTEGER NOT NULL,
    cache_misses           INTEGER NOT NULL,
    cache_evictions        INTEGER NOT NULL,
    cache_resident_blocks  INTEGER NOT NULL,
    cache_capacity_blocks  INTEGER NOT NULL,
    prefetch_issued_blocks INTEGER NOT NULL,
    prefetch_used_blocks   INTEGER NOT NULL,
    prefetch_wasted_blocks INTEGER NOT NULL,
    backend_reads          INTEGER NOT NULL,
    backend_bytes          INTEGER NOT NULL,
    fuse_reads             INTEGER NOT NULL,
    fuse_read_bytes        INTEGER NOT NULL,
    json                   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshots_time ON snapshots (time_ms);
";

/// Where history goes and how long it stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryConfig {
    /// The database file.
    pub path: PathBuf,
    /// Time between samples (not zero).
    pub period: Duration,
    /// Rows older than this are deleted.
    pub retention: Duration,
}

/// The default database of a mount at `mountpoint` (canonical):
/// `/var/lib/kplugfs/history/<mountpoint, / replaced by _>.db` for root, else
/// `$XDG_STATE_HOME/kplugfs/history/...` or `~/.local/state/kplugfs/history/...`.
pub fn default_path(mountpoint: &Path) -> PathBuf {
    let name = format!("{}.db", mountpoint.to_string_lossy().replace('/', "_"));
    let dir = if nix::unistd::geteuid().is_root() {
        PathBuf::from("/var/lib/kplugfs")
    } else if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
        PathBuf::from(x).join("kplugfs")
    } else {
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
        PathBuf::from(home).join(".local/state/kplugfs")
    };
    dir.join("history").join(name)
}

/// What `stats` shows about the history writer.
#[derive(Debug)]
pub struct HistoryState {
    config: HistoryConfig,
    rows: AtomicU64,
    error: Mutex<Option<String>>,
}

impl HistoryState {
    /// The state of a writer that has not started yet.
    pub fn new(config: HistoryConfig) -> Self {
        Self {
            config,
            rows: AtomicU64::new(0),
            error: Mutex::new(None),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &HistoryConfig {
        &self.config
    }

    /// The `history` object of `.kplug/stats`.
    pub fn info(&self) -> HistoryInfo {
        HistoryInfo {
            error: self.error.lock().clone(),
            path: self.config.path.to_string_lossy().into_owned(),
            period_ms: self.config.period.as_millis() as u64,
            retention_ms: self.config.retention.as_millis() as u64,
            rows_written: self.rows.load(Ordering::Relaxed),
        }
    }
}

/// One row of `snapshots`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    /// Sample time, ms since the epoch.
    pub time_ms: u64,
    /// When the mount that wrote it started, ms since the epoch.
    pub started_unix_ms: u64,
    /// Mount uptime at the sample.
    pub uptime_ms: u64,
    /// Cumulative cache hits (blocks).
    pub cache_hits: u64,
    /// Cumulative cache misses (blocks).
    pub cache_misses: u64,
    /// Cumulative evictions.
    pub cache_evictions: u64,
    /// Resident blocks at the sample.
    pub cache_resident_blocks: u64,
    /// Capacity in blocks.
    pub cache_capacity_blocks: u64,
    /// Cumulative prefetch blocks issued.
    pub prefetch_issued_blocks: u64,
    /// Cumulative prefetched blocks used.
    pub prefetch_used_blocks: u64,
    /// Cumulative prefetched blocks wasted.
    pub prefetch_wasted_blocks: u64,
    /// Cumulative backend data reads.
    pub backend_reads: u64,
    /// Cumulative backend bytes.
    pub backend_bytes: u64,
    /// Cumulative FUSE read requests.
    pub fuse_reads: u64,
    /// Cumulative bytes returned by FUSE reads.
    pub fuse_read_bytes: u64,
}

impl Sample {
    /// The key counters of a `.kplug/stats` document.
    pub fn from_stats(doc: &Stats) -> Self {
        // No `read` entry yet: the mount has served no read.
        let (fuse_reads, fuse_read_bytes) =
            doc.fuse.get("read").map_or((0, 0), |r| (r.count, r.bytes));
        Sample {
            time_ms: doc.time_unix_ms,
            started_unix_ms: doc.time_unix_ms.saturating_sub(doc.uptime_ms),
            uptime_ms: doc.uptime_ms,
            cache_hits: doc.cache.hits,
            cache_misses: doc.cache.misses,
            cache_evictions: doc.cache.evictions,
            cache_resident_blocks: doc.cache.resident_blocks,
            cache_capacity_blocks: doc.cache.capacity_blocks,
            prefetch_issued_blocks: doc.prefetch.issued_blocks,
            prefetch_used_blocks: doc.prefetch.used_blocks,
            prefetch_wasted_blocks: doc.prefetch.wasted_blocks,
            backend_reads: doc.backend.reads,
            backend_bytes: doc.backend.bytes,
            fuse_reads,
            fuse_read_bytes,
        }
    }

    fn columns(&self) -> [i64; 15] {
        [
            self.time_ms,
            self.started_unix_ms,
            self.uptime_ms,
            self.cache_hits,
            self.cache_misses,
            self.cache_evictions,
            self.cache_resident_blocks,
            self.cache_capacity_blocks,
            self.prefetch_issued_blocks,
            self.prefetch_used_blocks,
            self.prefetch_wasted_blocks,
            self.backend_reads,
            self.backend_bytes,
            self.fuse_reads,
            self.fuse_read_bytes,
        ]
        .map(|v| v.min(i64::MAX as u64) as i64)
    }
}

const COLUMNS: &str = "time_ms, started_unix_ms, uptime_ms, cache_hits, cache_misses, \
    cache_evictions, cache_resident_blocks, cache_capacity_blocks, prefetch_issued_blocks, \
    prefetch_used_blocks, prefetch_wasted_blocks, backend_reads, backend_bytes, fuse_reads, \
    fuse_read_bytes";

/// A history database.
#[derive(Debug)]
pub struct HistoryDb {
    conn: Connection,
}

impl HistoryDb {
    /// Open (creating it and its directory if needed) a database to write.
    pub fn create(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        // WAL: readers (kplugfs stats --history) never block the writer, nor it them.
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .with_context(|| format!("{}: setting WAL mode", path.display()))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "history: WAL mode refused");
        }
        // One sample a second needs no fsync each: a crash loses at most the last few.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)
            .with_context(|| format!("{}: creating the schema", path.display()))?;
        Ok(Self { conn })
    }

    /// Open an existing database to read.
    pub fn open_read(path: &Path) -> Result<Self> {
        if !path.exists() {
            anyhow::bail!("history database {} does not exist", path.display());
        }
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("opening {}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(2))?;
        let has_table: Option<i64> = conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'snapshots'",
                [],
                |r| r.get(0),
            )
            .optional()
            .with_context(|| format!("{} is not a kplugfs history database", path.display()))?;
        if has_table.is_none() {
            anyhow::bail!("{} is not a kplugfs history database", path.display());
        }
        Ok(Self { conn })
    }

    /// Store one `.kplug/stats` document.
    pub fn insert(&self, doc: &Stats) -> Result<()> {
        let c = Sample::from_stats(doc).columns();
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO snapshots ({COLUMNS}, json) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
            ))?
            .execute(params![
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                c[5],
                c[6],
                c[7],
                c[8],
                c[9],
                c[10],
                c[11],
                c[12],
                c[13],
                c[14],
                serde_json::to_string(doc)?
            ])?;
        Ok(())
    }

    /// The whole documents sampled at or after `since_ms`, oldest first.
    pub fn documents(&self, since_ms: u64) -> Result<Vec<Stats>> {
        let mut st = self
            .conn
            .prepare("SELECT json FROM snapshots WHERE time_ms >= ?1 ORDER BY time_ms, rowid")?;
        let rows = st.query_map(params![since_ms.min(i64::MAX as u64) as i64], |r| {
            r.get::<_, String>(0)
        })?;
        let mut out = Vec::new();
        for json in rows {
            let json = json?;
            out.push(
                serde_json::from_str(&json)
                    .with_context(|| format!("a history row does not parse: {json:.80}"))?,
            );
        }
        Ok(out)
    }

    /// Delete the rows sampled before `before_ms` (ms since the epoch); returns how many.
    pub fn prune(&self, before_ms: u64) -> Result<usize> {
        Ok(self.conn.execute(
            "DELETE FROM snapshots WHERE time_ms < ?1",
            params![before_ms.min(i64::MAX as u64) as i64],
        )?)
    }

    /// Samples at or after `since_ms`, oldest first.
    pub fn samples(&self, since_ms: u64) -> Result<Vec<Sample>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM snapshots WHERE time_ms >= ?1 ORDER BY time_ms, rowid"
        ))?;
        let rows = st.query_map(params![since_ms.min(i64::MAX as u64) as i64], |r| {
            let g = |i: usize| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
            Ok(Sample {
                time_ms: g(0)?,
                started_unix_ms: g(1)?,
                uptime_ms: g(2)?,
                cache_hits: g(3)?,
                cache_misses: g(4)?,
                cache_evictions: g(5)?,
                cache_resident_blocks: g(6)?,
                cache_capacity_blocks: g(7)?,
                prefetch_issued_blocks: g(8)?,
                prefetch_used_blocks: g(9)?,
                prefetch_wasted_blocks: g(10)?,
                backend_reads: g(11)?,
                backend_bytes: g(12)?,
                fuse_reads: g(13)?,
                fuse_read_bytes: g(14)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Rows in the table.
    pub fn len(&self) -> Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM snapshots", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    /// True when the table has no row.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Start the history thread: every period it stores what `source` renders, and stops when
/// `source` answers `None` (the mount is going away) or at the first database error.
pub fn spawn(
    source: impl Fn() -> Option<Stats> + Send + 'static,
    state: std::sync::Arc<HistoryState>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("kplugfs-history".into())
        .spawn(move || {
            if let Err(e) = run(&source, &state) {
                let msg = format!("{e:#}");
                tracing::error!("history disabled: {msg}");
                *state.error.lock() = Some(msg);
            }
        })?;
    Ok(())
}

fn run(source: &impl Fn() -> Option<Stats>, state: &HistoryState) -> Result<()> {
    let cfg = &state.config;
    let db = HistoryDb::create(&cfg.path)?;
    let retention_ms = cfg.retention.as_millis() as u64;
    db.prune(now_ms().saturating_sub(retention_ms))?;
    tracing::info!(path = %cfg.path.display(), period = ?cfg.period, "history on");
    let mut next = Instant::now();
    let mut last_prune = Instant::now();
    loop {
        next += cfg.period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            // Fell behind (a slow disk): skip the missed samples rather than bursting.
            next = now;
        }
        let Some(doc) = source() else {
            return Ok(());
        };
        db.insert(&doc)?;
        state.rows.fetch_add(1, Ordering::Relaxed);
        if last_prune.elapsed() >= PRUNE_EVERY {
            db.prune(now_ms().saturating_sub(retention_ms))?;
            last_prune = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::schema::FuseOpStats;

    fn doc(time_ms: u64, hits: u64) -> Stats {
        let mut d = Stats {
            time_unix_ms: time_ms,
            uptime_ms: 500,
            ..Stats::default()
        };
        d.cache.hits = hits;
        d.cache.misses = 3;
        d.cache.evictions = 1;
        d.cache.resident_blocks = 7;
        d.cache.capacity_blocks = 16;
        d.prefetch.issued_blocks = 9;
        d.prefetch.used_blocks = 4;
        d.prefetch.wasted_blocks = 2;
        d.backend.reads = 5;
        d.backend.bytes = 5 << 17;
        d.fuse.insert(
            "read".into(),
            FuseOpStats {
                count: 11,
                bytes: 1 << 20,
                ..FuseOpStats::default()
            },
        );
        d
    }

    #[test]
    fn insert_and_read_back_key_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/h.db");
        let db = HistoryDb::create(&path).unwrap();
        db.insert(&doc(10_000, 1)).unwrap();
        db.insert(&doc(11_000, 2)).unwrap();
        let r = HistoryDb::open_read(&path).unwrap();
        let s = r.samples(0).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].time_ms, 10_000);
        assert_eq!(s[1].cache_hits, 2);
        assert_eq!(s[1].started_unix_ms, 10_500);
        assert_eq!(s[1].backend_bytes, 5 << 17);
        assert_eq!(s[1].fuse_read_bytes, 1 << 20);
        assert_eq!(s[1].prefetch_wasted_blocks, 2);
        assert_eq!(r.samples(10_001).unwrap().len(), 1);
        let mode: String = db
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(
            r.documents(0).unwrap(),
            vec![doc(10_000, 1), doc(11_000, 2)]
        );
    }

    #[test]
    fn retention_prunes_only_old_rows() {
        let dir = tempfile::tempdir().unwrap();
        let db = HistoryDb::create(&dir.path().join("h.db")).unwrap();
        let now = now_ms();
        let day = 24 * 3600 * 1000;
        for t in [now - 3 * day, now - 2 * day, now - day - 1, now - 1000, now] {
            db.insert(&doc(t, t % 97)).unwrap();
        }
        assert_eq!(db.len().unwrap(), 5);
        let removed = db
            .prune(now - DEFAULT_RETENTION.as_millis() as u64)
            .unwrap();
        assert_eq!(removed, 3);
        let left: Vec<u64> = db.samples(0).unwrap().iter().map(|s| s.time_ms).collect();
        assert_eq!(left, [now - 1000, now]);
        assert_eq!(db.prune(now - day).unwrap(), 0);
    }

    #[test]
    fn open_read_refuses_missing_and_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.db");
        let err = HistoryDb::open_read(&missing).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x INTEGER)")
            .unwrap();
        let err = HistoryDb::open_read(&other).unwrap_err().to_string();
        assert!(err.contains("not a kplugfs history database"), "{err}");
    }

    #[test]
    fn create_fails_cleanly_where_it_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        // A directory under a regular file cannot be created.
        assert!(HistoryDb::create(&file.join("h.db")).is_err());
    }

    #[test]
    fn default_path_flattens_the_mountpoint() {
        let p = default_path(Path::new("/mnt/data"));
        assert_eq!(p.file_name().unwrap(), "_mnt_data.db");
        assert!(
            p.parent().unwrap().ends_with("kplugfs/history"),
            "{}",
            p.display()
        );
    }
}
