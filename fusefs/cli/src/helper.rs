//! `mount.fuse.kplugfs`: kplugfs as mount(8)'s helper, so that `mount -t fuse.kplugfs SRC
//! DIR -o OPTS`, an /etc/fstab line and a systemd `.mount` unit work.
//!
//! mount(8) looks for `/sbin/mount.<type>` (util-linux's libmount; for `fuse.kplugfs` it
//! tries `mount.fuse.kplugfs` before falling back to fuse3's `mount.fuse`) and runs it as
//! `mount.fuse.kplugfs SRC DIR [-sfnv] [-o OPTS] [-t TYPE]`, then waits for it. The setup
//! script installs `/sbin/mount.fuse.kplugfs` as a symlink to `kplugfs`, and `main` sends
//! every invocation under a name starting with `mount.` here. This file only translates: a
//! mount is `kplugfs mount SRC DIR -o OPTS` (which returns once the mount is ready, its
//! daemon in the background), and `-o remount,...` is the daemon library's `remount` (the
//! kernel changes the live mount; no second daemon). Errors are one line on stderr with
//! mount(8)'s exit codes: 1 for bad usage or options, 32 for a mount that failed.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use crate::mount::{MountCmd, option_flags};

/// mount(8)'s exit code for incorrect invocation or permissions.
const EX_USAGE: u8 = 1;
/// mount(8)'s exit code for a mount failure.
const EX_FAIL: u8 = 32;

/// `kplugfs mount`'s options, parsed on their own.
#[derive(Debug, Parser)]
#[command(name = "mount.fuse.kplugfs", no_binary_name = true)]
struct HelperCli {
    #[command(flatten)]
    mount: MountCmd,
}

/// True when the program was started as a mount helper (`mount.fuse.kplugfs`, or any name
/// mount(8) might use: `mount.kplugfs`).
pub fn invoked_as_helper(argv0: &std::ffi::OsStr) -> bool {
    std::path::Path::new(argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("mount."))
}

/// True for the command line fuse3's `mount.fuse` runs when mount(8) finds no
/// `/sbin/mount.fuse.kplugfs` and falls back to it: `kplugfs SRC DIR [-o OPTS]`. SRC must
/// name a path or an `s3://` bucket (contain a `/`): no kplugfs command does, so a mistyped
/// command still gets clap's error, not a mount attempt.
pub fn is_fuse_call(argv: &[OsString]) -> bool {
    let (Some(src), Some(dir)) = (argv.get(1), argv.get(2)) else {
        return false;
    };
    let (src, dir) = (src.to_string_lossy(), dir.to_string_lossy());
    !src.starts_with('-') && !dir.starts_with('-') && src.contains('/')
}

/// One helper call, as mount(8) makes it.
#[derive(Debug, Default, PartialEq)]
pub struct HelperCall {
    /// SRC: a directory or s3://BUCKET[/PREFIX].
    pub source: OsString,
    /// DIR: the mount point.
    pub target: OsString,
    /// Every `-o` joined by commas.
    pub options: String,
    /// `-f`: do everything but the mount itself.
    pub fake: bool,
    /// `-s`: ignore options kplugfs does not know (with a warning).
    pub sloppy: bool,
    /// `-v`: log more.
    pub verbose: bool,
}

impl HelperCall {
    /// Parse the arguments after the program name.
    pub fn parse(args: &[OsString]) -> Result<HelperCall, String> {
        let mut call = HelperCall::default();
        let mut options = Vec::new();
        let mut positional = Vec::new();
        let mut it = args.iter();
        let mut only_positional = false;
        while let Some(a) = it.next() {
            let s = a.to_string_lossy();
            if only_positional || !s.starts_with('-') || s == "-" {
                positional.push(a.clone());
                continue;
            }
            if s == "--" {
                only_positional = true;
                continue;
            }
            let mut value = |flag: char, rest: &str| -> Result<String, String> {
                if !rest.is_empty() {
                    return Ok(rest.to_string());
                }
                it.next()
                    .map(|v| v.to_string_lossy().into_owned())
                    .ok_or_else(|| format!("-{flag} needs a value"))
            };
            match (s.chars().nth(1), s.get(2..).unwrap_or("")) {
                (Some('o'), rest) => options.push(value('o', rest)?),
                (Some('t'), rest) => {
                    let t = value('t', rest)?;
                    if t != "fuse.kplugfs" && t != "kplugfs" {
                        return Err(format!(
                            "-t {t}: this helper mounts fuse.kplugfs filesystems only"
                        ));
                    }
                }
                (Some('N'), _) => {
                    return Err("-N (another mount namespace) is not supported".into());
                }
                _ => {
                    for c in s[1..].chars() {
                        match c {
                            'f' => call.fake = true,
                            's' => call.sloppy = true,
                            'v' => call.verbose = true,
                            // No /etc/mtab to update.
                            'n' => {}
                            c => return Err(format!("unknown flag -{c}")),
                        }
                    }
                }
            }
        }
        let [source, target]: [OsString; 2] = positional.try_into().map_err(|p: Vec<_>| {
            format!(
                "expected SOURCE and MOUNTPOINT, got {} argument(s) \
                 (usage: mount.fuse.kplugfs SOURCE MOUNTPOINT [-o OPTIONS])",
                p.len()
            )
        })?;
        call.source = source;
        call.target = target;
        call.options = options.join(",");
        Ok(call)
    }

