#!/usr/bin/env bash
# bench/http_boot.sh [N]: UEFI HTTP boot against PXE → iPXE, in one run (issue 13 §3). One
# provisioner on a bridge in a network namespace serves the same site UKI both ways; the same
# UEFI VM (OVMF, virtio-net without an option ROM, 2 GiB) boots it N times each way:
#   uefi-http  OVMF's HttpBootDxe: DHCP (HTTPClient) → the UKI over HTTP (HEAD + GET)
#   pxe-ipxe   OVMF's PXE: DHCP → ipxe.efi over TFTP → iPXE: DHCP again → its script over
#              HTTP → the same UKI over HTTP (`--ipxe-uki`)
# and stops each VM at the init's first console line. Prints medians of: the time from the
# firmware's line just before its first DHCP DISCOVER to the init's first line, and the bytes
# the provisioner sent over boot HTTP and TFTP, the DHCP packets it received and the iPXE
# scripts it served (its /metrics counters).
#
#   bench/http_boot.sh [N]   N boots each way (default 3, or BENCH_RUNS)
#   BOOTKIT_QEMU_ACCEL=kvm   use KVM instead of TCG
#
# Needs root (namespaces), QEMU, OVMF, ipxe and systemd-boot-efi (scripts/setup.sh) and
# out/pxe-bootkit (scripts/build-bootkit.sh). The boot itself is qemu-tests'
# bench_uefi_http_boot_against_pxe_ipxe.
set -euo pipefail
bench_name=http-boot
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

runs="${1:-${BENCH_RUNS:-3}}"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "N must be a positive number (got $runs)"
[[ $(id -u) -eq 0 ]] || die "needs root for the network namespace: sudo $0"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
[[ -s out/pxe-bootkit/vmlinuz ]] || die "out/pxe-bootkit is missing: run scripts/build-bootkit.sh first"

work="$repo_root/target/bench/http_boot"
mkdir -p "$work"
log "building the provisioner and bootkit-build (release), then $runs boots each way"
cargo build --release -q -p provisioner -p bootkit-builder || die "cargo build failed"
# CI is set so that a missing prerequisite fails the bench instead of skipping it.
CI=1 BENCH_RUNS="$runs" cargo test -q -p qemu-tests --test boot_paths_bench -- \
    --include-ignored --exact bench_uefi_http_boot_against_pxe_ipxe --nocapture \
    >"$work/runs.log" 2>&1 || die "the boots failed (log: $work/runs.log)"
grep '^boot-path: path=' "$work/runs.log" | sed 's/^boot-path: //' >"$work/runs.txt" \
    || die "no boot-path lines in $work/runs.log"
uki_bytes=$(sed -n 's/^boot-path: uki_bytes=//p' "$work/runs.log")

field() { # field PATH KEY: the KEY values of PATH's runs, one a line
    awk -v path="path=$1" -v key="$2=" '$1 == path { for (i = 2; i <= NF; i++) if (index($i, key) == 1) print substr($i, length(key) + 1) }' "$work/runs.txt"
}
printf '\nboot paths: %s boots each, %s, UKI %s bytes; medians\n\n' "$runs" "${BOOTKIT_QEMU_ACCEL:-tcg}" "$uki_bytes"
printf '%-10s %16s %12s %12s %13s %13s\n' path "DHCP-to-init ms" "HTTP bytes" "TFTP bytes" "DHCP packets" "iPXE scripts"
for path in uefi-http pxe-ipxe; do
    printf '%-10s %16s %12s %12s %13s %13s\n' "$path" "$(field "$path" dhcp_to_init_ms | median)" \
        "$(field "$path" http_bytes | median)" "$(field "$path" tftp_bytes | median)" \
        "$(field "$path" dhcp_packets | median)" "$(field "$path" ipxe_scripts | median)"
done
printf '\nDHCP-to-init: from the firmware line before its first DISCOVER ("Start HTTP Boot over IPv4",\n'
printf '"Start PXE over IPv4") to the init'"'"'s first console line. HTTP bytes: the UKI (iPXE'"'"'s scripts\n'
printf 'are counted apart). DHCP packets: received by the provisioner.\n'
printf '\nper boot: %s, log: %s\n' "$work/runs.txt" "$work/runs.log"
