//! `mount-s3-peer`: mountpoint-s3 (the `mountpoint-s3-fs` 0.11.0 library, the `mount-s3`
//! command's filesystem) as a read-only peer of `scripts/bench.sh --only s3`.
//!
//! The `mount-s3` command itself is not on crates.io; this is its `run.rs` cut down to what a
//! benchmark against an S3-compatible server needs, with mount-s3's defaults everywhere else:
//! 8 MiB parts, 16 FUSE threads, no data cache, minimal metadata TTL, memory target 95 % of
//! RAM. Read-only (mountpoint-s3's writes fail against Ceph RGW 16.2: the empty ETag of
//! CompleteMultipartUpload), path-style requests, an explicit throughput target (otherwise it
//! asks EC2 instance metadata). Keys come from the AWS_* variables.
//!
//! ```text
//! mount-s3-peer s3://BUCKET[/PREFIX/] MOUNTPOINT --endpoint-url http://127.0.0.1:7480
//! ```
//!
//! It stays in the foreground until the mount is unmounted (`fusermount -u MOUNTPOINT`) or it
//! gets SIGINT/SIGTERM; the bench script runs it in the background and waits for the mount.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use clap::Parser;
use mountpoint_s3_client::config::{AddressingStyle, S3ClientAuthConfig};
use mountpoint_s3_client::user_agent::UserAgent;
use mountpoint_s3_fs::data_cache::DataCacheConfig;
use mountpoint_s3_fs::fs::{CacheConfig, TimeToLive};
use mountpoint_s3_fs::fuse::config::{FuseOptions, FuseSessionConfig, MountPoint};
use mountpoint_s3_fs::logging::{LoggingConfig, init_logging};
use mountpoint_s3_fs::memory::{CandidateSize, MINIMUM_MEM_LIMIT, PagedPool, effective_total_memory};
use mountpoint_s3_fs::s3::S3Path;
use mountpoint_s3_fs::s3::config::{
    ClientConfig, MemoryLimitSetting, PartConfig, Region, TargetThroughputSetting,
};
use mountpoint_s3_fs::{
    MountpointConfig, Runtime, S3FilesystemConfig, Superblock, SuperblockConfig, metrics,
};

#[derive(Debug, Parser)]
#[command(about = "mountpoint-s3 (mountpoint-s3-fs 0.11.0), read-only, as a benchmark peer")]
struct Args {
    /// s3://BUCKET or s3://BUCKET/PREFIX/ (the prefix ends in `/`).
    source: String,
    /// The directory to mount on.
    mount_point: PathBuf,
    /// The S3 endpoint, e.g. http://127.0.0.1:7480.
    #[arg(long)]
    endpoint_url: String,
    /// Region to sign with.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Part size of GETs, bytes (mount-s3's default: 8 MiB).
    #[arg(long, default_value_t = 8 << 20)]
    part_size: u64,
    /// FUSE threads (mount-s3's default: 16).
    #[arg(long, default_value_t = 16)]
    max_threads: u64,
    /// Throughput target, Gbit/s: the CRT client's concurrency follows from it (mount-s3's
    /// default when it cannot ask EC2: 10).
    #[arg(long, default_value_t = 10.0)]
    maximum_throughput_gbps: f64,
    /// Write the log here (default: stderr, warnings only).
    #[arg(long)]
    log_file: Option<PathBuf>,
    /// Log at debug level.
    #[arg(long)]
    debug: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _logging = init_logging(LoggingConfig {
        log_file: args.log_file.clone(),
        log_to_stdout: args.log_file.is_none(),
        default_filter: if args.debug {
            "debug".into()
        } else {
            format!("warn,mountpoint_s3=info,awscrt=off,{}=off", metrics::TARGET_NAME)
        },
    })
    .context("logging")?;
    let _metrics = metrics::install(None).map_err(|e| anyhow!("metrics: {e}"))?;

    let s3_path = S3Path::parse_s3_uri(&args.source).context("the source")?;
    let fuse_config = FuseSessionConfig::new(
        MountPoint::new(&args.mount_point).context("the mount point")?,
        FuseOptions {
            read_only: true,
            allow_other: true,
            ..FuseOptions::default()
        },
        args.max_threads as usize,
    )?;

    // mount-s3's default memory target: 95 % of the machine's memory.
    let memory_limit = MemoryLimitSetting::Default(
        ((effective_total_memory() as f64 * 0.95) as usize).max(MINIMUM_MEM_LIMIT),
    );
    let part = args.part_size as usize;
    let client_config = ClientConfig {
        region: Region::new_user_specified(args.region.clone()),
        endpoint_url: Some(args.endpoint_url.clone()),
        addressing_style: AddressingStyle::Path,
        dual_stack: false,
        transfer_acceleration: false,
        auth_config: S3ClientAuthConfig::Default,
        requester_pays: false,
        expected_bucket_owner: None,
        throughput_target: TargetThroughputSetting::User {
            gbps: args.maximum_throughput_gbps,
        },
        bind: None,
        part_config: PartConfig::with_read_write_sizes(part, part).validate(memory_limit)?,
        user_agent: UserAgent::new(Some("kplugfs-bench mountpoint-s3-fs/0.11.0".into())),
        tls_config: None,
    };
    let pool = PagedPool::config()
        .with_candidate_sizes([
            CandidateSize::prunable(1 << 20),
            CandidateSize::prunable(client_config.part_config.read_size_bytes),
            CandidateSize::new(client_config.part_config.write_size_bytes),
        ])
        .with_memory_limit(memory_limit.bytes())
        .with_maintenance_interval(Duration::from_secs(60))
        .build();
    let client = client_config
        .create_client(pool.clone(), Some(&s3_path))
        .context("S3 client")?;
    let runtime = Runtime::new(client.event_loop_group());
    let personality = mountpoint_s3_fs::s3::S3Personality::Standard;

    let fs_config = S3FilesystemConfig {
        cache_config: CacheConfig::new(TimeToLive::Minimal),
        s3_personality: personality,
        upload_checksum_algorithm: None,
        read_only: true,
        ..S3FilesystemConfig::default()
    };
    let superblock = Superblock::new(
        client.clone(),
        s3_path.clone(),
        SuperblockConfig {
            cache_config: fs_config.cache_config.clone(),
            s3_personality: personality,
        },
    );
    let session = MountpointConfig::new(fuse_config, fs_config, DataCacheConfig::default())?
        .create_fuse_session(superblock, client, runtime, pool)?;
    println!(
        "{} is mounted at {}",
        s3_path.bucket_description(),
        args.mount_point.display()
    );
    session.join().context("the FUSE session")
}
