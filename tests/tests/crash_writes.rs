//! `kill -9` of the daemon while writers write: no acknowledged byte is lost. Without the
//! kernel's writeback cache every `write(2)` reaches the daemon, which writes the backing
//! file before it answers; so a write that returned, and all the more one followed by an
//! `fsync` that returned, is in the backing file whatever happens to the daemon after.
#![cfg(feature = "mount-tests")]

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kplugfs_tests::TestMount;

/// The byte at `pos` of writer `w`'s file.
fn byte(w: u64, pos: u64) -> u8 {
    (pos.wrapping_mul(2_654_435_761).wrapping_add(w * 7919) >> 13) as u8
}

fn daemon_pid(mnt: &std::path::Path) -> u32 {
    let out = Command::new("pgrep")
        .arg("-f")
        .arg(format!("kplugfs mount .* {}", mnt.display()))
        .output()
        .unwrap();
    let pids: Vec<u32> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(pids.len(), 1, "one daemon for {}: {pids:?}", mnt.display());
    pids[0]
}

#[test]
fn kill_9_during_writes_loses_no_acknowledged_byte() {
    let m = Arc::new(TestMount::new(&[]));
    // (record size, fsync after each record): 4 KiB plain writes, 4 KiB and 128 KiB with
    // fsync, 1 MiB plain.
    let writers: Vec<(usize, bool)> = vec![
        (4096, false),
        (4096, true),
        (128 << 10, true),
        (1 << 20, false),
    ];
    let acked: Arc<Vec<AtomicU64>> = Arc::new(writers.iter().map(|_| AtomicU64::new(0)).collect());
    let threads: Vec<_> = writers
        .iter()
        .enumerate()
        .map(|(w, &(rec, sync))| {
            let (m, acked) = (m.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut f = OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(true)
                    .open(m.m(&format!("w{w}")))
                    .unwrap();
                let mut pos = 0u64;
                loop {
                    let buf: Vec<u8> = (pos..pos + rec as u64).map(|p| byte(w as u64, p)).collect();
                    if f.write_all(&buf).is_err() {
                        return;
                    }
                    if sync && f.sync_data().is_err() {
                        return;
                    }
                    pos += rec as u64;
                    acked[w].store(pos, Ordering::SeqCst);
                    // Bounded: the daemon is killed long before this.
                    if pos > 256 << 20 {
                        return;
                    }
                }
            })
        })
        .collect();
    // Let every writer get going.
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.iter().any(|a| a.load(Ordering::SeqCst) < 2 << 20) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = daemon_pid(&m.mnt);
    assert!(
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let at_kill: Vec<u64> = acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();
    for t in threads {
        t.join().unwrap();
    }
    for (w, &(rec, _)) in writers.iter().enumerate() {
        let done = acked[w].load(Ordering::SeqCst);
        assert!(done >= at_kill[w] && done > 0, "writer {w} wrote nothing");
        let got = fs::read(m.b(&format!("w{w}"))).unwrap();
        assert!(
            got.len() as u64 >= done,
            "writer {w} ({rec} B records): {done} bytes acknowledged, {} in the backing file",
            got.len()
        );
        let bad = (0..done).find(|&p| got[p as usize] != byte(w as u64, p));
        assert_eq!(bad, None, "writer {w}: acknowledged byte {bad:?} differs");
    }
    // The dead mount: detach it (TestMount's drop finds it gone).
    let _ = Command::new("umount").arg("-l").arg(&m.mnt).status();
}
