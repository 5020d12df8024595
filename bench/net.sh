#!/usr/bin/env bash
# Network benchmark (not a test): how fast the bootkit's DHCP client gets a usable lease,
# against busybox udhcpc in the same VM (same kernel, same modules, same dnsmasq server).
#
# The test network is built here and lives only while the script runs: a network
# namespace (no route out) holding a bridge br0 (10.0.2.2/24, dnsmasq on it) and a tap
# device tap0 on the bridge; QEMU runs inside the namespace with a virtio-net NIC on tap0.
# dnsmasq runs with --no-ping (else it waits ~3 s before each offer). Everything is
# removed on exit (trap).
#
# bootkit:  out/qemu-test/{vmlinuz,initramfs} with out/qemu-test/cmdline, console times
#           (kernel timestamps) of:
#             "network: eth0: DHCP SELECTING"  logged right after its first DISCOVER is sent
#             "network: eth0: lease ..."        the lease is applied (address + routes)
#             "target network-online reached"
# baseline: the same initramfs with /init replaced by a busybox script: mount proc/sys/dev,
#           insmod virtio_pci + virtio_net (modules.dep order), `ip link set eth0 up`
#           (mark "link up"), then `udhcpc -i eth0 -f -q -n -t 20 -T 1 -s SCRIPT`, whose
#           script applies the lease with `ip addr add` / `ip route add default` (and
#           resolv.conf) and marks "lease". Its "broadcasting discover" line marks the first
#           DISCOVER. Its deconfig step is a no-op (favours udhcpc). Marks go to /dev/kmsg,
#           so both sides use the kernel's clock. network-online = lease (nothing else).
#
# Rows (medians, ms):
#   DISCOVER->lease   first DISCOVER sent -> lease applied: the DHCP exchange plus applying
#                     it, the one span both sides log alike. Target: bootkit/udhcpc <= 1.0.
#   link up->lease    baseline only: from `ip link set eth0 up` (udhcpc's start-up included);
#                     the bootkit logs nothing when it sets the link up.
#   start->DISCOVER   kernel start (timestamp 0) -> first DISCOVER
#   start->lease      kernel start -> lease applied
#   start->online     kernel start -> network-online (bootkit: after its rootfs unpack and
#                     all modules; baseline: = start->lease)
#   lease->online     bootkit: what network-online adds after the lease
# plus, for the bootkit, network-online / bare lease time = start->online / start->lease
# (target <= 1.5), and the time of "random: crng init done" when the console shows it (the
# baseline reads it from dmesg; the bootkit's console has it only with loglevel >= 6, e.g.
# BENCH_APPEND=loglevel=6).
#
#   bench/net.sh [N]         N runs each (default 5, or BENCH_RUNS)
#   BENCH_CPU=max            QEMU -cpu max (TCG emulates RDRAND: the kernel's random pool is
#                            ready at once); default: QEMU's default CPU (no RDRAND)
#   BOOTKIT_QEMU_ACCEL=kvm   KVM instead of TCG (-cpu host unless BENCH_CPU is set)
#   BENCH_TIMEOUT=120        seconds per boot
#   BENCH_APPEND=...         words added to both kernel command lines
#   BENCH_IMAGE=out/qemu-test  the image directory (vmlinuz, initramfs, cmdline)
# Needs root (network namespace, tap), qemu-system-x86_64, dnsmasq, ip, cpio, zstd.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
export bench_name=bench-net
# shellcheck source=bench/lib.sh
source "$repo_root/bench/lib.sh"

runs="${1:-${BENCH_RUNS:-5}}"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "N must be a positive number (got $runs)"
timeout_s="${BENCH_TIMEOUT:-120}"
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || die "BENCH_TIMEOUT must be a positive number of seconds"

img="${BENCH_IMAGE:-out/qemu-test}"
for f in vmlinuz initramfs cmdline; do
    [[ -s $img/$f ]] || die "$img/$f is missing: run scripts/build-bootkit.sh first"
