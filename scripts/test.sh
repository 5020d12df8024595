#!/usr/bin/env bash
# The README's test command: sets the machine up, builds the image, then
# format check, clippy, and every test (the QEMU boot tests are ordinary cargo
# tests in qemu-tests/tests/). Stops at the first failure.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

step() { printf '\n=== test: %s\n' "$*"; }
die() { printf 'test: error: %s\n' "$*" >&2; exit 1; }

step "set-up (scripts/setup.sh)"
scripts/setup.sh || die "scripts/setup.sh failed"

step "build (scripts/build-bootkit.sh)"
scripts/build-bootkit.sh || die "scripts/build-bootkit.sh failed"

step "cargo fmt --all --check"
cargo fmt --all --check || die "formatting differs: run cargo fmt --all"

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings || die "clippy found problems"

step "module cycles (scripts/module-cycles.py)"
scripts/module-cycles.py || die "a crate's modules import each other in a circle (listed above)"

step "cargo test --workspace"
cargo test --workspace || die "tests failed (QEMU console logs: target/qemu-logs/)"

printf '\ntest: all steps passed\n'
