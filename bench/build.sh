#!/usr/bin/env bash
# Build benchmark (not a test): times `bootkit-build build
# imageconfigs/qemu-test.toml` against the shell pipeline EMT's
# generate-bootkit-initramfs.sh uses, on the same inputs, N runs each, and
# prints the medians, the ratio and both output sizes.
# Target: the builder >= 3x faster, with a smaller output.
#
# The pipeline gets the same inputs and does the same jobs with the classic
# tools: take vmlinuz and the image's modules out of the kernel .deb
# (dpkg-deb | tar), repack the rootfs without ./boot and ./tmp as
# rootfs.tar.gz (tar -czf), then `find . | cpio -o -H newc | gzip`. Its staged
# tree is the builder's own initramfs unpacked (so the content matches,
# including the module index files the builder generates); that unpacking is
# not timed. The cpio|gzip step is also reported alone.
#
# The builder caches the extracted kernel package, so both sides are timed
# cold (kernel files read out of the .deb every run; the builder with an
# empty BOOTKIT_KERNEL_CACHE) and warm (kernel already extracted).
#
#   bench/build.sh [N]      N runs each (default 5, or BENCH_RUNS)
#   BENCH_CONFIG, BENCH_BUILDER   another image config / builder binary
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
export bench_name=bench-build
# shellcheck source=bench/lib.sh
source "$repo_root/bench/lib.sh"

runs="${1:-${BENCH_RUNS:-5}}"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "N must be a positive number (got $runs)"
config="${BENCH_CONFIG:-imageconfigs/qemu-test.toml}"
builder="${BENCH_BUILDER:-${CARGO_TARGET_DIR:-$repo_root/target}/release/bootkit-build}"
deb=.cache/kernel/linux-image-amd64.deb

[[ -x $builder ]] || die "$builder is missing: run scripts/build-bootkit.sh"
[[ -f $config ]] || die "$config is missing"
[[ -e $deb ]] || die "$deb is missing: run scripts/setup.sh"
for tool in cpio gzip zstd dpkg-deb tar; do
    command -v "$tool" >/dev/null || die "$tool not found: run scripts/setup.sh"
done

work="$repo_root/target/bench/build"
rm -rf "$work"
mkdir -p "$work"

# --- the builder, cold and warm. It keeps the extracted kernel package in a
# cache (BOOTKIT_KERNEL_CACHE, keyed by the package's sha256), so it is timed
# both with an empty cache (a fresh machine: the .deb is read) and with a
# filled one (every later build), against the pipeline doing the same.
run_builder() { # run_builder NAME CACHE_DIR I
    local t0 t1
    rm -rf "$work/builder-out"
    t0=$(now_ms)
    BOOTKIT_KERNEL_CACHE="$2" "$builder" build "$config" --out "$work/builder-out" \
        >"$work/builder-$1-$3.log" 2>&1 \
        || die "bootkit-build failed (log: $work/builder-$1-$3.log)"
    t1=$(now_ms)
    echo $(( t1 - t0 )) >>"$work/builder-$1.ms"
    log "builder $1 run $3/$runs: $(( t1 - t0 )) ms"
}
: >"$work/builder-cold.ms"
: >"$work/builder-warm.ms"
for i in $(seq 1 "$runs"); do
    rm -rf "$work/kcache-cold"
    run_builder cold "$work/kcache-cold" "$i"
done
rm -rf "$work/kcache-cold"
BOOTKIT_KERNEL_CACHE="$work/kcache-warm" "$builder" build "$config" --out "$work/builder-out" \
    >"$work/builder-warmup.log" 2>&1 || die "bootkit-build failed (log: $work/builder-warmup.log)"
for i in $(seq 1 "$runs"); do
    run_builder warm "$work/kcache-warm" "$i"
done
builder_img="$work/builder-out/initramfs"
builder_size=$(stat -c %s "$builder_img")

# --- stage the same content for the pipeline (not timed)
log "staging the builder's initramfs content for the pipeline"
unpack_initramfs "$builder_img" "$work/stage-src"
rootfs=$(find_rootfs_archive "$work/stage-src") \
    || die "no rootfs.tar{.gz,.zst,} at the top of $builder_img"
mkdir -p "$work/rootfs-tree"
decompress "$rootfs" | tar -x -C "$work/rootfs-tree" --numeric-owner -p \
    || die "cannot unpack $rootfs"
