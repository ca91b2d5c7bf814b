//! `kplug-delay-proxy --listen 127.0.0.1:7481 --to 127.0.0.1:7480 --delay 10ms`: forward
//! TCP connections, adding `--delay` in each direction (20 ms of round-trip time for 10ms).
//! See the crate's documentation (`src/lib.rs`) for exactly what is delayed.

use std::io::Write;
use std::net::ToSocketAddrs;
use std::time::Duration;

use clap::Parser;
use kplug_delay_proxy::{Config, Proxy, parse_delay};

/// Forward TCP connections with a fixed one-way delay in each direction.
///
/// Every byte is written to the other side DELAY after it was read, in both directions: a
/// request and its response cost 2 x DELAY more (20 ms of added round-trip time is
/// `--delay 10ms`), and a new connection pays one more round trip for its handshake. A delay
/// is latency, not a bandwidth cap: streamed bodies are delayed once, not per chunk.
#[derive(Debug, Parser)]
#[command(name = "kplug-delay-proxy", version)]
struct Args {
    /// Address to listen on (port 0: any free port; the chosen address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: String,
    /// Address to forward to, e.g. 127.0.0.1:7480.
    #[arg(long, value_name = "ADDR")]
    to: String,
    /// One-way delay added in each direction: 10ms, 1.5ms, 250us, 0.
    #[arg(long, value_name = "DURATION", value_parser = parse_delay)]
    delay: Duration,
    /// Do not charge new connections the handshake's round trip.
    #[arg(long)]
    no_handshake_delay: bool,
    /// Print the counters to stderr every DURATION (0: never).
    #[arg(long, value_name = "DURATION", value_parser = parse_delay, default_value = "0")]
    stats_every: Duration,
    /// Keep the counters in this file, as one JSON object rewritten every 50 ms (what a
    /// benchmark reads before and after a run: the bytes each way).
    #[arg(long, value_name = "PATH")]
    stats_file: Option<std::path::PathBuf>,
}

/// The counters as one JSON object.
fn json(s: &kplug_delay_proxy::Stats) -> String {
    format!(
        "{{\"accepted\": {}, \"active\": {}, \"failed\": {}, \"bytes_up\": {}, \"bytes_down\": {}, \"chunks_up\": {}, \"chunks_down\": {}}}",
        s.accepted, s.active, s.failed, s.bytes_up, s.bytes_down, s.chunks_up, s.chunks_down
    )
}

fn main() {
    let args = Args::parse();
    let upstream = match args.to.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(a)) => a,
        _ => {
            eprintln!("kplug-delay-proxy: cannot resolve --to {}", args.to);
            std::process::exit(2);
        }
    };
    let mut config = Config::new(upstream, args.delay);
    config.handshake = !args.no_handshake_delay;
    let proxy = match Proxy::start(args.listen.as_str(), config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("kplug-delay-proxy: cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    // One line scripts can wait for (and read the port from).
    println!(
        "kplug-delay-proxy: listening on {}, forwarding to {upstream}, delay {:?} each way",
        proxy.local_addr(),
        args.delay
    );
    let _ = std::io::stdout().flush();
    let proxy = std::sync::Arc::new(proxy);
    if !args.stats_every.is_zero() {
        let (every, p) = (args.stats_every, proxy.clone());
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(every);
                eprintln!("kplug-delay-proxy: {}", json(&p.stats()));
            }
        });
    }
    if let Some(path) = args.stats_file {
        let p = proxy.clone();
        let tmp = path.with_extension("tmp");
        std::thread::spawn(move || {
            loop {
                // Written aside and renamed: a reader never sees half a file.
                if std::fs::write(&tmp, json(&p.stats()) + "\n").is_ok() {
                    let _ = std::fs::rename(&tmp, &path);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
    }
    // Serve until killed.
    loop {
        std::thread::park();
    }
}