done
for tool in qemu-system-x86_64 dnsmasq ip cpio zstd gzip; do
    command -v "$tool" >/dev/null || die "$tool not found: run scripts/setup.sh (dnsmasq: apt-get install dnsmasq-base)"
done
(( EUID == 0 )) || die "needs root (network namespace, tap device)"
[[ -c /dev/net/tun ]] || die "/dev/net/tun is missing"

kernel=$img/vmlinuz
cmdline="$(cat "$img/cmdline")${BENCH_APPEND:+ $BENCH_APPEND}"
work="$repo_root/target/bench/net"
rm -rf "$work"
mkdir -p "$work/logs"

# --- the baseline image: the bootkit's initramfs with a busybox /init running udhcpc
tree=$work/baseline-tree
log "unpacking $img/initramfs"
unpack_initramfs "$img/initramfs" "$tree"
[[ -x $tree/bin/busybox ]] || die "$img/initramfs has no /bin/busybox"
applets=$'\n'$("$tree/bin/busybox" --list)$'\n'
for applet in udhcpc ip insmod dmesg awk grep poweroff usleep; do
    [[ $applets == *$'\n'"$applet"$'\n'* ]] || die "the image's busybox has no $applet applet"
done
mdir=$(find "$tree/lib/modules" "$tree/usr/lib/modules" -mindepth 2 -maxdepth 2 -name modules.dep -printf '%h\n' 2>/dev/null | head -1 || true)
insmods=
if [[ -n $mdir ]]; then
    while IFS= read -r ko; do
        [[ $ko == *.ko ]] || die "$ko: compressed modules are not handled (busybox insmod)"
        insmods+="\$bb insmod /${mdir#"$tree"/}/$ko || fail \"insmod $ko\""$'\n'
    done < <(module_load_order "$mdir" virtio_pci virtio_net)
fi
# The rest of the tree (the rootfs archive, the other modules) stays, unused, so the
# kernel unpacks about as much as for the bootkit.
cat >"$tree/init" <<EOF
#!/bin/busybox sh
# Baseline /init for bench/net.sh: link up, then busybox udhcpc, then power off.
bb=/bin/busybox
fail() { echo "baseline: FAILED: \$*"; \$bb poweroff -f; }
\$bb mount -t proc proc /proc || fail "mount proc"
\$bb mount -t sysfs sysfs /sys || fail "mount sysfs"
\$bb mount -t devtmpfs devtmpfs /dev || fail "mount devtmpfs"
exec 3>/dev/kmsg
${insmods:-:}
i=0
while [ ! -e /sys/class/net/eth0 ]; do
    i=\$((i + 1)); [ \$i -le 500 ] || fail "no eth0 after 5 s"; \$bb usleep 10000
done
\$bb ip link set lo up
\$bb ip link set eth0 up || fail "ip link set eth0 up"
echo "baseline: mark link-up" >&3
# udhcpc's messages go to /dev/kmsg, stamped by the kernel as they come.
\$bb udhcpc -i eth0 -f -q -n -t 20 -T 1 -s /bin/udhcpc-script 2>&1 | while IFS= read -r line; do
    echo "baseline: udhcpc: \$line" >&3
done
\$bb dmesg | \$bb grep -q 'baseline: mark lease' || fail "no lease (udhcpc: \$(\$bb dmesg | \$bb grep 'baseline: udhcpc' | \$bb tail -1))"
\$bb dmesg | \$bb awk '
    function ts(line) { return substr(line, 2, index(line, "]") - 2) + 0 }
    /baseline: mark link-up/ { link = ts(\$0) }
    /baseline: udhcpc: .*(broadcasting discover|[Ss]ending discover)/ && !disc { disc = ts(\$0) }
    /baseline: mark lease/ && !lease { lease = ts(\$0) }
    /random: crng init done/ && !seen { seen = 1; crng = ts(\$0) }
    END { printf "baseline: link up at %.6f, discover at %.6f, lease at %.6f, crng %s\n",
            link, disc, lease, seen ? sprintf("%.6f", crng) : "n/a" }'
