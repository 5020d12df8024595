#!/usr/bin/env bash
# bench/pxe.sh [NODES]: the provisioner under a simulated rack of NODES nodes (default 500)
# PXE-booting at once, inside a network namespace of its own (no route out).
#
#   1. Full boot per node, nodes powered on over 2 s: proxyDHCP (DISCOVER/OFFER, and the
#      4011 boot-server REQUEST/ACK when the offer has no file), TFTP fetch of ipxe.efi, the
#      iPXE scripts over HTTP, device discovery (onboardingmgr.v1), and a three-action workflow
#      (GetAction + RUNNING/SUCCESS reports). Half the nodes are registered from CSV by serial,
#      the rest get the default profile. Reports completion time, p50/p99 per step, errors and
#      lost status reports, then checks every node is `provisioned` in the database.
#   2. DHCP+TFTP throughput, all nodes at once: the provisioner, then dnsmasq (Debian) serving
#      the same ipxe.efi in proxy mode with its TFTP server — side by side in one run.
#
# Needs root (namespaces), dnsmasq-base and ipxe (scripts/setup.sh installs them).
set -euo pipefail
bench_name=pxe
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nodes=${1:-500}
[[ $nodes =~ ^[0-9]+$ && $nodes -ge 1 && $nodes -le 5000 ]] || die "NODES must be 1..5000, got $nodes"
[[ $(id -u) -eq 0 ]] || die "needs root for the network namespace: sudo $0"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
for tool in dnsmasq ip; do command -v "$tool" >/dev/null || die "$tool not found: run scripts/setup.sh"; done
[[ -f /usr/lib/ipxe/ipxe.efi ]] || die "/usr/lib/ipxe/ipxe.efi missing: apt-get install ipxe (scripts/setup.sh)"

log "building provisioner and pxe-load (release)"
cargo build --release -q -p provisioner -p pxe-load || die "cargo build failed"
provisioner="$repo_root/target/release/provisioner"
load="$repo_root/target/release/pxe-load"

ns="pxebench-$$"
work=$(mktemp -d /tmp/bench-pxe.XXXXXX)
server_pid=""
cleanup() {
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

server=10.77.0.1
first_node=10.77.1.1
log "namespace $ns: veth pxe0/pxe1, $server/16 and $nodes node addresses"
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add pxe0 type veth peer name pxe1
ip -n "$ns" addr add "$server/16" dev pxe0
ip -n "$ns" link set pxe0 up
ip -n "$ns" link set pxe1 up
for ((i = 0; i < nodes; i++)); do
    n=$((i + 1 * 256 + 1))
    echo "addr add 10.77.$((n / 256)).$((n % 256))/16 dev pxe0"
done | ip -n "$ns" -batch - || die "adding the node addresses failed"
in_ns() { ip netns exec "$ns" "$@"; }

# What the nodes get: the real ipxe.efi over TFTP; a kernel, initramfs and OS image that are
# only served, never booted.
mkdir -p "$work/tftp"
cp /usr/lib/ipxe/ipxe.efi /usr/lib/ipxe/undionly.kpxe "$work/tftp/"
# Profile files live in the artifacts directory beside the database (the provisioner serves
# nothing from elsewhere).
artifacts="$work/artifacts"
mkdir -p "$artifacts"
head -c 8M /dev/urandom > "$artifacts/vmlinuz"
head -c 32M /dev/urandom > "$artifacts/initramfs"
head -c 1M /dev/urandom > "$artifacts/os.img"
cat > "$work/template.yaml" <<'YAML'
version: "0.1"
name: bench
global_timeout: 600
tasks:
  - name: provision
    worker: "{{.device_1}}"
    actions:
      - name: stream-os-image
        image: bench/image2disk
        timeout: 60
      - name: configure
        image: bench/configure
        timeout: 60
      - name: reboot
        image: bench/reboot
        timeout: 60
YAML
db="$work/provisioner.db"
pv() { "$provisioner" --db "$db" "$@" >/dev/null; }
pv template create --file "$work/template.yaml"
pv profile create --name bench --kernel "$artifacts/vmlinuz" --initramfs "$artifacts/initramfs" \
    --template bench --os-image "$artifacts/os.img" --default
{
    echo "Serial,UUID,OSProfile"
    for ((i = 0; i < nodes; i += 2)); do printf 'LOAD%06d,,bench\n' "$i"; done
} > "$work/registrations.csv"
pv node import --file "$work/registrations.csv"
log "registered $(( (nodes + 1) / 2 )) nodes from CSV; the rest get the default profile"

start_provisioner() {
    # Not through in_ns: a function in the background is a subshell, and $! must be the
    # server itself for stop_server to reach it (ip netns exec execs the command).
    ip netns exec "$ns" "$provisioner" --db "$db" serve --grpc "$server:42113" --http 127.0.0.1:42114 \
        --admin-insecure-no-auth --advertise "$server" --dhcp proxy --dhcp-interface pxe0 \
        --tftp "$server:69" --tftp-root "$work/tftp" --boot-http "$server:7080" --syslog off \
        --allow-unauthenticated-workers \
        2> "$work/provisioner-$1.log" &
    server_pid=$!
    for _ in $(seq 100); do
        in_ns bash -c "exec 3<>/dev/tcp/$server/7080" 2>/dev/null && return 0
        kill -0 "$server_pid" 2>/dev/null || { tail -20 "$work/provisioner-$1.log" >&2; die "provisioner exited"; }
        sleep 0.1
    done
    die "the provisioner did not listen on $server:7080 within 10 s"
}
stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}
run_load() {
    local label=$1; shift
    in_ns "$load" --server "$server" --interface pxe0 --first-ip "$first_node" --nodes "$nodes" \
        --label "$label" --json "$work/$label.json" "$@" || log "$label: the run reported failures"
}

