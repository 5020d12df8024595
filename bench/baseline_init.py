#!/usr/bin/env python3
"""Writes the baseline initramfs tree for bench/boot.sh.

The baseline does what dracut's 90tmpfsroot does, as a busybox shell script:
mount proc/sys/devtmpfs, mount a tmpfs on /newroot, `tar -xzf /rootfs.tar.gz`,
insmod the same modules in dependency order (from modules.dep), and start the
same services (in the new root, after moving /proc /sys /dev there as
switch_root would). It logs stage markers to /dev/kmsg and, at the end,
prints `baseline: ready in T ms (mounts a, modules b, rootfs c, services d)`,
measured from the kernel's "Run /init as init process" record, i.e. from the
exec of /init, like the bootkit's own ready line.

usage: baseline_init.py BOOTKIT_TREE ROOTFS_TAR_GZ CMDLINE OUT_TREE
"""

import gzip
import lzma
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

MODULE_SUFFIXES = (".ko.zst", ".ko.xz", ".ko.gz", ".ko")


def warn(msg):
    print(f"baseline: warning: {msg}", file=sys.stderr)


def module_name(path):
    base = os.path.basename(path)
    for suffix in MODULE_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def cmdline_values(cmdline, keys):
    out = []
    for word in shlex.split(cmdline):
        key, sep, value = word.partition("=")
        if sep and key in keys:
            out.append(value)
    return out


def find_modules_dir(tree):
    for pattern in ("lib/modules/*/modules.dep", "usr/lib/modules/*/modules.dep"):
        found = sorted(tree.glob(pattern))
        if found:
            return found[0].parent
    return None


def requested_modules(tree, cmdline):
    names = []
    conf_dir = tree / "etc/modules-load.d"
    if conf_dir.is_dir():
        for conf in sorted(conf_dir.glob("*.conf")):
            for line in conf.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith(("#", ";")):
                    names.append(line)
    for value in cmdline_values(cmdline, {"modules-load", "rd.modules-load"}):
        names.extend(v for v in value.split(",") if v)
    return [n.replace("-", "_") for n in names]


def module_plan(tree, cmdline, out_tree):
    """Copies the needed modules (decompressed) and returns insmod paths in order."""
    mdir = find_modules_dir(tree)
    wanted = requested_modules(tree, cmdline)
    if mdir is None:
        if wanted:
            warn(f"modules requested ({', '.join(wanted)}) but no modules.dep in the image")
        return []
    deps, paths = {}, {}
    for line in (mdir / "modules.dep").read_text().splitlines():
        if ":" not in line:
            continue
        mod, _, rest = line.partition(":")
        name = module_name(mod)
        paths[name] = mod.strip()
        deps[name] = [module_name(d) for d in rest.split()]
    builtin = set()
    if (mdir / "modules.builtin").exists():
        builtin = {module_name(l) for l in (mdir / "modules.builtin").read_text().split()}

    order, seen = [], set()

    def visit(name):
        if name in seen:
            return
        seen.add(name)
        # modprobe loads a module's dependency list from its end.
        for dep in reversed(deps.get(name, [])):
            visit(dep)
        order.append(name)

    for name in wanted:
        if name in builtin:
            continue
        if name not in paths:
            warn(f"module {name} is not in the image's modules.dep; skipped")
            continue
        visit(name)

    rel_dir = mdir.relative_to(tree)
    insmods = []
    for name in order:
        src = mdir / paths[name]
        rel = paths[name]
        for suffix in (".zst", ".xz", ".gz"):
            if rel.endswith(suffix):
                rel = rel[: -len(suffix)]
        dst = out_tree / rel_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        data = src.read_bytes()
        if paths[name].endswith(".xz"):
            data = lzma.decompress(data)
        elif paths[name].endswith(".gz"):
            data = gzip.decompress(data)
        elif paths[name].endswith(".zst"):
            data = subprocess.run(["zstd", "-dc"], input=data, check=True, capture_output=True).stdout
        dst.write_bytes(data)
        insmods.append("/" + str(rel_dir / rel))
    return insmods


