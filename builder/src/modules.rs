//! Kernel modules: read each module's `.modinfo`, pick the requested subset with its
//! dependencies, and write depmod's index files for that subset.
//!
//! Debian's package ships no modules.dep (depmod runs at install time), so dependencies
//! come from the modules themselves: the `depends=` field of the ELF `.modinfo` section.
//! Only the requested modules and their dependencies are read, not the whole tree.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use bootkit_common::compress::decode_all;
use bootkit_common::kmod::{Module, ModuleIndex, is_module_file, module_name};
use goblin::elf::Elf;

use crate::dirs::{dir_entries, entry_type};
use crate::error::{BuildError, Result};

/// What a module says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModInfo {
    /// `name`; None when the module does not say.
    pub name: Option<String>,
    /// Modules that must be loaded first (direct dependencies).
    pub depends: Vec<String>,
    /// `alias` entries (device ids the module serves).
    pub aliases: Vec<String>,
    /// `vermagic`: the kernel release and options it was built for.
    pub vermagic: Option<String>,
}

/// Parse the `.modinfo` section of a (decompressed) module: NUL-separated `key=value`.
pub fn parse_modinfo(elf_bytes: &[u8]) -> Result<ModInfo, String> {
    let elf = Elf::parse(elf_bytes).map_err(|err| format!("not an ELF object: {err}"))?;
    let section = elf
        .section_headers
        .iter()
        .find(|sh| elf.shdr_strtab.get_at(sh.sh_name) == Some(".modinfo"))
        .ok_or("no .modinfo section")?;
    let start = usize::try_from(section.sh_offset).map_err(|_| "bad .modinfo offset")?;
    let size = usize::try_from(section.sh_size).map_err(|_| "bad .modinfo size")?;
    let data = start
        .checked_add(size)
        .and_then(|end| elf_bytes.get(start..end))
        .ok_or(".modinfo section lies outside the file")?;
    let mut info = ModInfo::default();
    for field in data.split(|b| *b == 0) {
        let field = String::from_utf8_lossy(field);
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        match key {
            "name" => info.name = Some(value.to_string()),
            "depends" => info.depends.extend(
                value
                    .split(',')
                    .filter(|dep| !dep.is_empty())
                    .map(module_name),
            ),
            "alias" => info.aliases.push(value.to_string()),
            "vermagic" => info.vermagic = Some(value.to_string()),
            _ => {}
        }
    }
    Ok(info)
}