    /// True for `-o remount,...`.
    pub fn is_remount(&self) -> bool {
        self.options.split(',').any(|o| o.trim() == "remount")
    }
}

/// Run as mount(8)'s helper; `argv` is the whole command line.
pub fn main(argv: Vec<OsString>) -> ExitCode {
    let fail = |code: u8, msg: &str| {
        eprintln!("mount.fuse.kplugfs: {msg}");
        ExitCode::from(code)
    };
    let call = match HelperCall::parse(&argv[1..]) {
        Ok(c) => c,
        Err(e) => return fail(EX_USAGE, &e),
    };
    let verbose = u8::from(call.verbose);
    if call.is_remount() {
        crate::init_logging(verbose, None);
        if call.fake {
            return ExitCode::SUCCESS;
        }
        return match kplug_daemon::mount::remount(call.target.as_ref(), &call.options) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(EX_FAIL, &kplug_daemon::error::report(&e)),
        };
    }
    let expanded = match option_flags(&call.options, call.sloppy) {
        Ok(f) => f,
        Err(e) => return fail(EX_USAGE, &e),
    };
    for o in &expanded.ignored {
        eprintln!("mount.fuse.kplugfs: warning: ignoring unknown option {o:?} (-s)");
    }
    if expanded.flags.iter().any(|f| f == "--foreground") {
        return fail(
            EX_USAGE,
            "foreground: mount(8) waits for its helper, so the daemon must run in the background",
        );
    }
    let mut args = vec![call.source.clone(), call.target.clone()];
    args.extend(expanded.flags);
    let cli = match HelperCli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            // clap's message without its usage block: the first line, minus "error: ".
            let text = e.to_string();
            let line = text.lines().next().unwrap_or("bad options");
            return fail(EX_USAGE, line.trim_start_matches("error: "));
        }
    };
    if call.fake {
        return ExitCode::SUCCESS;
    }
    match cli.mount.run(|log| crate::init_logging(verbose, log)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(EX_FAIL, &kplug_daemon::error::report(&e).replace('\n', " ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<OsString> {
        s.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn parses_what_mount_8_passes() {
        let c =
            HelperCall::parse(&args("/srv/data /mnt/data -o rw,noauto,cache_size=1GiB")).unwrap();
        assert_eq!(c.source, "/srv/data");
        assert_eq!(c.target, "/mnt/data");
        assert_eq!(c.options, "rw,noauto,cache_size=1GiB");
        assert!(!c.is_remount() && !c.fake && !c.sloppy);

        let c =
            HelperCall::parse(&args("-sfnv -o ro -oremount -t fuse.kplugfs s3://b/p /m")).unwrap();
        assert_eq!(c.source, "s3://b/p");
        assert_eq!(c.options, "ro,remount");
        assert!(c.is_remount() && c.fake && c.sloppy && c.verbose);
    }

    #[test]
    fn bad_calls_are_one_line_errors() {
        for (a, want) in [
            ("/only-one", "got 1 argument"),
            ("a b c", "got 3 argument"),
            ("a b -t ext4", "fuse.kplugfs filesystems only"),
            ("a b -x", "unknown flag -x"),
            ("a b -o", "-o needs a value"),
        ] {
            let e = HelperCall::parse(&args(a)).unwrap_err();
            assert!(e.contains(want), "{a}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn generic_options_are_accepted_and_unknown_ones_named() {
        let f = option_flags(
            "defaults,rw,nofail,_netdev,x-systemd.automount,nosuid,ro,policy=lru",
            false,
        )
        .unwrap();
        assert_eq!(f.flags, ["--read-only", "--policy=lru"]);
        let e = option_flags("cache_size=1GiB,bogus=1", false).unwrap_err();
        assert!(e.contains("\"bogus\"") && e.contains("--bogus"), "{e}");
        let f = option_flags("bogus=1,cache_size=1GiB", true).unwrap();
        assert_eq!(f.flags, ["--cache-size=1GiB"]);
        assert_eq!(f.ignored, ["bogus=1"]);
        // `kplugfs mount -o remount` points to mount(8).
        let e = option_flags("remount,ro", false).unwrap_err();
        assert!(e.contains("mount -o remount,ro MOUNTPOINT"), "{e}");
    }
}
