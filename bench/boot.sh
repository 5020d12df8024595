#!/usr/bin/env bash
# Boot benchmark (not a test): boots the QEMU test image N times and prints
# the median per-stage timings of the bootkit's init (from its ready line,
# "bootkit: ready in T ms (mounts a, modules b, rootfs c, services d)"), side
# by side with a baseline on the same kernel and the same rootfs archive: an
# initramfs whose /init is a busybox script doing what dracut's 90tmpfsroot
# does (see bench/baseline_init.py). Both are measured from the exec of /init
# to ready. Target: bootkit <= 1/3 of the baseline.
#
#   bench/boot.sh [N]        N runs each (default 5, or BENCH_RUNS)
#   BOOTKIT_QEMU_ACCEL=kvm   use KVM instead of TCG
#   BENCH_TIMEOUT=300        seconds per boot
#   BENCH_IMAGE=out/qemu-test  the image directory (vmlinuz, initramfs, cmdline)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
export bench_name=bench-boot
# shellcheck source=bench/lib.sh
source "$repo_root/bench/lib.sh"

runs="${1:-${BENCH_RUNS:-5}}"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "N must be a positive number (got $runs)"
timeout_s="${BENCH_TIMEOUT:-300}"

img="${BENCH_IMAGE:-out/qemu-test}"
for f in vmlinuz initramfs cmdline; do
    [[ -s $img/$f ]] || die "$img/$f is missing: run scripts/build-bootkit.sh first"
done
for tool in qemu-system-x86_64 zstd gzip cpio python3; do
    command -v "$tool" >/dev/null || die "$tool not found: run scripts/setup.sh (python3: apt-get install python3)"
done
# The baseline's /init needs busybox-static (ldd says so for static binaries).
ldd_out=$(ldd /bin/busybox 2>&1 || true) # ldd exits 1 for a static binary
if [[ ! -x /bin/busybox || ($ldd_out != *"statically linked"* && $ldd_out != *"not a dynamic executable"*) ]]; then
    die "/bin/busybox must be busybox-static: run scripts/setup.sh"
fi

kernel=$img/vmlinuz
cmdline="$(cat "$img/cmdline")"
work="$repo_root/target/bench/boot"
rm -rf "$work"
mkdir -p "$work/logs"

# --- the baseline image: same kernel, same rootfs archive (as gzip), same modules
log "unpacking $img/initramfs"
unpack_initramfs "$img/initramfs" "$work/bootkit-tree"
rootfs=$(find_rootfs_archive "$work/bootkit-tree") \
    || die "no rootfs.tar{.gz,.zst,} at the top of $img/initramfs"
log "rootfs archive: ${rootfs#"$work"/bootkit-tree/} ($(stat -c %s "$rootfs") bytes), gzip copy for the baseline"
decompress "$rootfs" | gzip -c -n >"$work/rootfs.tar.gz"
python3 bench/baseline_init.py "$work/bootkit-tree" "$work/rootfs.tar.gz" "$cmdline" "$work/baseline-tree"
# Same compression as the bootkit's initramfs, so the kernel's unpacking
# (before /init, not measured) is alike too.
image_compression=$(compression_of "$img/initramfs")
(cd "$work/baseline-tree" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) \
    | compress_as "$image_compression" >"$work/baseline-initramfs"
log "baseline initramfs: $(stat -c %s "$work/baseline-initramfs") bytes ($image_compression); bootkit: $(stat -L -c %s "$img/initramfs") bytes"

# --- boots
stages_re='ready in ([0-9]+) ms \(mounts ([0-9]+), modules ([0-9]+), rootfs ([0-9]+), services ([0-9]+)\)'
: >"$work/bootkit.tsv"
: >"$work/baseline.tsv"
record() { # record NAME LOG TSV: appends "total mounts modules rootfs services"
    local line
    line=$(tr -d '\r' <"$2" | grep -m1 -E "$1: $stages_re" || true)
    [[ -n $line ]] || die "$1: no ready line in $2"
    [[ $line =~ $stages_re ]]
    printf '%s\t%s\t%s\t%s\t%s\n' "${BASH_REMATCH[@]:1:5}" >>"$3"
    log "  ${line#*"$1": }"
}
for i in $(seq 1 "$runs"); do
    log "run $i/$runs: bootkit"
    qemu_boot_until "$work/logs/bootkit-$i.log" 'bootkit: ready in' "$timeout_s" \
        "$kernel" "$img/initramfs" "$cmdline" \
        || die "bootkit did not reach ready (log: $work/logs/bootkit-$i.log)"
    record bootkit "$work/logs/bootkit-$i.log" "$work/bootkit.tsv"
    log "run $i/$runs: baseline"
    qemu_boot_until "$work/logs/baseline-$i.log" 'baseline: ready in' "$timeout_s" \
        "$kernel" "$work/baseline-initramfs" "$cmdline" \
        || die "baseline did not reach ready (log: $work/logs/baseline-$i.log; $(grep -m1 'baseline: FAILED' "$work/logs/baseline-$i.log" || echo 'no error line'))"
    record baseline "$work/logs/baseline-$i.log" "$work/baseline.tsv"
done

# --- medians
col() { cut -f"$2" "$1" | median; }
printf '\nboot benchmark: %s runs each, %s, kernel %s\n' "$runs" "${BOOTKIT_QEMU_ACCEL:-tcg}" "$(basename "$(readlink -f .cache/kernel/linux-image-amd64.deb 2>/dev/null || echo unknown)")"
printf 'medians in ms, from the exec of /init\n\n'
printf '%-10s %10s %10s %8s\n' stage bootkit baseline ratio
stage_names=(total mounts modules rootfs services)
for idx in 1 2 3 4 5; do
    b=$(col "$work/bootkit.tsv" "$idx")
    s=$(col "$work/baseline.tsv" "$idx")
    printf '%-10s %10s %10s %8s\n' "${stage_names[idx-1]}" "$b" "$s" "$(ratio "$b" "$s")"
done
total_b=$(col "$work/bootkit.tsv" 1)
total_s=$(col "$work/baseline.tsv" 1)
r=$(ratio "$total_b" "$total_s")
verdict=$(awk -v r="$r" 'BEGIN { print (r != "n/a" && r <= 0.3334) ? "met" : "NOT met" }')
printf '\nbootkit/baseline (total): %s   target <= 0.33: %s\n' "$r" "$verdict"
printf 'raw runs: %s/{bootkit,baseline}.tsv, console logs: %s/logs/\n' "$work" "$work"
