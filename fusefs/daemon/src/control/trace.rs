//! `.kplug/trace`: read it for the recorder's state (JSON, rendered at open); write
//! `start /absolute/path.kplug` or `stop` to it, and its `close()` runs the command (EINVAL,
//! so the writer sees it, when the command is refused). `kplugfs trace record` drives it.

use std::sync::Arc;
use std::time::SystemTime;

use super::node::{Handles, Owner, keep_owner_and_mode, slice, write_at};
use crate::error::Result;
use crate::fs::{Attr, Caller, FileKind, Opened, SetAttr, Tree, TreeIds, Written};
use crate::fs_err;
use crate::monitor::recorder::Recorder;

/// Longest command: one short line; anything longer is not a command.
const MAX_COMMAND: usize = 4096;

/// An open handle: the state rendered at open, and the command being written.
struct Open {
    state: Vec<u8>,
    command: Vec<u8>,
}

/// The trace control file.
pub struct TraceFile {
    ids: TreeIds,
    owner: Owner,
    recorder: Arc<Recorder>,
    open: Handles<Open>,
}

impl TraceFile {
    /// `.kplug/trace` driving `recorder`.
    pub fn new(ids: TreeIds, owner: Owner, recorder: Arc<Recorder>) -> Self {
        Self {
            ids,
            owner,
            recorder,
            open: Handles::new(ids),
        }
    }

    /// Run a command written to the file: `start /absolute/path` or `stop`.
    fn command(&self, cmd: &[u8]) -> Result<()> {
        let text = String::from_utf8_lossy(cmd);
        let text = text.trim();
        let r = match text
            .split_once(char::is_whitespace)
            .map(|(a, b)| (a, b.trim()))
            .unwrap_or((text, ""))
        {
            ("start", path) if !path.is_empty() => self.recorder.start(std::path::Path::new(path)),
            ("stop", "") => self.recorder.stop().map(drop),
            _ => Err(format!(
                "unknown command {text:?} (expected `start /absolute/path` or `stop`)"
            )),
        };
        r.map_err(|msg| {
            tracing::warn!("trace: {msg}");
            fs_err!(libc::EINVAL, "trace: {msg}")
        })
    }
}

impl Tree for TraceFile {
    fn getattr(&self, ino: u64, _fh: Option<u64>) -> Result<Attr> {
        if ino != self.ids.root() {
            return Err(fs_err!(libc::ENOENT, "no such node"));
        }
        Ok(self
            .owner
            .attr(ino, FileKind::File, 0o644, 0, SystemTime::now()))
    }

    /// `echo stop > .kplug/trace` truncates first: commands replace, never append.
    fn setattr(&self, ino: u64, set: SetAttr) -> Result<Attr> {
        keep_owner_and_mode(&set)?;
        self.getattr(ino, None)
    }

    fn open(&self, _ino: u64, _flags: i32, _caller: Caller) -> Result<Opened> {
        let mut state = serde_json::to_string_pretty(&self.recorder.state()).expect("json");
        state.push('\n');
        Ok(Opened::direct(self.open.insert(Open {
            state: state.into_bytes(),
            command: Vec::new(),
        })))
    }

    fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        self.open.with(fh, |o| Ok(slice(&o.state, offset, size)))
    }

    fn write_through(
        &self,
        fh: u64,
        offset: u64,
        data: &[u8],
        _from_page_cache: bool,
    ) -> Result<Written> {
        self.open.with(fh, |o| {
            write_at(
                &mut o.command,
                offset as usize,
                data,
                MAX_COMMAND,
                "a .kplug/trace command is one short line",
            )?;
            Ok(Written {
                bytes: data.len() as u32,
                stale_pages: None,
            })
        })
    }

    fn flush(&self, fh: u64, _pid: u32) -> Result<()> {
        let cmd = self.open.with(fh, |o| Ok(std::mem::take(&mut o.command)))?;
        if cmd.is_empty() {
            return Ok(());
        }
        self.command(&cmd)
    }

    fn release(&self, fh: u64) -> Result<()> {
        self.open.remove(fh).map(drop)
    }
}