log "run 1: $nodes nodes, full boot, powered on over 2 s"
start_provisioner full
run_load provisioner-full --steps full --ramp-ms 2000
stop_server
provisioned=$("$provisioner" --db "$db" node list --json | python3 -c \
    'import json,sys; print(sum(1 for n in json.load(sys.stdin) if n["state"] == "provisioned"))')
log "nodes provisioned in the database: $provisioned of $nodes"

log "run 2: DHCP+TFTP throughput, $nodes nodes at once: provisioner"
start_provisioner throughput
run_load provisioner --steps dhcp-tftp --ramp-ms 0
stop_server

log "run 2: DHCP+TFTP throughput, $nodes nodes at once: dnsmasq"
# --tftp-max: dnsmasq's default of 50 concurrent transfers would fail most of the rack.
ip netns exec "$ns" dnsmasq --no-daemon --port=0 --interface=pxe0 --bind-interfaces \
    --dhcp-range=10.77.0.0,proxy,255.255.0.0 --pxe-service=x86-64_EFI,"Network boot",ipxe.efi \
    --enable-tftp --tftp-root="$work/tftp" --tftp-max="$((nodes + 10))" \
    --log-facility="$work/dnsmasq.log" --pid-file="$work/dnsmasq.pid" 2> "$work/dnsmasq.stderr" &
server_pid=$!
for _ in $(seq 50); do
    [[ -s $work/dnsmasq.pid ]] && break
    kill -0 "$server_pid" 2>/dev/null || die "dnsmasq exited: $(tail -3 "$work/dnsmasq.stderr")"
    sleep 0.1
done
run_load dnsmasq --steps dhcp-tftp --ramp-ms 0
stop_server

python3 - "$work" "$nodes" "$provisioned" <<'PY'
import json, sys
work, nodes, provisioned = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
full = json.load(open(f"{work}/provisioner-full.json"))
ours = json.load(open(f"{work}/provisioner.json"))
theirs = json.load(open(f"{work}/dnsmasq.json"))
print(f"\n== summary ({nodes} nodes)")
print(f"full boot: {full['seconds']:.2f} s, {full['failed']} failed, {full['reports_sent']} status reports, "
      f"{full['reports_lost']} lost, {provisioned}/{nodes} provisioned in the database")
for name, step in full["steps"].items():
    print(f"  {name:<20} p50 {step['p50_ms']:8.1f} ms   p99 {step['p99_ms']:8.1f} ms")
def rate(run): return nodes / run["seconds"]
print(f"DHCP+TFTP, all at once: provisioner {ours['seconds']:.2f} s ({rate(ours):.0f} nodes/s, "
      f"{ours['tftp_mb_per_s']:.1f} MB/s, {ours['failed']} failed); dnsmasq {theirs['seconds']:.2f} s "
      f"({rate(theirs):.0f} nodes/s, {theirs['tftp_mb_per_s']:.1f} MB/s, {theirs['failed']} failed)")
print(f"ratio provisioner/dnsmasq (throughput, higher is better): {rate(ours) / rate(theirs):.2f}")
for run in (ours, theirs):
    for name in ("dhcp offer", "dhcp 4011 ack", "tftp fetch"):
        step = run["steps"].get(name)
        if step:
            print(f"  {run['label']:<12} {name:<14} p50 {step['p50_ms']:8.1f} ms   p99 {step['p99_ms']:8.1f} ms")
PY
