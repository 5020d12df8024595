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
#   scripts/demo.sh --boot-only --interactive boot it in shell mode and stay on its console
#                                             with a shell (QEMU: Ctrl-A X quits)
#   scripts/demo.sh --help                    this text
#   BOOTKIT_PXE_JOBS=2                        machines at once in the PXE demo (default 3)
#   BOOTKIT_DEMO_TIMEOUT=300                  seconds to wait for ready with --boot-only (default 180)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

log() { printf 'demo: %s\n' "$*"; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

usage() {
    cat <<'EOF'
usage: scripts/demo.sh [--boot-only [--interactive]]

Sets the machine up (scripts/setup.sh), builds the bootkit (scripts/build-bootkit.sh), then:
  (no option)      the PXE demo, as root: in a network namespace, the site's DHCP server and
                   `provisioner serve` beside it; three QEMU machines PXE-boot the bootkit,
                   are discovered, install the test OS image and boot it from their disks
  --boot-only      one QEMU machine boots out/qemu-test to the init's ready line, then stops
  --interactive    with --boot-only: boot in shell mode and stay on the console with a shell
                   (QEMU: Ctrl-A X quits)

Environment: BOOTKIT_QEMU_ACCEL=kvm (default tcg), BOOTKIT_PXE_JOBS (machines at once in the
PXE demo, default 3), BOOTKIT_DEMO_TIMEOUT (seconds to wait for ready, default 180).

Examples:
  sudo scripts/demo.sh
  scripts/demo.sh --boot-only --interactive
EOF
}

# What to try after a demo: the other demos and where to look. $1: the PXE demo's work
# directory (its database and logs), when known.
next_steps() {
    local work_dir="${1:-}"
    printf '\ndemo: try next:\n'
    try() { printf '  %s\n      %s\n' "$1" "$2"; }
    if (( boot_only )); then
        (( interactive )) || try "scripts/demo.sh --boot-only --interactive" \
            "the same boot in shell mode, with a shell on its console (Ctrl-A X quits QEMU)"
        try "sudo scripts/demo.sh" \
            "the PXE demo: three machines provisioned by the provisioner, its node table at the end"
    else
        if [[ -n $work_dir ]]; then
            try "target/release/provisioner node list --db $work_dir/provisioner.db" \
                "the demo's nodes as the provisioner stored them (-o wide for more columns)"
            try "target/release/provisioner node logs ID --db $work_dir/provisioner.db" \
                "a node's bootkit log as the provisioner received it (ID: a serial or MAC above)"
        fi
        try "scripts/demo.sh --boot-only --interactive" \
            "one machine, no network: the bootkit in shell mode with a shell on its console"
    fi
    try "README.md" "the boot flow, the kernel command line, the provisioner, the tests"
}

boot_only=0
interactive=0
for arg in "$@"; do
    case "$arg" in
        --boot-only) boot_only=1 ;;
        --interactive) interactive=1 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument $arg (usage: scripts/demo.sh [--boot-only [--interactive]]; see --help)" ;;
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
    summary="$(mktemp)"
    trap 'rm -f "$summary"' EXIT
    # The summary stays on the terminal; its last line names the work directory.
    "$target_dir/release/pxe-demo" | tee "$summary" || exit
    next_steps "$(sed -n 's/^provisioner, registry and dnsmasq logs, database: //p' "$summary")"
    exit 0
fi

img=out/qemu-test
cmdline="$(cat "$img/cmdline")"
# The image boots in provision mode; shell mode adds a shell on the console (the last
# bootkit.mode= wins).
(( interactive )) && cmdline+=" bootkit.mode=shell"
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
# QEMU's own messages, apart from the console: stopping it at the end makes it say
# "terminating on signal 15", which is the demo's doing, not an error.
qemu_log="$img/demo-qemu.log"
: >"$console_log"
start_ns=$(date +%s%N)
"${qemu[@]}" -serial stdio -monitor none </dev/null >"$console_log" 2>"$qemu_log" &
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
        log "what you saw: the kernel starting the bootkit's init from the initramfs; the init"
        log "  mounting, loading modules, unpacking the rootfs into RAM, starting the services"
        log "  of provision mode and printing its ready line with each stage's time. Then the demo"
        log "  stopped QEMU: its 'terminating on signal 15' (in $qemu_log) is that, not an error."
        log "console log: $console_log"
        next_steps
        ;;
    exited)
        [[ -s $qemu_log ]] && printf 'QEMU said:\n%s\n' "$(cat "$qemu_log")" >&2
        die "QEMU exited before the ready line; console log: $console_log, QEMU's messages: $qemu_log"
        ;;
    *)
        die "no ready line within ${timeout_s} s; console log: $console_log, QEMU's messages: $qemu_log"
        ;;
esac
