#!/usr/bin/env bash
# Idempotent set-up of a Debian 12 machine (run as root) for building and
# testing the bootkit: host packages, then the Debian kernel package that the
# image configs and the QEMU tests boot. The kernel is only downloaded into
# .cache/kernel/, never installed into the host.
#
# Reruns are fast: packages already installed are not asked for again, the
# package lists are refreshed at most every 6 hours, and an existing kernel
# package is kept.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kernel_dir="$repo_root/.cache/kernel"
kernel_link="$kernel_dir/linux-image-amd64.deb"

# What the build, the tests and the benchmarks use:
#   qemu-system-x86  boots the images (QEMU tests, demo, bench)
#   zstd, xz-utils   compress/inspect images and kernel modules
#   busybox-static   /init of the harness smoke test and the bench baseline
#   cpio             the bench's shell-pipeline comparison (find | cpio | gzip)
#   liblzma-dev      the liblzma crate links against it when not vendored
#   ovmf             UEFI firmware for QEMU boots that need efivarfs
#   e2fsprogs        mkfs.ext4 -d for the USB data partition and the test OS image
#   gdisk, fdisk     sgdisk/sfdisk: second opinions on partition tables in the installer tests
#   dosfstools, mtools  the FAT ESPs of the USB installer and the test OS image
#   systemd-boot-efi the UKI stub (linuxx64.efi.stub); binutils' objcopy assembles the UKI
#   bmap-tools       bmaptool, the installer benchmark's baseline and a check of our .bmap files
#   protobuf-compiler  protoc for tink-proto (tonic/prost) and containerd-client
#   libprotobuf-dev  the well-known types (google/protobuf/*.proto) those protos import
#   containerd, runc the real container runtime the tink-worker tests start (own root, socket)
#   docker-registry  a real OCI registry on loopback for the worker's pull tests; curl: bench/worker.sh pushes with it
#   ipxe             ipxe.efi, undionly.kpxe: what the provisioner's TFTP serves (/usr/lib/ipxe)
#   ipxe-qemu, seabios  the NIC's iPXE option ROM and the BIOS of the PXE tests' BIOS machine
#   chromium         headless, for the provisioner status page's test
#   python3-grpcio, python3-protobuf, protobuf-compiler-grpc
#                    the independent gRPC peers of the Tinkerbell protocol tests (Python,
#                    generated from proto/ with protoc and grpc_python_plugin)
#   openssl          the independent TLS peer and certificate checker of the node-trust tests
#                    (s_client/s_server, verify, req, x509)
#   sbsigntool       sbsign: Authenticode signing of EFI binaries (bootkit-build sign); sbverify checks them
#   efitools         cert-to-efi-sig-list/sign-efi-sig-list: the oracle of bootkit-build keys' .esl/.auth
#   python3-pip      installs PyPI's virt-firmware (virt-fw-vars) for the Secure Boot QEMU tests, below
packages=(qemu-system-x86 qemu-utils zstd busybox-static cpio xz-utils liblzma-dev ovmf e2fsprogs iproute2 dnsmasq-base
    gdisk fdisk dosfstools mtools systemd-boot-efi binutils bmap-tools
    protobuf-compiler libprotobuf-dev containerd runc docker-registry curl
    ipxe ipxe-qemu seabios chromium python3-grpcio python3-protobuf protobuf-compiler-grpc openssl
    sbsigntool efitools python3-pip
    bsdextrautils)  # column(1): the provisioner CLI's tables are checked against `column -t`

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

command -v apt-get >/dev/null || die "apt-get not found: this script expects Debian 12"
# Root is only needed when something is missing, so a set-up machine can rerun
# this (from demo.sh or test.sh) as any user.
need_root() {
    [[ $(id -u) -eq 0 ]] || die "$1 needs root: rerun as root: sudo $0"
}

export DEBIAN_FRONTEND=noninteractive

# Refresh the package lists once, and only when they are missing or older than
# 6 hours: apt-cache and apt-get download need them, but an update is slow.
apt_updated=0
apt_update_if_stale() {
    [[ $apt_updated -eq 1 ]] && return 0
    local lists=/var/lib/apt/lists newest
    newest=$(find "$lists" -maxdepth 1 -name '*_Packages*' -printf '%T@\n' 2>/dev/null | sort -n | tail -1)
    if [[ -n $newest ]] && (( $(date +%s) - ${newest%.*} < 6 * 3600 )); then
        log "package lists are fresh; skipping apt-get update"
    else
        need_root "apt-get update"
        log "apt-get update"
        apt-get update -qq || die "apt-get update failed"
    fi
    apt_updated=1
}