rm -f "$rootfs"
# The modules come from the .deb inside the timed pipeline, so take them out.
modules_dir=$(find "$work/stage-src" -path '*/lib/modules/*' -name modules.dep -printf '%h\n' | head -1)
: >"$work/deb-members"
if [[ -n $modules_dir ]]; then
    kver=$(basename "$modules_dir")
    (cd "$modules_dir" && find . -name '*.ko*' -printf "./lib/modules/$kver/%P\n") >"$work/deb-members"
    find "$modules_dir" -name '*.ko*' -delete
    stage_modules_rel=${modules_dir#"$work/stage-src/"}
fi
log "pipeline inputs: $deb, rootfs tree ($(du -sh "$work/rootfs-tree" | cut -f1)), $(wc -l <"$work/deb-members") modules"

# --- the shell pipeline, cold (kernel files out of the .deb every time) and
# warm (out of a directory extracted once, as the builder's cache).
mkdir -p "$work/kernel-warm"
dpkg-deb --fsys-tarfile "$deb" \
    | tar -x -C "$work/kernel-warm" --wildcards './boot/vmlinuz-*' -T "$work/deb-members" \
    || die "extracting from $deb failed"
run_pipeline() { # run_pipeline cold|warm I
    local t0 t1 t2 kdir
    rm -rf "$work/stage" "$work/kernel-cold"
    cp -a "$work/stage-src" "$work/stage"
    t0=$(now_ms)
    # 1. vmlinuz and the modules out of the kernel package (or its extraction).
    if [[ $1 == cold ]]; then
        kdir="$work/kernel-cold"
        mkdir -p "$kdir"
        dpkg-deb --fsys-tarfile "$deb" \
            | tar -x -C "$kdir" --wildcards './boot/vmlinuz-*' -T "$work/deb-members" \
            || die "extracting from $deb failed"
    else
        kdir="$work/kernel-warm"
    fi
    cp "$kdir"/boot/vmlinuz-* "$work/vmlinuz"
    if [[ -s $work/deb-members ]]; then
        cp -a "$kdir/lib/modules/$kver/." "$work/stage/$stage_modules_rel/"
    fi
    # 2. the rootfs without ./boot and ./tmp, as rootfs.tar.gz at the top.
    tar -C "$work/rootfs-tree" --exclude=./boot --exclude=./tmp -czf "$work/stage/rootfs.tar.gz" .
    t1=$(now_ms)
    # 3. generate-bootkit-initramfs.sh's repack.
    (cd "$work/stage" && find . | cpio -o -H newc --quiet | gzip) >"$work/pipeline-initramfs"
    t2=$(now_ms)
    echo $(( t2 - t0 )) >>"$work/pipeline-$1.ms"
    echo $(( t2 - t1 )) >>"$work/cpio.ms"
    log "pipeline $1 run $2/$runs: $(( t2 - t0 )) ms (find|cpio|gzip $(( t2 - t1 )) ms)"
}
: >"$work/pipeline-cold.ms"
: >"$work/pipeline-warm.ms"
: >"$work/cpio.ms"
for i in $(seq 1 "$runs"); do run_pipeline cold "$i"; done
for i in $(seq 1 "$runs"); do run_pipeline warm "$i"; done
pipeline_size=$(stat -c %s "$work/pipeline-initramfs")

bc=$(median <"$work/builder-cold.ms")
bw=$(median <"$work/builder-warm.ms")
pc=$(median <"$work/pipeline-cold.ms")
pw=$(median <"$work/pipeline-warm.ms")
c=$(median <"$work/cpio.ms")
verdict() { # verdict SPEEDUP
    awk -v s="$1" -v bs="$builder_size" -v ps="$pipeline_size" \
        'BEGIN { print (s != "n/a" && s >= 3 && bs < ps) ? "met" : "NOT met" }'
}
printf '\nbuild benchmark: %s runs each, medians in ms\n\n' "$runs"
printf '%-50s %8s %8s\n' "" cold warm
printf '%-50s %8s %8s\n' "bootkit-build build" "$bc" "$bw"
printf '%-50s %8s %8s\n' "shell pipeline (kernel files, tar.gz, cpio|gzip)" "$pc" "$pw"
printf '%-50s %8s %8s\n' "speed-up (pipeline / builder)" "$(ratio "$pc" "$bc")x" "$(ratio "$pw" "$bw")x"
printf '%-50s %8s\n' "the pipeline's find|cpio|gzip step alone" "$c"
printf '\ninitramfs size: builder %s B, pipeline %s B (builder/pipeline %s)\n' \
    "$builder_size" "$pipeline_size" "$(ratio "$builder_size" "$pipeline_size")"
printf 'cold = empty kernel cache / .deb extracted every run; warm = kernel already extracted\n'
printf 'target >= 3x faster with a smaller output: cold %s, warm %s\n' \
    "$(verdict "$(ratio "$pc" "$bc")")" "$(verdict "$(ratio "$pw" "$bw")")"