# For the log only (after the measurement): the marks, then when the kernel's random pool
# was ready (waits up to 5 s for it).
\$bb dmesg | \$bb grep -E 'baseline: |random'
i=0
while ! \$bb dmesg | \$bb grep -q 'random: crng init done' && [ \$i -lt 50 ]; do
    i=\$((i + 1)); \$bb usleep 100000
done
\$bb dmesg | \$bb awk '
    function ts(line) { return substr(line, 2, index(line, "]") - 2) + 0 }
    /random: crng init done/ && !seen { seen = 1; crng = ts(\$0) }
    END { printf "baseline: crng init done at %s\n", seen ? sprintf("%.6f", crng) : "n/a (not within 5 s of the lease)" }'
\$bb poweroff -f
EOF
cat >"$tree/bin/udhcpc-script" <<'EOF'
#!/bin/busybox sh
# udhcpc's script for bench/net.sh: apply the lease, mark it in the kernel log.
bb=/bin/busybox
case $1 in
    bound|renew)
        $bb ip addr add "$ip/${mask:-24}" ${broadcast:+broadcast "$broadcast"} dev "$interface" || exit 1
        for r in $router; do
            $bb ip route add default via "$r" dev "$interface"
            break
        done
        if [ -n "$dns" ]; then
            for d in $dns; do echo "nameserver $d"; done >/etc/resolv.conf
        fi
        echo "baseline: mark lease $ip/${mask:-24} router ${router:-none}" >/dev/kmsg
        ;;
esac
exit 0
EOF
chmod 755 "$tree/init" "$tree/bin/udhcpc-script"
image_compression=$(compression_of "$img/initramfs")
(cd "$tree" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) \
    | compress_as "$image_compression" >"$work/baseline-initramfs"
log "baseline initramfs: $(stat -c %s "$work/baseline-initramfs") bytes ($image_compression); bootkit: $(stat -c %s "$img/initramfs") bytes"

# --- the test network: namespace, bridge, tap, dnsmasq
ns="bk-bench-net-$$"
dnsmasq_pid=
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [[ -n ${qemu_run_pid:-} ]]; then kill "$qemu_run_pid" 2>/dev/null || true; wait "$qemu_run_pid" 2>/dev/null || true; fi
    if [[ -n $dnsmasq_pid ]]; then kill "$dnsmasq_pid" 2>/dev/null || true; wait "$dnsmasq_pid" 2>/dev/null || true; fi
    # Anything else still running in our namespace was started by this script.
    local pid
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
ip netns add "$ns" || die "cannot create the network namespace $ns"
in_ns() { ip netns exec "$ns" "$@"; }
in_ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || true
ip -n "$ns" link set lo up
ip -n "$ns" link add br0 type bridge forward_delay 0 stp_state 0
ip -n "$ns" tuntap add dev tap0 mode tap
ip -n "$ns" link set tap0 master br0
ip -n "$ns" addr add 10.0.2.2/24 dev br0
ip -n "$ns" link set br0 up
ip -n "$ns" link set tap0 up
# `ip netns exec` execs dnsmasq: $! is dnsmasq itself (a shell function would fork first).
ip netns exec "$ns" dnsmasq --no-daemon --conf-file=/dev/null --port=0 --bind-interfaces --interface=br0 \
    --except-interface=lo --dhcp-range=10.0.2.15,10.0.2.99,255.255.255.0,24h --no-ping \
    --dhcp-leasefile="$work/dnsmasq.leases" --log-dhcp --pid-file="$work/dnsmasq.pid" \
    >"$work/dnsmasq.log" 2>&1 &