missing=()
for p in "${packages[@]}"; do
    # dpkg -s succeeds for removed-but-configured packages too; check the status.
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if (( ${#missing[@]} )); then
    apt_update_if_stale
    need_root "installing ${missing[*]}"
    log "installing: ${missing[*]}"
    # The whole list goes to apt, not only what is missing: installing one
    # package can make apt remove another one of the list, and asking for all
    # of them makes apt pick versions that fit together.
    install_args=("${packages[@]}")
    # The fresh image carries qemu-utils 10 from bookworm-backports, whose
    # source is not configured. Debian's qemu-system-x86 (7.2) breaks it, and
    # apt neither downgrades nor removes a package asked for by name, so it
    # gives up with "held broken packages". Ask for qemu-utils at
    # qemu-system-x86's version, allowing the downgrade.
    qemu_version=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ {print $2}')
    utils_version=$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)
    downgrade=()
    if [[ -n $utils_version && -n $qemu_version && $qemu_version != "(none)" \
          && $utils_version != "$qemu_version" ]]; then
        log "qemu-utils $utils_version does not match qemu-system-x86 $qemu_version: installing qemu-utils=$qemu_version"
        install_args=("${install_args[@]/#qemu-utils/qemu-utils=$qemu_version}")
        downgrade=(--allow-downgrades)
    fi
    if ! apt-get install -y -qq --no-install-recommends "${downgrade[@]}" "${install_args[@]}"; then
        # -qq hides apt's reasons; a simulation shows which package conflicts.
        apt-get install -s --no-install-recommends "${downgrade[@]}" "${install_args[@]}" 2>&1 \
            | grep -v '^\(Inst\|Conf\) ' | tail -25 >&2 || true
        die "apt-get install ${install_args[*]} failed (apt's reasons above)"
    fi
else
    log "host packages already installed"
fi
# Check the result: a package apt removed while resolving the others would
# otherwise only show up as a missing tool deep in the tests.
not_installed=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || not_installed+=("$p")
done
(( ${#not_installed[@]} == 0 )) \
    || die "after apt-get install, still not installed: ${not_installed[*]} (apt-get install ${not_installed[*]} says why)"

# One .deb fetched (not installed) into DIR, with LINK pointing at it; kept
# when LINK already resolves. Used for packages the tests unpack themselves.
download_deb() {
    local what=$1 pkg=$2 dir=$3 link=$4 deb
    mkdir -p "$dir"
    if [[ -s $link ]]; then
        log "$what package present: $link -> $(readlink "$link" || echo "$link")"
        return 0
    fi
    apt_update_if_stale
    log "downloading $what package $pkg into $dir"
    # apt-get download writes into the current directory as the _apt user when
    # it can; a root-owned cache dir makes it fall back with a harmless notice.
    (cd "$dir" && apt-get download -qq -o APT::Sandbox::User=root "$pkg") \
        || die "apt-get download $pkg failed"
    deb=$(find "$dir" -maxdepth 1 -name "${pkg}_*.deb" -printf '%T@ %f\n' | sort -rn | head -1 | cut -d' ' -f2-)
    [[ -n $deb ]] || die "apt-get download reported success but no ${pkg}_*.deb is in $dir"
    # A relative symlink keeps working if the repository is moved.
    ln -sfn "$deb" "$link"
    log "$what package: $link -> $deb"
}

# The kernel: Debian's current linux-image-amd64 resolves to one real image
# package (linux-image-<ver>-amd64, or -unsigned); fetch that .deb.
if [[ ! -s $kernel_link ]]; then
    apt_update_if_stale
    kernel_pkg=$(apt-cache depends linux-image-amd64 2>/dev/null \
        | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\).*/\1/p' | head -1)
    [[ -n $kernel_pkg ]] || die "could not resolve linux-image-amd64 to a linux-image-<ver>-amd64 package (apt-cache depends linux-image-amd64)"
fi
download_deb kernel "${kernel_pkg:-linux-image-amd64}" "$kernel_dir" "$kernel_link"
# Debian's shim-signed (shimx64.efi signed by Microsoft's UEFI CA): only downloaded,
# never installed (its dependencies would put GRUB on the host), for the Secure Boot
# test of the shim + MOK path (qemu-tests/tests/secure_boot.rs).
download_deb shim shim-signed "$repo_root/.cache/shim" "$repo_root/.cache/shim/shim-signed.deb"
# PyPI's virt-firmware: virt-fw-vars enrolls the test key set (PK/KEK/db) into OVMF's
# variable store for the Secure Boot QEMU tests (qemu-tests/src/secure_boot.rs); Debian 12
# does not package it.
if command -v virt-fw-vars >/dev/null; then
    log "virt-firmware present: $(command -v virt-fw-vars)"
else
    log "pip install virt-firmware"
    # --break-system-packages: Debian's python3 refuses pip installs outside a venv otherwise.
    python3 -m pip install --quiet --break-system-packages virt-firmware \
        || die "pip install virt-firmware failed (python3 -m pip install virt-firmware says why)"
    command -v virt-fw-vars >/dev/null \
        || die "pip installed virt-firmware but virt-fw-vars is not on PATH"
fi
# playwright-core (npm) drives Debian's chromium in the status page's browser test
# (provisioner/tests/status_page_browser.rs); the lock file pins it, node and npm are the machine's.
if [[ -d "$repo_root/provisioner/tests/browser/node_modules/playwright-core" ]]; then
    log "playwright-core present (provisioner/tests/browser/node_modules)"
else
    command -v npm >/dev/null || die "npm is missing: the status page's browser test needs Node.js and npm"
    log "npm ci in provisioner/tests/browser"
    (cd "$repo_root/provisioner/tests/browser" && npm ci --no-audit --no-fund --silent) \
        || die "npm ci in provisioner/tests/browser failed (run it there to see why)"
fi
log "done"
