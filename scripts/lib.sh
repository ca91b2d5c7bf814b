# Helpers shared by the scripts in this directory; source it from the repository root
# (`. scripts/lib.sh`, after the script's `cd`).

# The cargo target directory (honours CARGO_TARGET_DIR and cargo's config).
cargo_target_dir() {
    cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])'
}

# Build the release binary (cargo's output on stderr) and set $target_dir and $kplugfs.
build_kplugfs() {
    cargo build --release -p kplugfs >&2
    target_dir=$(cargo_target_dir)
    kplugfs=$target_dir/release/kplugfs
}

# A scratch directory $work under /var/tmp, named after $1, with backing/ and mnt/; on exit
# the mount at mnt/ is taken down and the directory removed.
bench_work() {
    work=$(mktemp -d "/var/tmp/kplugfs-$1.XXXXXX")
    mkdir -p "$work/backing" "$work/mnt"
    trap '"$kplugfs" umount "$work/mnt" 2>/dev/null || true; rm -rf "$work"' EXIT
}