dnsmasq_pid=$!
for _ in $(seq 1 50); do
    [[ -n $(in_ns ss -Huln 'sport = :67' 2>/dev/null) ]] && break
    kill -0 "$dnsmasq_pid" 2>/dev/null || die "dnsmasq exited: $(tail -3 "$work/dnsmasq.log")"
    sleep 0.1
done
[[ -n $(in_ns ss -Huln 'sport = :67') ]] || die "dnsmasq does not listen on port 67 after 5 s"
log "network namespace $ns: br0 10.0.2.2/24, tap0, dnsmasq (pid $dnsmasq_pid)"

accel=(-accel tcg)
cpu=()
[[ -n ${BENCH_CPU:-} ]] && cpu=(-cpu "$BENCH_CPU")
if [[ ${BOOTKIT_QEMU_ACCEL:-tcg} == kvm ]]; then
    accel=(-accel kvm)
    [[ -z ${BENCH_CPU:-} ]] && cpu=(-cpu host)
fi
boot() { # boot LOG PATTERN INITRD APPEND
    qemu_run_until "$1" "$2" "$timeout_s" ip netns exec "$ns" \
        qemu-system-x86_64 -nographic -serial stdio -monitor none -no-reboot \
        -m 1024 -smp 2 "${accel[@]}" "${cpu[@]}" \
        -netdev tap,id=n0,ifname=tap0,script=no,downscript=no \
        -device virtio-net-pci,netdev=n0,romfile= \
        -kernel "$kernel" -initrd "$3" -append "$4"
}

# First kernel timestamp of a console line matching the ERE, in seconds ("" if none).
ts_of() { # ts_of LOG ERE
    { tr -d '\r' <"$1" | grep -m1 -E -- "$2" || true; } | sed -nE 's/^[^[]*\[ *([0-9]+\.[0-9]+)\].*$/\1/p'
}
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d", (b - a) * 1000 + 0.5 }'; }

# TSV columns: DISCOVER->lease, link up->lease, start->DISCOVER, start->lease,
# start->online, lease->online, crng (s or n/a)
: >"$work/bootkit.tsv"
: >"$work/baseline.tsv"
for i in $(seq 1 "$runs"); do
    log "run $i/$runs: bootkit"
    blog=$work/logs/bootkit-$i.log
    boot "$blog" 'target network-online reached' "$img/initramfs" "$cmdline" \
        || die "bootkit did not reach network-online in $timeout_s s (log: $blog)"
    disc=$(ts_of "$blog" 'network: eth0: DHCP SELECTING')
    lease=$(ts_of "$blog" 'network: eth0: lease ')
    online=$(ts_of "$blog" 'target network-online reached')
    crng=$(ts_of "$blog" 'random: crng init done')
    [[ -n $disc && -n $lease && -n $online ]] || die "bootkit: missing SELECTING/lease/network-online lines in $blog"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(ms "$disc" "$lease")" n/a "$(ms 0 "$disc")" \
        "$(ms 0 "$lease")" "$(ms 0 "$online")" "$(ms "$lease" "$online")" "${crng:-n/a}" >>"$work/bootkit.tsv"
    log "  DISCOVER at $disc, lease at $lease, network-online at $online, crng ${crng:-not on the console}"

    log "run $i/$runs: baseline (udhcpc)"
    slog=$work/logs/baseline-$i.log
    boot "$slog" 'baseline: (crng init done at|FAILED)' "$work/baseline-initramfs" "$cmdline" \
        || die "baseline did not finish in $timeout_s s (log: $slog)"
    line=$(tr -d '\r' <"$slog" | grep -m1 -E 'baseline: (link up at|FAILED)' || true)
    re='link up at ([0-9.]+), discover at ([0-9.]+), lease at ([0-9.]+), crng ([0-9.]+|n/a)'
    [[ $line =~ $re ]] || die "baseline: ${line#*baseline: } (log: $slog)"
    link=${BASH_REMATCH[1]} disc=${BASH_REMATCH[2]} lease=${BASH_REMATCH[3]}
    crng=$(tr -d '\r' <"$slog" | sed -nE 's/^.*baseline: crng init done at ([0-9.]+).*$/\1/p' | head -1 || true)
    crng=${crng:-n/a}
    awk -v d="$disc" 'BEGIN { exit !(d > 0) }' || die "baseline: no udhcpc discover line (log: $slog)"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(ms "$disc" "$lease")" "$(ms "$link" "$lease")" "$(ms 0 "$disc")" \
        "$(ms 0 "$lease")" "$(ms 0 "$lease")" 0 "$crng" >>"$work/baseline.tsv"
    log "  link up at $link, DISCOVER at $disc, lease at $lease, crng $crng"
