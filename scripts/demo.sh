#!/usr/bin/env bash
# The README's main command: set the machine up, build the bootkit images, and run issue 6's
# PXE provisioning scenario in QEMU (TCG; BOOTKIT_QEMU_ACCEL=kvm for KVM): in a network
# namespace with the site's DHCP server (dnsmasq) and the provisioner in proxyDHCP mode
# beside it, three machines (a BIOS one registered by serial, a UEFI one registered by MAC,
# a UEFI one nobody registered) PXE-boot the bootkit, are discovered, write the test OS image
# to their disks, reboot, are told to boot their disks, and boot the installed system. Each
# machine's steps are printed as they happen, then the provisioner's node table. The
# consoles stay in target/qemu-logs/pxe-node-*.log, the provisioner's, registry's and
# dnsmasq's logs and database in the directory printed at the end.
#
#   scripts/demo.sh                           the PXE provisioning demo (as root)
#   scripts/demo.sh --boot-only               the old demo: boot out/qemu-test to "ready", stop
#   scripts/demo.sh --boot-only --interactive boot it and stay (QEMU: Ctrl-A X quits)
#   BOOTKIT_PXE_JOBS=2                        machines at once in the PXE demo (default 3)
#   BOOTKIT_DEMO_TIMEOUT=300                  seconds to wait for ready with --boot-only (default 180)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

log() { printf 'demo: %s\n' "$*"; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

boot_only=0
interactive=0
for arg in "$@"; do
    case "$arg" in
        --boot-only) boot_only=1 ;;
        --interactive) interactive=1 ;;
        *) die "unknown argument $arg (usage: scripts/demo.sh [--boot-only [--interactive]])" ;;
    esac
done
(( interactive && !boot_only )) && die "--interactive goes with --boot-only"
timeout_s="${BOOTKIT_DEMO_TIMEOUT:-180}"
[[ $timeout_s =~ ^[0-9]+$ ]] || die "BOOTKIT_DEMO_TIMEOUT must be a number of seconds"
(( boot_only )) || (( EUID == 0 )) || die "the PXE demo needs root (network namespaces, taps): run it with sudo"

scripts/setup.sh || die "scripts/setup.sh failed"
scripts/build-bootkit.sh || die "scripts/build-bootkit.sh failed"

if (( !boot_only )); then
    log "building the demo driver (qemu-tests' pxe-demo, release)"
    cargo build --release -p qemu-tests --bin pxe-demo || die "cargo build of pxe-demo failed"
    target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"
    exec "$target_dir/release/pxe-demo"
fi

img=out/qemu-test
cmdline="$(cat "$img/cmdline")"
case "${BOOTKIT_QEMU_ACCEL:-tcg}" in
    kvm) accel=(-accel kvm -cpu host) ;;
    *) accel=(-accel tcg) ;;
esac
# A virtio NIC on QEMU's user network with restrict=on: the guest's driver
# loads and probes, but nothing leaves this machine.
qemu=(qemu-system-x86_64 -nographic -no-reboot -m 1024 "${accel[@]}"
    -netdev "user,id=n0,restrict=on" -device "virtio-net-pci,netdev=n0,romfile="
    -kernel "$img/vmlinuz" -initrd "$img/initramfs" -append "$cmdline")

log "booting $img (${BOOTKIT_QEMU_ACCEL:-tcg}) with: $cmdline"
if (( interactive )); then
    exec "${qemu[@]}" -serial mon:stdio
fi

console_log="$img/demo-console.log"
: >"$console_log"
start_ns=$(date +%s%N)
"${qemu[@]}" -serial stdio -monitor none </dev/null >"$console_log" 2>&1 &
qemu_pid=$!
# Show the console as it arrives; stop QEMU and the viewer however we leave.
tail -n +1 -f --pid="$qemu_pid" "$console_log" &
tail_pid=$!
cleanup() {
    kill "$qemu_pid" 2>/dev/null || true
    wait "$qemu_pid" 2>/dev/null || true
    kill "$tail_pid" 2>/dev/null || true
    wait "$tail_pid" 2>/dev/null || true
}
trap cleanup EXIT

deadline=$(( $(date +%s) + timeout_s ))
result=timeout
while (( $(date +%s) < deadline )); do
    if grep -q 'bootkit: ready' "$console_log"; then result=ready; break; fi
    if ! kill -0 "$qemu_pid" 2>/dev/null; then result=exited; break; fi
    sleep 0.2
done
elapsed_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
sleep 0.3 # let the viewer print the ready line before our summary
cleanup
trap - EXIT

case $result in
    ready)
        ready_line=$(grep -m1 'bootkit: ready' "$console_log" | tr -d '\r')
        printf '\n'
        log "booted to ready in $(awk "BEGIN { printf \"%.1f\", $elapsed_ms / 1000 }") s (host wall clock, QEMU start to ready line)"
        log "init reported: ${ready_line#*bootkit: }"
        log "console log: $console_log"
        ;;
    exited)
        die "QEMU exited before the ready line; console log: $console_log"
        ;;
    *)
        die "no ready line within ${timeout_s} s; console log: $console_log"
        ;;
esac