/// Read a module file (any compression) and parse its `.modinfo`.
pub fn read_modinfo(path: &Path) -> Result<ModInfo> {
    let raw = fs::read(path).map_err(BuildError::io(format!("read {}", path.display())))?;
    let fail = |reason: String| BuildError::Modinfo {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = decode_all(&raw).map_err(|err| fail(format!("decompress: {err}")))?;
    parse_modinfo(&bytes).map_err(fail)
}

/// The modules an image ships, and the index files describing them.
#[derive(Debug, Clone, Default)]
pub struct ModuleSet {
    /// (path relative to `lib/modules/<ver>/`, host file), sorted by path.
    pub files: Vec<(String, PathBuf)>,
    /// Names of the shipped modules, sorted.
    pub included: Vec<String>,
    /// Requested modules the kernel has built in: nothing to ship or load.
    pub builtin_requested: Vec<String>,
    /// The generated `modules.dep` for the shipped modules.
    pub modules_dep: String,
    /// The generated `modules.alias`.
    pub modules_alias: String,
    /// The generated `modules.order`.
    pub modules_order: String,
    /// The kernel's modules.builtin, whole (the init skips every name in it).
    pub modules_builtin: String,
}

/// Every module file under a module tree: name -> relative path. When two files share a
/// name (an `updates/` override), the first in path order wins, deterministically.
pub fn scan_tree(modules_dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut found = Vec::new();
    walk(modules_dir, "", &mut found)?;
    found.sort();
    let mut by_name = BTreeMap::new();
    for path in found {
        by_name.entry(module_name(&path)).or_insert(path);
    }
    Ok(by_name)
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<()> {
    for entry in dir_entries(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = format!("{prefix}{name}");
        let kind = entry_type(&entry)?;
        if kind.is_dir() {
            walk(&entry.path(), &format!("{relative}/"), out)?;
        } else if kind.is_file() && is_module_file(&name) {
            out.push(relative);
        }
    }
    Ok(())
}

/// Pick `requested` and everything they depend on from a module tree.
pub fn select(modules_dir: &Path, requested: &[String]) -> Result<ModuleSet> {
    select_with_index(modules_dir, requested, None)
}

/// [`select`], keeping the tree's name -> path map in `index_file` when given: read from it
/// when it is there, written after a scan when not. Only for a tree that does not change
/// (the kernel package cache): listing Debian's ~900 module directories costs more than
/// the rest of the module work. A stale index (the tree edited by hand) is noticed when a
/// module it names cannot be read, and the tree is scanned again.
pub fn select_with_index(
    modules_dir: &Path,
    requested: &[String],
    index_file: Option<&Path>,
) -> Result<ModuleSet> {
    let version = modules_dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(tree) = index_file.and_then(|file| read_index(file, &version))
        && let Ok(set) = select_from(modules_dir, &tree, requested)
    {
        return Ok(set);
    }
    let tree = scan_tree(modules_dir)?;
    if let Some(file) = index_file {
        write_index(file, &version, &tree);
    }
    select_from(modules_dir, &tree, requested)
}

const INDEX_HEADER: &str = "bootkit module index 1";

fn read_index(file: &Path, version: &str) -> Option<BTreeMap<String, String>> {
    let text = fs::read_to_string(file).ok()?;
    let mut lines = text.lines();
    if lines.next()? != format!("{INDEX_HEADER} {version}") {
        return None;
    }
    lines
        .map(|line| {
            let (name, path) = line.split_once('\t')?;
            Some((name.to_string(), path.to_string()))
        })
        .collect()
}

/// Best effort: without the index, the next build scans the tree again.
fn write_index(file: &Path, version: &str, tree: &BTreeMap<String, String>) {
    let mut text = format!("{INDEX_HEADER} {version}\n");
    for (name, path) in tree {
        if [name, path].iter().any(|s| s.contains(['\t', '\n'])) {
            return;
        }
        text.push_str(&format!("{name}\t{path}\n"));
    }
    let Some(dir) = file.parent() else { return };
    if let Ok(mut temp) = tempfile::NamedTempFile::new_in(dir) {
        use std::io::Write;
        if temp.write_all(text.as_bytes()).is_ok() {
            let _ = temp.persist(file);
        }
    }
}

fn select_from(
    modules_dir: &Path,
    tree: &BTreeMap<String, String>,
    requested: &[String],
) -> Result<ModuleSet> {
    let builtin_text = read_optional(&modules_dir.join("modules.builtin"))?;
    let mut index = ModuleIndex::new();
    for line in builtin_text.lines().filter(|line| !line.trim().is_empty()) {
        index.mark_builtin(line.trim());
    }

    let mut set = ModuleSet {
        modules_builtin: builtin_text,
        ..ModuleSet::default()
    };
    let mut infos: BTreeMap<String, ModInfo> = BTreeMap::new();
    let mut queue: VecDeque<(String, Option<String>)> = requested
        .iter()
        .map(|name| (module_name(name), None))
        .collect();
    while let Some((name, needed_by)) = queue.pop_front() {
        if infos.contains_key(&name) {
            continue;
        }
        if index.is_builtin(&name) {
            if needed_by.is_none() && !set.builtin_requested.contains(&name) {
                set.builtin_requested.push(name);
            }
            continue;
        }
        let Some(path) = tree.get(&name) else {
            return Err(BuildError::ModuleNotFound {
                name,
                needed_by,
                tree: modules_dir.to_path_buf(),
            });
        };
        let info = read_modinfo(&modules_dir.join(path))?;
        for dep in &info.depends {
            queue.push_back((dep.clone(), Some(name.clone())));
        }
        index.insert(Module::new(path, info.depends.clone()));
        set.files.push((path.clone(), modules_dir.join(path)));
        infos.insert(name, info);
    }
    set.builtin_requested.sort();
    set.files.sort();
    set.included = infos.keys().cloned().collect();
    let subset: BTreeSet<String> = infos.keys().cloned().collect();
    set.modules_dep = index.render_dep(Some(&subset))?;
    set.modules_alias = render_alias(&infos);
    let order_text = read_optional(&modules_dir.join("modules.order"))?;
    set.modules_order = render_order(&order_text, &index, &subset)?;
    Ok(set)
}

fn read_optional(path: &Path) -> Result<String> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(err) => Err(BuildError::io(format!("read {}", path.display()))(err)),
    }
}

/// depmod's modules.alias: `alias <pattern> <module>`, module by module.
fn render_alias(infos: &BTreeMap<String, ModInfo>) -> String {
    let mut out = String::from("# Aliases extracted from modules themselves.\n");
    for (name, info) in infos {
        for alias in &info.aliases {
            out.push_str(&format!("alias {alias} {name}\n"));
        }
    }
    out
}