done

# --- medians
col() { cut -f"$2" "$1" | { grep -v '^n/a$' || true; } | median; }
cpu_name=${BENCH_CPU:-$([[ ${BOOTKIT_QEMU_ACCEL:-tcg} == kvm ]] && echo host || echo default)}
printf '\nnetwork benchmark: %s runs each, %s, -cpu %s, -smp 2, dnsmasq --no-ping in a network namespace\n' \
    "$runs" "${BOOTKIT_QEMU_ACCEL:-tcg}" "$cpu_name"
printf 'medians in ms; "start" = kernel timestamp 0, "lease" = lease applied, DISCOVER = the first one sent\n\n'
printf '%-16s %10s %10s %8s\n' span bootkit udhcpc ratio
row_names=("DISCOVER->lease" "link up->lease" "start->DISCOVER" "start->lease" "start->online" "lease->online")
for idx in 1 2 3 4 5 6; do
    b=$(col "$work/bootkit.tsv" "$idx")
    s=$(col "$work/baseline.tsv" "$idx")
    r=$(ratio "$b" "$s")
    [[ $b == n/a || $s == n/a || $idx == 6 ]] && r=-
    printf '%-16s %10s %10s %8s\n' "${row_names[idx-1]}" "$b" "$s" "$r"
done
crng_b=$(cut -f7 "$work/bootkit.tsv" | { grep -v '^n/a$' || true; } | sort -n | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] " s" : "n/a" }')
crng_s=$(cut -f7 "$work/baseline.tsv" | { grep -v '^n/a$' || true; } | sort -n | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] " s" : "n/a" }')
printf '%-16s %10s %10s\n' "crng init done" "${crng_b% s}" "${crng_s% s}"
printf '(crng init done: kernel time in s, median of the runs that saw it; the bootkit'"'"'s console\n'
printf ' shows it only with BENCH_APPEND=loglevel=6 and before network-online; udhcpc: from dmesg,\n'
printf ' waiting up to 5 s after the lease; n/a = not seen)\n'

lease_r=$(ratio "$(col "$work/bootkit.tsv" 1)" "$(col "$work/baseline.tsv" 1)")
online_r=$(ratio "$(col "$work/bootkit.tsv" 5)" "$(col "$work/bootkit.tsv" 4)")
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r != "n/a" && r <= t + 0.00001) ? "met" : "NOT met" }'; }
printf '\nlease (DISCOVER->lease) bootkit/udhcpc: %s   target <= 1.0: %s\n' "$lease_r" "$(verdict "$lease_r" 1.0)"
printf 'bootkit network-online / bare lease (start->online / start->lease): %s   target <= 1.5: %s\n' \
    "$online_r" "$(verdict "$online_r" 1.5)"
printf 'bootkit network-online / udhcpc bare lease (start->online / start->lease): %s\n' \
    "$(ratio "$(col "$work/bootkit.tsv" 5)" "$(col "$work/baseline.tsv" 4)")"
printf 'raw runs: %s/{bootkit,baseline}.tsv, console logs: %s/logs/, dnsmasq: %s/dnsmasq.log\n' "$work" "$work" "$work"
