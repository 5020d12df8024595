#!/usr/bin/env bash
# Builds the static binaries of the images (init `bootkit`, `bootkit-install`, `tink-worker`,
# `device-discovery`), the host tools (`bootkit-build`, `provisioner`), and:
#   out/qemu-test/{vmlinuz,initramfs,cmdline,manifest.json}   the QEMU test image
#   out/pxe-bootkit/{vmlinuz,initramfs,cmdline,manifest.json} the bootkit nodes PXE-boot
#   out/action-images/{image2disk,reboot,kexec}/              the workflow's action images
#                                                             (OCI layouts)
#   out/test-os/emt-test.raw{,.gz,.zst,.xz}{,.sha256sum}      the OS image the tests install
# Needs the kernel package, containerd, runc and busybox-static from scripts/setup.sh.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

log() { printf 'build-bootkit: %s\n' "$*"; }
die() { printf 'build-bootkit: error: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found (install the Rust toolchain)"
[[ -e .cache/kernel/linux-image-amd64.deb ]] \
    || die "the kernel package .cache/kernel/linux-image-amd64.deb is missing: run scripts/setup.sh (as root) first"
for config in imageconfigs/qemu-test.toml imageconfigs/pxe-bootkit.toml; do
    [[ -f $config ]] || die "$config is missing"
done
for program in /usr/bin/containerd /usr/bin/containerd-shim-runc-v2 /usr/sbin/runc /bin/busybox; do
    [[ -x $program ]] || die "$program is missing (the PXE bootkit's rootfs needs it): run scripts/setup.sh (as root)"
done

target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"

# crt-static gives a static glibc binary for /init. The explicit --target keeps
# RUSTFLAGS away from proc-macros and build scripts, which must stay dynamic.
log "building the static binaries (bootkit-init, bootkit-installer, tink-worker, device-discovery; release, crt-static)"
# getrandom_backend: in a static binary the getrandom crate cannot dlsym glibc's getrandom and
# falls back to polling /dev/random, which never becomes readable on a machine without a
# hardware RNG (QEMU TCG): the getrandom(2) call instead makes the kernel gather entropy.
RUSTFLAGS="-C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\"" \
    cargo build --release --target x86_64-unknown-linux-gnu \
        -p bootkit-init -p bootkit-installer -p tink-worker -p device-discovery \
    || die "cargo build of the static binaries failed (see the compiler's message above)"
static_dir="$target_dir/x86_64-unknown-linux-gnu/release"
init_bin="$static_dir/bootkit"
installer_bin="$static_dir/bootkit-install"
for bin in "$init_bin" "$installer_bin" "$static_dir/tink-worker" "$static_dir/device-discovery"; do
    [[ -x $bin ]] || die "cargo succeeded but $bin is missing"
    # ldd (always there, in libc-bin) says so for static and static-pie binaries.
    ldd_out=$(ldd "$bin" 2>&1 || true) # ldd exits 1 for some static binaries
    if [[ $ldd_out != *"statically linked"* && $ldd_out != *"not a dynamic executable"* ]]; then
        die "$bin is dynamically linked: it cannot run in the initramfs (was RUSTFLAGS overridden?)"
    fi
done

log "building the host tools (bootkit-builder, provisioner; release)"
cargo build --release -p bootkit-builder -p provisioner \
    || die "cargo build of bootkit-builder and provisioner failed"
builder="$target_dir/release/bootkit-build"
for bin in "$builder" "$target_dir/release/provisioner"; do
    [[ -x $bin ]] || die "cargo succeeded but $bin is missing"
done

log "building the QEMU test image into out/qemu-test"
"$builder" build imageconfigs/qemu-test.toml --out out/qemu-test \
    || die "bootkit-build build imageconfigs/qemu-test.toml failed"
for f in vmlinuz initramfs cmdline; do
    [[ -s out/qemu-test/$f ]] || die "bootkit-build did not write out/qemu-test/$f"
done
log "init $(stat -c %s "$init_bin") bytes; initramfs $(stat -c %s out/qemu-test/initramfs) bytes"

log "building the PXE bootkit into out/pxe-bootkit"
"$builder" build imageconfigs/pxe-bootkit.toml --out out/pxe-bootkit \
    || die "bootkit-build build imageconfigs/pxe-bootkit.toml failed"
log "PXE bootkit initramfs $(stat -c %s out/pxe-bootkit/initramfs) bytes"

# The workflow's actions (imageconfigs/pxe-bootkit/workflow.yaml): qemu-tests' stack pushes
# the same images to its registry; these layouts are for pushing to a site's own.
log "building the action images into out/action-images"
"$builder" action-image --name image2disk \
    --file "$installer_bin:/usr/bin/image2disk" --entrypoint /usr/bin/image2disk \
    --out out/action-images/image2disk >/dev/null \
    || die "bootkit-build action-image image2disk failed"
"$builder" action-image --name reboot \
    --file /bin/busybox:/bin/busybox --link /bin/sh:busybox --link /bin/touch:busybox \
    --entrypoint /bin/sh --entrypoint -c --cmd "touch /worker/reboot" \
    --out out/action-images/reboot >/dev/null \
    || die "bootkit-build action-image reboot failed"
# kexec: bootkit-install called as `kexec` (installer/src/kexec_action.rs), a workflow's last
# action instead of reboot: it loads the installed kernel and asks the worker for the reboot.
"$builder" action-image --name kexec \
    --file "$installer_bin:/usr/bin/kexec" --entrypoint /usr/bin/kexec \
    --out out/action-images/kexec >/dev/null \
    || die "bootkit-build action-image kexec failed"

log "building the test OS image into out/test-os"
"$builder" test-os-image --kernel-deb .cache/kernel/linux-image-amd64.deb \
    --marker "EMT-TEST-OS: up" --out out/test-os >/dev/null \
    || die "bootkit-build test-os-image failed"
log "done: out/qemu-test, out/pxe-bootkit, out/action-images, out/test-os"
