# shellcheck shell=bash
# Shared helpers for bench/*.sh (sourced, not run).

bench_name="${bench_name:-bench}"
log() { printf '%s: %s\n' "$bench_name" "$*" >&2; }
die() { printf '%s: error: %s\n' "$bench_name" "$*" >&2; exit 1; }

# Prints the compression of FILE by its magic bytes: zstd, gzip, xz or none.
compression_of() {
    local magic
    magic=$(head -c 6 "$1" | od -An -tx1 | tr -d ' \n')
    case $magic in
        28b52ffd*) echo zstd ;;
        1f8b*) echo gzip ;;
        fd377a585a00) echo xz ;;
        *) echo none ;;
    esac
}

# Decompresses FILE to stdout whatever its compression.
decompress() {
    case $(compression_of "$1") in
        zstd) zstd -dc -- "$1" ;;
        gzip) gzip -dc -- "$1" ;;
        xz) xz -dc -- "$1" ;;
        none) cat -- "$1" ;;
    esac
}

# Compresses stdin to stdout with KIND (zstd, gzip, xz, none), default levels.
compress_as() {
    case $1 in
        zstd) zstd -q -c -T1 ;;
        gzip) gzip -c -n ;;
        xz) xz -c --check=crc32 ;;
        none) cat ;;
    esac
}

# Unpacks a single-segment initramfs IMAGE (any compression) into DIR.
unpack_one_segment() {
    local image=$1 dir=$2
    mkdir -p "$dir"
    decompress "$image" | (cd "$dir" && cpio -id --quiet --no-absolute-filenames) \
        || die "cannot unpack $image"
}

# The builder's image is two segments when the rootfs archive is compressed (see
# builder/src/initramfs.rs): everything else compressed, then an uncompressed newc segment
# holding /rootfs.tar.* alone at a 4-byte-aligned offset. Unpack both into one tree, as the
# kernel does.
unpack_initramfs() { # unpack_initramfs IMAGE DIR
    local image=$1 dir=$2 off k first
    off=$(LC_ALL=C grep -obUaP '070701[0-9A-Fa-f]{104}rootfs\.tar' "$image" | head -1 | cut -d: -f1 || true)
    if [[ -z $off || $off == 0 ]]; then
        unpack_one_segment "$image" "$dir"
        return
    fi
    # The first segment's stream ends 0-3 zero bytes before $off (padding to the alignment).
    first=$(mktemp)
    for k in 0 1 2 3; do
        head -c "$(( off - k ))" "$image" >"$first"
        if decompress "$first" >/dev/null 2>&1; then
            unpack_one_segment "$first" "$dir"
            tail -c "+$(( off + 1 ))" "$image" \
                | (cd "$dir" && cpio -id --quiet --no-absolute-filenames) \
                || die "cannot unpack the rootfs segment of $image"
            rm -f "$first"
            return
        fi
    done
    rm -f "$first"
    die "cannot find the end of the first segment of $image"
}
# The rootfs archive at the top of an unpacked initramfs, as the init looks for it.
find_rootfs_archive() {
    local dir=$1 name
    for name in rootfs.tar.gz rootfs.tar.zst rootfs.tar; do
        if [[ -f $dir/$name ]]; then echo "$dir/$name"; return 0; fi
    done
    return 1
}

# Median of the numbers on stdin (one a line); integer, lower middle for even N.
median() {
    sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) { print "n/a"; exit } print v[int((NR + 1) / 2)] }'
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# ratio A B: A/B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }

# qemu_boot_until LOG PATTERN TIMEOUT_S KERNEL INITRD APPEND
# Boots QEMU with the console in LOG and stops it once a console line holds
# PATTERN (or QEMU exits, or the timeout passes). Returns 0 if PATTERN appeared.
qemu_boot_until() {
    local log=$1 pattern=$2 timeout_s=$3 kernel=$4 initrd=$5 append=$6
    local accel=(-accel tcg)
    [[ ${BOOTKIT_QEMU_ACCEL:-tcg} == kvm ]] && accel=(-accel kvm -cpu host)
    : >"$log"
    qemu-system-x86_64 -nographic -serial stdio -monitor none -no-reboot \
        -m 1024 -smp "${BENCH_CPUS:-2}" "${accel[@]}" \
        -netdev "user,id=n0,restrict=on" -device "virtio-net-pci,netdev=n0,romfile=" \
        -kernel "$kernel" -initrd "$initrd" -append "$append" \
        </dev/null >"$log" 2>&1 &
    local pid=$! found=1
    local deadline=$(( $(date +%s) + timeout_s ))
    while (( $(date +%s) < deadline )); do
        if grep -q -- "$pattern" "$log"; then found=0; break; fi
        kill -0 "$pid" 2>/dev/null || { grep -q -- "$pattern" "$log" && found=0; break; }
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return $found
}

# qemu_run_until LOG PATTERN TIMEOUT_S CMD...
# Runs CMD (a QEMU command line, possibly behind a wrapper such as `ip netns exec NS`,
# which must exec QEMU) with its output in LOG and stops it once a line of LOG matches the
# extended regex PATTERN (or CMD exits, or TIMEOUT_S seconds pass). The running pid is in
# $qemu_run_pid meanwhile, for an exit trap. Returns 0 if PATTERN appeared.
qemu_run_pid=
qemu_run_until() {
    local log=$1 pattern=$2 timeout_s=$3
    shift 3
    : >"$log"
    "$@" </dev/null >"$log" 2>&1 &
    qemu_run_pid=$!
    local found=1 deadline=$(( $(date +%s) + timeout_s ))
    while (( $(date +%s) < deadline )); do
        if grep -Eq -- "$pattern" "$log"; then found=0; break; fi
        kill -0 "$qemu_run_pid" 2>/dev/null || { grep -Eq -- "$pattern" "$log" && found=0; break; }
        sleep 0.1
    done
    kill "$qemu_run_pid" 2>/dev/null || true
    wait "$qemu_run_pid" 2>/dev/null || true
    qemu_run_pid=
    return $found
}

# module_load_order MODULES_DIR NAME...: the .ko paths (relative to MODULES_DIR) to insmod,
# dependencies first, for the modules NAME... as modprobe would load them (from modules.dep;
# names with - or _ alike; names not in modules.dep, e.g. built-in ones, are skipped).
module_load_order() {
    local dir=$1
    shift
    awk -v wanted="$*" '
        function norm(p,   b) { b = p; sub(/.*\//, "", b); sub(/\.ko(\.(zst|xz|gz))?$/, "", b); gsub(/-/, "_", b); return b }
        function visit(n,   i, k, d) {
            if (n in seen || !(n in path)) return
            seen[n] = 1
            k = split(deps[n], d, " ")
            for (i = k; i >= 1; i--) visit(norm(d[i]))
            print path[n]
        }
        /:/ { m = $0; sub(/:.*/, "", m); r = $0; sub(/^[^:]*:[ \t]*/, "", r); n = norm(m); path[n] = m; deps[n] = r }
        END { k = split(wanted, w, " "); for (i = 1; i <= k; i++) { x = w[i]; gsub(/-/, "_", x); visit(x) } }
    ' "$dir/modules.dep"
}
