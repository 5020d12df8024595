#!/usr/bin/env bash
# tink-worker benchmark (not a test): this worker's image pull and action overhead against
# containerd's own client, `ctr`, on the same containerd in the same run.
#
# Everything runs on this host and lives only while the script runs (removed on exit):
#   containerd  Debian's, as a child with a generated config (temporary root, state dir and
#               socket under target/bench/worker, no CRI plugin), runc
#   registry    Debian's docker-registry on 127.0.0.1 (free port, plain HTTP, temp storage)
#   images      made here and pushed with curl over the registry v2 API (POST + PUT uploads):
#               big:1    ~200 MB in 4 gzip layers of random (incompressible) data
#               tiny:1   /bin/busybox (static) with /bin/true, one layer
#
# Rows:
#   pull     `tink-worker pull IMAGE` (registry fetch, content store, layers applied onto
#            snapshots, image record: the worker's whole pull) against
#            `ctr images pull --plain-http IMAGE` (which also fetches and unpacks); the image
#            is removed (`ctr images rm --sync`: containerd collects its content and snapshots) before
#            every run, and the two alternate. Target: tink-worker/ctr <= 1.1.
#   action   50 trivial actions (`true` in tiny:1) with `tink-worker run-once --repeat 50`
#            (what the worker loop does per action: container + snapshot + task with output
#            FIFOs, wait, delete) against a loop of 50 `ctr run --rm` (one ctr process per
#            action, as a shell-driven worker would run them). Per-action time = total / 50.
#            Target: tink-worker/ctr <= 1.0.
#
#   bench/worker.sh [N]        N pull runs each (default 3, or BENCH_RUNS)
#   BENCH_ACTIONS=50           actions per action run
#   BENCH_PROFILE=release      cargo profile of tink-worker (release: lto, as shipped)
# Needs root, containerd, ctr, runc, docker-registry, curl, gzip, sha256sum, busybox-static.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
export bench_name=bench-worker
# shellcheck source=bench/lib.sh
source "$repo_root/bench/lib.sh"

runs="${1:-${BENCH_RUNS:-3}}"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "N must be a positive number (got $runs)"
actions="${BENCH_ACTIONS:-50}"
[[ $actions =~ ^[1-9][0-9]*$ ]] || die "BENCH_ACTIONS must be a positive number (got $actions)"
profile="${BENCH_PROFILE:-release}"
(( EUID == 0 )) || die "needs root (containerd, runc)"
for tool in containerd ctr runc docker-registry curl gzip sha256sum tar; do
    command -v "$tool" >/dev/null || die "$tool not found: apt-get install containerd runc docker-registry curl"
done
busybox=/bin/busybox
if ! { [[ -x $busybox ]] && "$busybox" --list 2>/dev/null | grep -qx true; }; then
    die "$busybox (static, with the true applet) not found: apt-get install busybox-static"
fi

log "building tink-worker ($profile)"
cargo build --quiet --profile "$profile" -p tink-worker || die "cannot build tink-worker"
profile_dir=$profile
[[ $profile == dev ]] && profile_dir=debug
worker_bin="$repo_root/target/$profile_dir/tink-worker"
[[ -x $worker_bin ]] || die "$worker_bin was not built"

work="$repo_root/target/bench/worker"
containerd_pid=
registry_pid=
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [[ -n $containerd_pid ]]; then
        # Tasks left by an interrupted run: their shims would outlive containerd.
        ctr_ns tasks ls -q 2>/dev/null | while read -r task; do ctr_ns tasks kill -s SIGKILL "$task" 2>/dev/null || true; done
        kill "$containerd_pid" 2>/dev/null || true
        wait "$containerd_pid" 2>/dev/null || true
    fi
    if [[ -n $registry_pid ]]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
    umount -R "$work/containerd-root" 2>/dev/null || true
    rm -rf "$work/containerd-root" "$work/containerd-state" "$work/registry" "$work/images"
    exit "$rc"
}
rm -rf "$work"
mkdir -p "$work/logs" "$work/images"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# A TCP port on 127.0.0.1 that nothing listens on.
free_port() {
    local port
    for port in $(shuf -i 20000-60000 -n 50); do
        [[ -z $(ss -Htln "sport = :$port") ]] && { echo "$port"; return 0; }
    done
    die "no free TCP port found"
}