/// modules.order for the subset: the kernel's own order where it lists a module (it is the
/// link order, which decides which driver binds first), then the rest in load order.
fn render_order(
    order_text: &str,
    index: &ModuleIndex,
    subset: &BTreeSet<String>,
) -> Result<String> {
    let mut out = String::new();
    let mut written = BTreeSet::new();
    let listed = order_text.lines().map(module_name);
    let planned: Vec<String> = index
        .plan(&subset.iter().cloned().collect::<Vec<_>>())?
        .modules()
        .map(str::to_string)
        .collect();
    for name in listed.chain(planned) {
        if subset.contains(&name)
            && written.insert(name.clone())
            && let Some(module) = index.get(&name)
        {
            out.push_str(&module.path);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::process::Command;

    /// Compile a tiny relocatable object with a `.modinfo` section, like a real module's.
    pub(crate) fn fake_module(dir: &Path, name: &str, fields: &[&str]) -> Vec<u8> {
        let src = dir.join(format!("{name}.c"));
        let mut code = String::new();
        for (i, field) in fields.iter().enumerate() {
            code.push_str(&format!(
                "__attribute__((section(\".modinfo\"), used, aligned(1))) static const char f{i}[] = \"{field}\";\n"
            ));
        }
        code.push_str(&format!(
            "__attribute__((section(\".modinfo\"), used, aligned(1))) static const char nm[] = \"name={name}\";\n"
        ));
        code.push_str("int init_module(void) { return 0; }\n");
        fs::write(&src, code).expect("write C source");
        let obj = dir.join(format!("{name}.o"));
        let status = Command::new("cc")
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .status()
            .expect("run cc");
        assert!(status.success(), "cc failed");
        fs::read(&obj).expect("read object")
    }

    #[test]
    fn parses_modinfo_of_a_real_elf_object() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = fake_module(
            dir.path(),
            "virtio_net",
            &[
                "alias=virtio:d00000001v*",
                "depends=net_failover,virtio_ring",
                "vermagic=6.1.0 SMP mod_unload",
            ],
        );
        let info = parse_modinfo(&bytes).unwrap();
        assert_eq!(info.name.as_deref(), Some("virtio_net"));
        assert_eq!(info.depends, ["net_failover", "virtio_ring"]);
        assert_eq!(info.aliases, ["virtio:d00000001v*"]);
        assert_eq!(info.vermagic.as_deref(), Some("6.1.0 SMP mod_unload"));
    }

    #[test]
    fn compressed_modules_are_read_too() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = fake_module(dir.path(), "nbd", &["depends="]);
        let path = dir.path().join("nbd.ko.zst");
        fs::write(&path, zstd::encode_all(&bytes[..], 3).unwrap()).unwrap();
        let info = read_modinfo(&path).unwrap();
        assert_eq!(info.name.as_deref(), Some("nbd"));
        assert!(info.depends.is_empty());
    }

    #[test]
    fn not_an_elf_is_a_clear_error() {
        assert!(parse_modinfo(b"hello").unwrap_err().contains("not an ELF"));
    }

    /// A module tree: virtio_net -> net_failover -> failover, nbd alone, virtio builtin.
    pub(crate) fn fake_tree(root: &Path) -> PathBuf {
        let modules = root.join("lib/modules/6.1.0-fake");
        let work = root.join("work");
        fs::create_dir_all(&work).unwrap();
        for (path, name, fields) in [
            (
                "kernel/drivers/net/virtio_net.ko",
                "virtio_net",
                &["depends=net_failover,virtio", "alias=virtio:d00000001v*"][..],
            ),
            (
                "kernel/drivers/net/net_failover.ko",
                "net_failover",
                &["depends=failover"][..],
            ),
            ("kernel/net/core/failover.ko", "failover", &["depends="][..]),
            (
                "kernel/drivers/block/nbd.ko",
                "nbd",
                &["depends=", "alias=block-major-43-*"][..],
            ),
            ("kernel/drivers/unused.ko", "unused", &["depends="][..]),
        ] {
            let bytes = fake_module(&work, name, fields);
            let dest = modules.join(path);
            fs::create_dir_all(dest.parent().unwrap()).unwrap();
            fs::write(dest, bytes).unwrap();
        }
        fs::write(
            modules.join("modules.builtin"),
            "kernel/drivers/virtio/virtio.ko\n",
        )
        .unwrap();
        fs::write(
            modules.join("modules.order"),
            "kernel/net/core/failover.ko\nkernel/drivers/block/nbd.ko\nkernel/drivers/net/net_failover.ko\nkernel/drivers/net/virtio_net.ko\n",
        )
        .unwrap();
        modules
    }

    #[test]
    fn selects_the_subset_with_dependencies() {
        let dir = tempfile::tempdir().unwrap();
        let modules = fake_tree(dir.path());
        let requested = ["virtio-net", "nbd", "virtio"].map(String::from);
        let set = select(&modules, &requested).unwrap();
        assert_eq!(
            set.included,
            ["failover", "nbd", "net_failover", "virtio_net"]
        );
        assert_eq!(set.builtin_requested, ["virtio"]);
        assert_eq!(
            set.modules_dep,
            "kernel/net/core/failover.ko:\n\
             kernel/drivers/block/nbd.ko:\n\
             kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko\n\
             kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko\n"
        );
        assert_eq!(
            set.modules_alias,
            "# Aliases extracted from modules themselves.\n\
             alias block-major-43-* nbd\n\
             alias virtio:d00000001v* virtio_net\n"
        );
        assert_eq!(
            set.modules_order,
            "kernel/net/core/failover.ko\nkernel/drivers/block/nbd.ko\n\
             kernel/drivers/net/net_failover.ko\nkernel/drivers/net/virtio_net.ko\n"
        );
        assert_eq!(set.modules_builtin, "kernel/drivers/virtio/virtio.ko\n");
        let paths: Vec<&str> = set.files.iter().map(|(path, _)| path.as_str()).collect();
        assert!(!paths.contains(&"kernel/drivers/unused.ko"));
        // The dep file parses back with the shared reader the init uses.
        let index = ModuleIndex::parse(&set.modules_dep, None).unwrap();
        let plan = index.plan(&["virtio_net"]).unwrap();
        assert_eq!(
            plan.waves,
            [vec!["failover"], vec!["net_failover"], vec!["virtio_net"]]
        );
    }

    #[test]
    fn the_module_index_is_written_reused_and_rebuilt_when_stale() {
        let dir = tempfile::tempdir().unwrap();
        let modules = fake_tree(dir.path());
        let index = dir.path().join(".bootkit-module-index");
        let requested = ["virtio_net".to_string(), "nbd".to_string()];
        let fresh = select(&modules, &requested).unwrap();
        let first = select_with_index(&modules, &requested, Some(&index)).unwrap();
        let text = fs::read_to_string(&index).expect("index written");
        assert!(
            text.starts_with("bootkit module index 1 6.1.0-fake\n"),
            "{text}"
        );
        assert!(
            text.contains("unused\tkernel/drivers/unused.ko\n"),
            "{text}"
        );
        // Served from the index: a module only the index knows of is found.
        fs::write(
            &index,
            text.replace("kernel/drivers/unused.ko", "kernel/drivers/block/nbd.ko"),
        )
        .unwrap();
        let from_index = select_with_index(&modules, &["unused".into()], Some(&index)).unwrap();
        assert_eq!(from_index.files[0].0, "kernel/drivers/block/nbd.ko");
        // A stale index (a path that is gone) is noticed, and the tree scanned again.
        fs::write(
            &index,
            text.replace("kernel/drivers/block/nbd.ko", "kernel/gone/nbd.ko"),
        )
        .unwrap();
        let again = select_with_index(&modules, &requested, Some(&index)).unwrap();
        assert_eq!(fs::read_to_string(&index).unwrap(), text, "index rewritten");
        for set in [&first, &again] {
            assert_eq!(set.files, fresh.files);
            assert_eq!(set.modules_dep, fresh.modules_dep);
            assert_eq!(set.modules_alias, fresh.modules_alias);
            assert_eq!(set.modules_order, fresh.modules_order);
        }
        // An index of another module tree is not used.
        fs::write(
            &index,
            text.replace("6.1.0-fake", "6.1.0-other")
                .replace("kernel/drivers/block/nbd.ko", "kernel/gone/nbd.ko"),
        )
        .unwrap();
        select_with_index(&modules, &requested, Some(&index)).unwrap();
        assert_eq!(fs::read_to_string(&index).unwrap(), text);
    }

    #[test]
    fn an_unknown_module_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let modules = fake_tree(dir.path());
        let err = select(&modules, &["no_such_mod".to_string()]).unwrap_err();
        assert!(err.to_string().contains("\"no_such_mod\""), "{err}");
    }
}
