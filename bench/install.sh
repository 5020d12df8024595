#!/usr/bin/env bash
# Installer benchmark (not a test): writes one disk image to a loop device (backed by a file
# on disk) with each tool, side by side in one run, and prints MB/s and ratios.
#
# The image: a GPT disk of BENCH_SIZE_MIB (default 2048) MiB, 70% zeros (holes) and 30%
# random data in 1 MiB extents spread over the disk, published as .raw.gz and .raw.zst with a
# bmap (bmaptool create), as EMT publishes its images.
#
# Contenders, each ending with the data on the device (fsync), page cache dropped before
# each run:
#   gzip -dc | dd bs=4M      install-os.sh's way (EMT Standalone today)
#   zstd -dc | dd bs=4M      the same with zstd
#   bootkit-install          .raw.gz and .raw.zst, sha256 verified; then with the bmap
#   coreos-installer         `install --image-file --insecure` (BENCH_COREOS, when built:
#                            cargo install coreos-installer --root DIR)
#   bmaptool copy            Debian's bmap-tools, with the bmap
# Targets: bootkit-install without bmap at least as fast as the fastest pipeline; with the
# bmap at least 3x faster than `gzip -dc | dd`.
#
#   bench/install.sh [N]     N runs each (default 1, or BENCH_RUNS); medians are printed
#   BENCH_SIZE_MIB, BENCH_DIR (work directory, default .cache/bench-install), BENCH_COREOS
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
export bench_name=bench-install
# shellcheck source=bench/lib.sh
source "$repo_root/bench/lib.sh"

runs="${1:-${BENCH_RUNS:-1}}"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "N must be a positive number (got $runs)"
size_mib="${BENCH_SIZE_MIB:-2048}"
[[ $size_mib =~ ^[1-9][0-9]*$ && $size_mib -ge 16 ]] || die "BENCH_SIZE_MIB must be >= 16 (got $size_mib)"
work="${BENCH_DIR:-$repo_root/.cache/bench-install}"
installer="${BENCH_INSTALLER:-${CARGO_TARGET_DIR:-$repo_root/target}/x86_64-unknown-linux-gnu/release/bootkit-install}"
coreos="${BENCH_COREOS:-$repo_root/../tools/coreos/bin/coreos-installer}"

[[ $(id -u) -eq 0 ]] || die "needs root (loop devices, dropping the page cache)"
[[ -x $installer ]] || die "$installer is missing: run scripts/build-bootkit.sh"
for tool in sgdisk gzip zstd dd losetup bmaptool sha256sum; do
    command -v "$tool" >/dev/null || die "$tool not found: run scripts/setup.sh"
done

mkdir -p "$work"
image="$work/bench.raw"
target_file="$work/target.img"
loop=""
cleanup() {
    [[ -n $loop ]] && losetup -d "$loop" 2>/dev/null
    rm -f "$target_file"
    remove_udev_shim
}
trap cleanup EXIT

make_image() {
    log "making a ${size_mib} MiB image: 70% zeros, 30% random in 1 MiB extents"
    rm -f "$image"
    truncate -s "${size_mib}M" "$image"
    sgdisk -o -n 1:2048:0 -t 1:8300 -c 1:bench "$image" >/dev/null
    # Every 10 MiB, 3 MiB of random data: 30% of the disk, spread like a filesystem's data.
    local mib
    for ((mib = 8; mib + 3 <= size_mib - 2; mib += 10)); do
        dd if=/dev/urandom of="$image" bs=1M count=3 seek="$mib" conv=notrunc,sparse status=none
    done
    log "compressing (gzip -6, zstd -3) and making the bmap"
    gzip -c -n "$image" >"$image.gz"
    zstd -q -c -T0 "$image" >"$image.zst"
    bmaptool -q create -o "$image.bmap" "$image"
    sha256sum "$image.gz" | cut -d' ' -f1 >"$image.gz.sha256"
    sha256sum "$image.zst" | cut -d' ' -f1 >"$image.zst.sha256"
    echo "$size_mib" >"$work/size"
}

if [[ ! -f $image.bmap || ! -f $work/size || $(cat "$work/size") != "$size_mib" ]]; then
    make_image
fi

fresh_target() {
    [[ -n $loop ]] && losetup -d "$loop"
    rm -f "$target_file"
    truncate -s "$((size_mib + 64))M" "$target_file"
    # -P: coreos-installer rereads the partition table and refuses a device without partscan.
    loop=$(losetup -f --show -P "$target_file")
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

# time_run NAME CMD...: seconds for CMD against a fresh target, or "fail".
declare -A seconds
time_run() {
    local name=$1 start end
    shift
    fresh_target
    start=$(date +%s.%N)
    if "$@" >"$work/$name.log" 2>&1; then
        end=$(date +%s.%N)
        seconds[$name]+="$(echo "$end - $start" | bc) "
    else
        log "$name failed (see $work/$name.log): $(tail -2 "$work/$name.log" | tr '\n' ' ')"
        seconds[$name]+="fail "
    fi
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR == 0 || a[1] == "fail") print "fail"; else print a[int((NR + 1) / 2)]}'; }