# wait_for WHAT SECONDS CMD...: runs CMD every 0.1 s until it succeeds.
wait_for() {
    local what=$1 seconds=$2 i
    shift 2
    for (( i = 0; i < seconds * 10; i++ )); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "$what not ready after $seconds s"
}

# --- containerd
socket="$work/containerd-state/containerd.sock"
namespace=tinkerbell
cat >"$work/containerd.toml" <<EOF
version = 2
root = "$work/containerd-root"
state = "$work/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$socket"
[ttrpc]
  address = "$socket.ttrpc"
EOF
containerd --config "$work/containerd.toml" >"$work/logs/containerd.log" 2>&1 &
containerd_pid=$!
ctr_ns() { ctr --address "$socket" --namespace "$namespace" "$@"; }
wait_for containerd 30 ctr_ns version
log "containerd $(containerd --version | awk '{print $3}') on $socket (pid $containerd_pid)"

# --- registry
port=$(free_port)
registry="127.0.0.1:$port"
mkdir -p "$work/registry"
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/registry
  delete:
    enabled: true
http:
  addr: $registry
EOF
docker-registry serve "$work/registry.yml" >"$work/logs/registry.log" 2>&1 &
registry_pid=$!
wait_for "docker-registry on $registry" 30 curl -fsS "http://$registry/v2/"
log "docker-registry on $registry (pid $registry_pid)"