def service_plan(rootfs_tgz, cmdline):
    """Start commands for the services of the boot mode, dependencies first."""
    mode = (cmdline_values(cmdline, {"bootkit.mode"}) or ["provision"])[-1]
    defs = {}
    with tarfile.open(rootfs_tgz, "r:gz") as tar:
        for member in tar.getmembers():
            name = member.name
            while name.startswith("./"):
                name = name[2:]
            if not member.isfile() or not name.startswith("etc/bootkit/services/"):
                continue
            if not name.endswith(".toml") or name.count("/") != 3:
                continue
            raw = tar.extractfile(member).read()
            try:
                defs[Path(name).stem] = tomllib.loads(raw.decode())
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
                warn(f"{name}: {err}; skipped (the bootkit skips it too)")
    chosen = {n: d for n, d in defs.items() if mode in d.get("modes", [mode])}

    order, seen = [], set()

    def visit(name):
        if name in seen or name not in chosen:
            return
        seen.add(name)
        d = chosen[name]
        for dep in sorted(set(d.get("after", [])) | set(d.get("requires", []))):
            visit(dep)
        order.append(name)

    for name in sorted(chosen):
        visit(name)

    lines = []
    for name in order:
        d = chosen[name]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        env.update({k: str(v) for k, v in d.get("environment", {}).items()})
        argv = [d["command"], *map(str, d.get("args", []))]
        words = ["/bin/busybox", "env", "-i"] + [f"{k}={v}" for k, v in env.items()]
        words += ["/bin/busybox", "chroot", "/newroot"] + argv
        lines.append(f"# service {name}\n" + " ".join(shlex.quote(w) for w in words) + " 3>&- &")
    return mode, lines


INIT = r"""#!/bin/busybox sh
# Baseline /init for bench/boot.sh: dracut 90tmpfsroot's work as a shell script.
bb=/bin/busybox
fail() {{ echo "baseline: FAILED: $*"; $bb poweroff -f; }}
$bb mount -t proc proc /proc || fail "mount proc"
$bb mount -t sysfs sysfs /sys || fail "mount sysfs"
$bb mount -t devtmpfs devtmpfs /dev || fail "mount devtmpfs"
exec 3>/dev/kmsg
$bb mount -t tmpfs -o {rootflags} tmpfs /newroot || fail "mount tmpfs"
echo "baseline: mark mounts" >&3
{insmods}
echo "baseline: mark modules" >&3
$bb tar -xzf /rootfs.tar.gz -C /newroot || fail "tar -xzf /rootfs.tar.gz"
echo "baseline: mark rootfs" >&3
for m in proc sys dev; do
    $bb mkdir -p /newroot/$m && $bb mount --move /$m /newroot/$m || fail "move /$m"
done
# ash opens /dev/null for background jobs; /dev is now the initramfs's own.
$bb mknod -m 666 /dev/null c 1 3
{services}
echo "baseline: mark ready" >&3
$bb dmesg | $bb awk '
    function ts(line) {{ return substr(line, 2, index(line, "]") - 2) + 0 }}
    /Run \/init as init process/ {{ start = ts($0) }}
    /baseline: mark mounts/ {{ m = ts($0) }}
    /baseline: mark modules/ {{ mo = ts($0) }}
    /baseline: mark rootfs/ {{ r = ts($0) }}
    /baseline: mark ready/ {{ s = ts($0) }}
    END {{ printf "baseline: ready in %d ms (mounts %d, modules %d, rootfs %d, services %d)\n",
            (s - start) * 1000, (m - start) * 1000, (mo - m) * 1000, (r - mo) * 1000, (s - r) * 1000 }}'
$bb sleep 1
$bb poweroff -f
"""


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    tree, rootfs_tgz, cmdline, out_tree = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
    for d in ("bin", "dev", "proc", "sys", "newroot"):
        (out_tree / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/busybox", out_tree / "bin/busybox")
    shutil.copy2(rootfs_tgz, out_tree / "rootfs.tar.gz")
    insmods = module_plan(tree, cmdline, out_tree)
    mode, services = service_plan(rootfs_tgz, cmdline)
    flags = (cmdline_values(cmdline, {"rootflags"}) or ["mode=0755"])[-1]
    init = INIT.format(
        rootflags=shlex.quote(flags),
        insmods="\n".join(f'$bb insmod {shlex.quote(p)} || fail "insmod {p}"' for p in insmods) or ":",
        services="\n".join(services) or ":",
    )
    (out_tree / "init").write_text(init)
    os.chmod(out_tree / "init", 0o755)
    print(
        f"baseline: {len(insmods)} modules ({', '.join(module_name(p) for p in insmods) or 'none'}), "
        f"{len(services)} services for mode {mode}, rootflags {flags}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