pipe_dd() { # pipe_dd DECOMPRESSOR FILE
    "$1" -dc "$2" | dd of="$loop" bs=4M conv=fsync status=none
}
ours() { # ours FILE SHA [ARGS...]
    local file=$1 sha=$2
    shift 2
    "$installer" --image "$file" --disk "$loop" --sha256 "$sha" --progress plain "$@"
}
# coreos-installer waits for udev after writing (`udevadm settle`, and it checks for udevd's
# control socket first); these machines run no udev. A no-op udevadm and a placeholder socket
# let it finish: there are no udev rules here to wait for, so nothing is skipped that matters.
udev_shim=""
coreos_install() {
    if [[ ! -e /run/udev/control ]]; then
        udev_shim=$(mktemp -d)
        printf '#!/bin/sh\nexit 0\n' >"$udev_shim/udevadm"
        chmod +x "$udev_shim/udevadm"
        mkdir -p /run/udev
        python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("/run/udev/control")'
    fi
    PATH="${udev_shim:+$udev_shim:}$PATH" "$coreos" install "$loop" --image-file "$image.gz" --insecure
}
remove_udev_shim() {
    [[ -n $udev_shim ]] || return 0
    rm -rf "$udev_shim" /run/udev/control
    rmdir /run/udev 2>/dev/null || true
}

order=(gzip-dd zstd-dd bootkit-gz bootkit-zst bootkit-bmap bmaptool)
[[ -x $coreos ]] && order+=(coreos-installer)
for ((run = 1; run <= runs; run++)); do
    log "run $run of $runs"
    time_run gzip-dd pipe_dd gzip "$image.gz"
    time_run zstd-dd pipe_dd zstd "$image.zst"
    time_run bootkit-gz ours "$image.gz" "$(cat "$image.gz.sha256")"
    time_run bootkit-zst ours "$image.zst" "$(cat "$image.zst.sha256")"
    time_run bootkit-bmap ours "$image.zst" "$(cat "$image.zst.sha256")" --bmap "$image.bmap"
    time_run bmaptool bmaptool -q copy --bmap "$image.bmap" "$image.zst" "$loop"
    [[ -x $coreos ]] && time_run coreos-installer coreos_install
done
[[ -x $coreos ]] || log "coreos-installer not found at $coreos: skipped (BENCH_COREOS=path to run it)"

bytes=$((size_mib * 1024 * 1024))
declare -A med
printf '\n%-18s %10s %10s\n' tool seconds 'MB/s'
for name in "${order[@]}"; do
    med[$name]=$(echo "${seconds[$name]:-}" | median)
    if [[ ${med[$name]} == fail ]]; then
        printf '%-18s %10s %10s\n' "$name" fail -
    else
        printf '%-18s %10.2f %10.0f\n' "$name" "${med[$name]}" "$(echo "$bytes / ${med[$name]} / 1000000" | bc -l)"
    fi
done
ratio() { # ratio A B: how many times faster A is than B
    if [[ ${med[$1]} == fail || ${med[$2]} == fail ]]; then echo "n/a"; else
        printf '%.2fx' "$(echo "${med[$2]} / ${med[$1]}" | bc -l)"
    fi
}
fastest_pipe=gzip-dd
[[ ${med[zstd-dd]} != fail && (${med[gzip-dd]} == fail || $(echo "${med[zstd-dd]} < ${med[gzip-dd]}" | bc) -eq 1) ]] && fastest_pipe=zstd-dd
best_ours=bootkit-gz
[[ ${med[bootkit-zst]} != fail && (${med[bootkit-gz]} == fail || $(echo "${med[bootkit-zst]} < ${med[bootkit-gz]}" | bc) -eq 1) ]] && best_ours=bootkit-zst
echo
echo "bootkit-gz vs gzip-dd (same input):            $(ratio bootkit-gz gzip-dd)"
echo "bootkit-zst vs zstd-dd (same input):           $(ratio bootkit-zst zstd-dd)"
echo "best bootkit ($best_ours) vs fastest pipeline ($fastest_pipe): $(ratio "$best_ours" "$fastest_pipe")   target >= 1.00x"
echo "bootkit-bmap vs gzip-dd:                       $(ratio bootkit-bmap gzip-dd)   target >= 3.00x"
echo "bootkit-bmap vs bmaptool:                      $(ratio bootkit-bmap bmaptool)"
[[ -x $coreos ]] && echo "bootkit-gz vs coreos-installer:                $(ratio bootkit-gz coreos-installer)"
exit 0