# --- images, pushed over the registry v2 API
# push_blob REPO FILE: uploads FILE (POST for an upload URL, then one PUT with its digest).
push_blob() {
    local repo=$1 file=$2 digest location
    digest="sha256:$(sha256sum "$file" | cut -d' ' -f1)"
    if curl -fs -o /dev/null -I "http://$registry/v2/$repo/blobs/$digest"; then return 0; fi
    location=$(curl -fsS -o /dev/null -D - -X POST "http://$registry/v2/$repo/blobs/uploads/" \
        | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
    [[ -n $location ]] || die "registry gave no upload location for $repo"
    [[ $location == http* ]] || location="http://$registry$location"
    [[ $location == *\?* ]] && location+="&digest=$digest" || location+="?digest=$digest"
    curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' \
        --data-binary "@$file" "$location" || die "cannot upload $file to $repo"
}
descriptor() { # descriptor MEDIA_TYPE FILE
    printf '{"mediaType":"%s","digest":"sha256:%s","size":%s}' \
        "$1" "$(sha256sum "$2" | cut -d' ' -f1)" "$(stat -c %s "$2")"
}
# push_image REPO:TAG CONFIG_JSON LAYER.tar.gz...: config blob + layers + OCI manifest.
push_image() {
    local ref=$1 config_json=$2
    shift 2
    local repo=${ref%:*} tag=${ref##*:} dir=$work/images/${ref//[\/:]/_}
    mkdir -p "$dir"
    local diff_ids=() layers=() layer
    for layer in "$@"; do
        diff_ids+=("\"sha256:$(gzip -dc "$layer" | sha256sum | cut -d' ' -f1)\"")
        layers+=("$(descriptor application/vnd.oci.image.layer.v1.tar+gzip "$layer")")
        push_blob "$repo" "$layer"
    done
    local IFS=,
    printf '{"architecture":"amd64","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":[%s]}}' \
        "$config_json" "${diff_ids[*]}" >"$dir/config.json"
    push_blob "$repo" "$dir/config.json"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":%s,"layers":[%s]}' \
        "$(descriptor application/vnd.oci.image.config.v1+json "$dir/config.json")" "${layers[*]}" >"$dir/manifest.json"
    curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "@$dir/manifest.json" "http://$registry/v2/$repo/manifests/$tag" \
        || die "cannot push the manifest of $ref"
}

log "making the images"
big_layers=()
for i in 1 2 3 4; do
    mkdir -p "$work/images/big-$i/data"
    head -c $(( 50 * 1024 * 1024 )) /dev/urandom >"$work/images/big-$i/data/blob-$i"
    tar -C "$work/images/big-$i" -cf - data | gzip -1 >"$work/images/big-$i.tar.gz"
    rm -rf "$work/images/big-$i"
    big_layers+=("$work/images/big-$i.tar.gz")
done
push_image bench/big:1 '{"Cmd":["/data"]}' "${big_layers[@]}"
big_bytes=$(cat "${big_layers[@]}" | wc -c)
mkdir -p "$work/images/tiny/bin"
cp "$busybox" "$work/images/tiny/bin/busybox"
for applet in true sh; do ln -s busybox "$work/images/tiny/bin/$applet"; done
tar -C "$work/images/tiny" -cf - bin | gzip >"$work/images/tiny.tar.gz"
push_image bench/tiny:1 '{"Env":["PATH=/bin"],"Cmd":["/bin/true"]}' "$work/images/tiny.tar.gz"
log "pushed $registry/bench/big:1 ($(( big_bytes / 1024 / 1024 )) MiB, 4 layers) and $registry/bench/tiny:1"

worker() {
    TINKERBELL_GRPC_AUTHORITY=127.0.0.1:1 WORKER_ID=bench INSECURE_REGISTRIES="$registry" \
        "$worker_bin" --containerd-socket "$socket" --namespace "$namespace" "$@"
}
remove_image() { # remove_image REF: image, then its now unreferenced content and snapshots
    ctr_ns images rm --sync "$1" >/dev/null 2>&1 || true
    [[ -z $(ctr_ns content ls -q) ]] || die "content left in containerd after removing $1"
}
time_ms() { # time_ms LOG CMD...: runs CMD, prints its wall time in ms
    local start end
    start=$(now_ms)
    "${@:2}" >"$1" 2>&1 || die "failed: ${*:2} (log: $1)"
    end=$(now_ms)
    echo $(( end - start ))
}

# --- pull
: >"$work/pull.tsv"
big="$registry/bench/big:1"
for i in $(seq 1 "$runs"); do
    remove_image "$big"
    w=$(time_ms "$work/logs/pull-worker-$i.log" worker pull "$big")
    remove_image "$big"
    c=$(time_ms "$work/logs/pull-ctr-$i.log" ctr_ns images pull --plain-http "$big")
    remove_image "$big"
    printf '%s\t%s\n' "$w" "$c" >>"$work/pull.tsv"
    log "pull run $i/$runs: tink-worker $w ms, ctr $c ms"
done

# --- actions
tiny="$registry/bench/tiny:1"
worker pull "$tiny" >"$work/logs/pull-tiny.log" 2>&1 || die "cannot pull $tiny (log: $work/logs/pull-tiny.log)"
w=$(time_ms "$work/logs/actions-worker.log" worker run-once --repeat "$actions" "$tiny" -- /bin/true)
ctr_loop() {
    local i
    for (( i = 1; i <= actions; i++ )); do
        ctr_ns run --rm "$tiny" "bench-ctr-$i" /bin/true || return 1
    done
}
c=$(time_ms "$work/logs/actions-ctr.log" ctr_loop)
log "$actions actions: tink-worker $w ms, ctr run --rm loop $c ms"

pull_w=$(cut -f1 "$work/pull.tsv" | median)
pull_c=$(cut -f2 "$work/pull.tsv" | median)
per_w=$(awk -v t="$w" -v n="$actions" 'BEGIN { printf "%.1f", t / n }')
per_c=$(awk -v t="$c" -v n="$actions" 'BEGIN { printf "%.1f", t / n }')
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r != "n/a" && r <= t + 0.00001) ? "met" : "NOT met" }'; }
pull_r=$(ratio "$pull_w" "$pull_c")
action_r=$(ratio "$w" "$c")
printf '\ntink-worker benchmark: containerd %s, %s pull runs (median), %s actions, %s build\n\n' \
    "$(containerd --version | awk '{print $3}')" "$runs" "$actions" "$profile"
printf '%-34s %12s %12s %8s\n' "" tink-worker ctr ratio
printf '%-34s %12s %12s %8s\n' "pull ${big_bytes} B, 4 layers (ms)" "$pull_w" "$pull_c" "$pull_r"
printf '%-34s %12s %12s %8s\n' "per trivial action (ms)" "$per_w" "$per_c" "$action_r"
printf '\npull tink-worker/ctr: %s   target <= 1.1: %s\n' "$pull_r" "$(verdict "$pull_r" 1.1)"
printf 'per-action overhead tink-worker/ctr: %s   target <= 1.0: %s\n' "$action_r" "$(verdict "$action_r" 1.0)"
printf 'raw pull runs: %s/pull.tsv, logs: %s/logs/\n' "$work" "$work"
