//! `kplugfs stats MOUNT --watch`: redraw the summary every interval, with the rates over the
//! last interval, until Ctrl-C or until the mount goes away.

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::snapshot;
use super::summary::summary;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn catch_ctrl_c() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let act = SigAction::new(
        SigHandler::Handler(on_stop_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { sigaction(sig, &act) };
    }
}

/// Redraw until Ctrl-C (Ok) or until the mount goes away (an error saying so).
pub fn watch(mnt: &Path, interval: Duration) -> Result<()> {
    let mut prev = snapshot::read(mnt)?.stats;
    catch_ctrl_c();
    let mut out = std::io::stdout();
    let footer = format!(
        "(every {}; Ctrl-C to stop)",
        humantime::format_duration(interval)
    );
    // Clear the screen and home the cursor, then draw.
    write!(
        out,
        "\x1b[2J\x1b[H{}\n{footer}\n",
        summary(mnt, &prev, None)
    )?;
    out.flush()?;
    let stopped = |out: &mut std::io::Stdout| -> Result<()> {
        writeln!(out, "\nstopped watching {}", mnt.display())?;
        Ok(())
    };
    let mut next = Instant::now();
    loop {
        next += interval;
        loop {
            if STOP.load(Ordering::Relaxed) {
                return stopped(&mut out);
            }
            let now = Instant::now();
            if now >= next {
                break;
            }
            std::thread::sleep((next - now).min(Duration::from_millis(50)));
        }
        let doc = match snapshot::read(mnt) {
            Ok(s) => s.stats,
            Err(e) => bail!("{} went away, stopped watching ({e:#})", mnt.display()),
        };
        write!(
            out,
            "\x1b[2J\x1b[H{}\n{footer}\n",
            summary(mnt, &doc, Some(&prev))
        )?;
        out.flush()?;
        prev = doc;
    }
}
