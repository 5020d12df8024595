#!/usr/bin/env bash
# The README's main command: set the machine up, build the bootkit image, and
# boot it in QEMU (TCG; BOOTKIT_QEMU_ACCEL=kvm for KVM) with the serial
# console on this terminal. The test image has no login, so the demo stops
# QEMU once the bootkit prints its ready line, and reports how long it took.
#
#   scripts/demo.sh                 build, boot to ready, stop
#   scripts/demo.sh --interactive   boot and stay (QEMU: Ctrl-A X quits)
#   BOOTKIT_DEMO_TIMEOUT=300        seconds to wait for ready (default 180)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

log() { printf 'demo: %s\n' "$*"; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

interactive=0
case "${1:-}" in
    --interactive) interactive=1 ;;
    "") ;;
    *) die "unknown argument $1 (usage: scripts/demo.sh [--interactive])" ;;
esac
timeout_s="${BOOTKIT_DEMO_TIMEOUT:-180}"
[[ $timeout_s =~ ^[0-9]+$ ]] || die "BOOTKIT_DEMO_TIMEOUT must be a number of seconds"

scripts/setup.sh || die "scripts/setup.sh failed"
scripts/build-bootkit.sh || die "scripts/build-bootkit.sh failed"

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
