#!/usr/bin/env bash
# Builds the static init (`bootkit`), the builder (`bootkit-build`), and the
# QEMU test image out/qemu-test/{vmlinuz,initramfs,cmdline,manifest.json}.
# Needs the kernel package from scripts/setup.sh.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

log() { printf 'build-bootkit: %s\n' "$*"; }
die() { printf 'build-bootkit: error: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found (install the Rust toolchain)"
[[ -e .cache/kernel/linux-image-amd64.deb ]] \
    || die "the kernel package .cache/kernel/linux-image-amd64.deb is missing: run scripts/setup.sh (as root) first"
[[ -f imageconfigs/qemu-test.toml ]] || die "imageconfigs/qemu-test.toml is missing"

target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"

# crt-static gives a static glibc binary for /init. The explicit --target keeps
# RUSTFLAGS away from proc-macros and build scripts, which must stay dynamic.
log "building the static init and installer (bootkit-init, bootkit-installer; release, crt-static)"
# getrandom_backend: in a static binary the getrandom crate cannot dlsym glibc's getrandom and
# falls back to polling /dev/random, which never becomes readable on a machine without a
# hardware RNG (QEMU TCG): the getrandom(2) call instead makes the kernel gather entropy.
RUSTFLAGS="-C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\"" \
    cargo build --release --target x86_64-unknown-linux-gnu -p bootkit-init -p bootkit-installer \
    || die "cargo build of bootkit-init and bootkit-installer failed"
init_bin="$target_dir/x86_64-unknown-linux-gnu/release/bootkit"
installer_bin="$target_dir/x86_64-unknown-linux-gnu/release/bootkit-install"
for bin in "$init_bin" "$installer_bin"; do
    [[ -x $bin ]] || die "cargo succeeded but $bin is missing"
    # ldd (always there, in libc-bin) says so for static and static-pie binaries.
    ldd_out=$(ldd "$bin" 2>&1 || true) # ldd exits 1 for some static binaries
    if [[ $ldd_out != *"statically linked"* && $ldd_out != *"not a dynamic executable"* ]]; then
        die "$bin is dynamically linked: it cannot run in the initramfs (was RUSTFLAGS overridden?)"
    fi
done

log "building the image builder (bootkit-builder, release)"
cargo build --release -p bootkit-builder || die "cargo build of bootkit-builder failed"
builder="$target_dir/release/bootkit-build"
[[ -x $builder ]] || die "cargo succeeded but $builder is missing"

log "building the QEMU test image into out/qemu-test"
"$builder" build imageconfigs/qemu-test.toml --out out/qemu-test \
    || die "bootkit-build build imageconfigs/qemu-test.toml failed"
for f in vmlinuz initramfs cmdline; do
    [[ -s out/qemu-test/$f ]] || die "bootkit-build did not write out/qemu-test/$f"
done
log "init $(stat -c %s "$init_bin") bytes; initramfs $(stat -c %s out/qemu-test/initramfs) bytes"
log "done: out/qemu-test/{vmlinuz,initramfs,cmdline}"
