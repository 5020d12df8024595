#!/usr/bin/env bash
# kexec benchmark (not a test): the same UEFI machine (OVMF, 2 vCPUs, 1.5 GiB) installs the
# EMT-like test OS image from the USB stick twice, with after = "kexec" and after = "reboot",
# and the time from the installer's "install done" line to the installed system's marker is
# printed for each, with their ratio (qemu-tests/tests/kexec.rs, bench_kexec_vs_reboot).
#
# Under QEMU the firmware's part of a reboot is OVMF alone (a few seconds under TCG); on a
# real server it is POST, memory training and option ROMs: minutes, which kexec skips too.
#
#   bench/kexec.sh           BOOTKIT_QEMU_ACCEL=kvm to use KVM instead of TCG
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
export bench_name=bench-kexec
# shellcheck source=bench/lib.sh
source "$repo_root/bench/lib.sh"

installer="${CARGO_TARGET_DIR:-$repo_root/target}/x86_64-unknown-linux-gnu/release/bootkit-install"
[[ -x $installer ]] || die "$installer is missing: run scripts/build-bootkit.sh"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found: run scripts/setup.sh"

log "installing twice (kexec, then reboot) on the same machine; minutes under TCG"
output=$(cargo test --quiet -p qemu-tests --test kexec -- --ignored --exact \
    bench_kexec_vs_reboot --nocapture 2>&1) || {
    printf '%s\n' "$output" >&2
    die "the benchmark run failed (see above)"
}
grep '^bench-kexec: ' <<<"$output" || die "the run printed no figures:
$output"
