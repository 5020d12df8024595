//! Kernel module indexes in depmod's text formats.
//!
//! The builder computes an index from the modules' own `depends=` fields and writes
//! `modules.dep` for the subset it ships; the init reads that file back and loads the
//! modules in dependency order, independent ones in parallel ("waves").

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

/// Module file suffixes the kernel accepts, longest first.
const SUFFIXES: &[&str] = &[".ko.zst", ".ko.xz", ".ko.gz", ".ko"];

/// The module name the kernel uses for a file or a user-given name: the base name without
/// its `.ko*` suffix, with `-` folded to `_` (`virtio-net` and `virtio_net.ko.xz` are both
/// `virtio_net`).
pub fn module_name(path_or_name: &str) -> String {
    let base = path_or_name.rsplit('/').next().unwrap_or(path_or_name);
    let stem = SUFFIXES
        .iter()
        .find_map(|suffix| base.strip_suffix(suffix))
        .unwrap_or(base);
    stem.replace('-', "_")
}

/// Whether a file name is a kernel module.
pub fn is_module_file(path: &str) -> bool {
    SUFFIXES.iter().any(|suffix| path.ends_with(suffix))
}

/// One loadable module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// The module's name, as modprobe spells it (`-` becomes `_`, no `.ko` suffix).
    pub name: String,
    /// Path relative to `/lib/modules/<version>/`, as modules.dep writes it.
    pub path: String,
    /// Names of the modules this one needs loaded first (direct or transitive).
    pub deps: Vec<String>,
}

impl Module {
    /// A module at `path` (relative to `/lib/modules/<version>/`), named after its file.
    pub fn new(path: &str, deps: Vec<String>) -> Module {
        Module {
            name: module_name(path),
            path: path.to_string(),
            deps,
        }
    }
}

/// Why `modules.dep` cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum KmodError {
    /// A line is not `path: dependencies` or names no module file.
    #[error("modules.dep line {line}: {reason}")]
    Parse {
        /// 1-based line number in `modules.dep`.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// The dependencies loop; carries a module on the loop.
    #[error("kernel modules depend on each other in a cycle through {0}")]
    Cycle(String),
}

/// A module that was asked for (or needed by one that was) but is nowhere to be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingModule {
    /// The missing module's name.
    pub name: String,
    /// The module that needs it, when it was not asked for directly.
    pub needed_by: Option<String>,
}

/// What to load, in waves: every module of a wave depends only on modules of earlier waves,
/// so a wave's modules can load in parallel.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadPlan {
    /// The waves, first to load first.
    pub waves: Vec<Vec<String>>,
    /// Asked-for modules that are built into the kernel: nothing to load.
    pub builtin: Vec<String>,
    /// Modules found neither as files nor built in: a load would fail.
    pub missing: Vec<MissingModule>,
}

impl LoadPlan {
    /// Every module to load, in a valid load order.
    pub fn modules(&self) -> impl Iterator<Item = &str> {
        self.waves.iter().flatten().map(String::as_str)
    }
}

/// An index of a kernel's modules: `modules.dep` plus `modules.builtin`.
#[derive(Debug, Default, Clone)]
pub struct ModuleIndex {
    modules: BTreeMap<String, Module>,
    builtin: BTreeSet<String>,
}

impl ModuleIndex {
    /// An empty index.
    pub fn new() -> ModuleIndex {
        ModuleIndex::default()
    }

    /// Read depmod's `modules.dep` (`path: dep-path dep-path ...`) and, when present,
    /// `modules.builtin` (one path per line).
    pub fn parse(
        modules_dep: &str,
        modules_builtin: Option<&str>,
    ) -> Result<ModuleIndex, KmodError> {
        let mut index = ModuleIndex::new();
        for (number, line) in modules_dep.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (path, deps) = line.split_once(':').ok_or_else(|| KmodError::Parse {
                line: number + 1,
                reason: format!("expected `path: dependencies`, found {line:?}"),
            })?;
            if !is_module_file(path.trim()) {
                return Err(KmodError::Parse {
                    line: number + 1,
                    reason: format!("{path:?} is not a kernel module file"),
                });
            }
            let deps = deps.split_whitespace().map(module_name).collect();
            index.insert(Module::new(path.trim(), deps));
        }
        for line in modules_builtin.unwrap_or("").lines() {
            let line = line.trim();
            if !line.is_empty() {
                index.mark_builtin(line);
            }
        }
        Ok(index)
    }

    /// Adds `module`, replacing one of the same name.
    pub fn insert(&mut self, module: Module) {
        self.modules.insert(module.name.clone(), module);
    }

    /// Record a module that is compiled into the kernel (a path or a name).
    pub fn mark_builtin(&mut self, path_or_name: &str) {
        self.builtin.insert(module_name(path_or_name));
    }

    /// The module named `name` (any spelling: `-` or `_`, with or without `.ko`).
    pub fn get(&self, name: &str) -> Option<&Module> {
        self.modules.get(&module_name(name))
    }

    /// True if `name` is compiled into the kernel.
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&module_name(name))
    }

    /// Every loadable module, by name.
    pub fn modules(&self) -> impl Iterator<Item = &Module> {
        self.modules.values()
    }

    /// The names of the built-in modules, sorted.
    pub fn builtin(&self) -> impl Iterator<Item = &str> {
        self.builtin.iter().map(String::as_str)
    }

    /// Plan the loading of `requested` and everything they depend on.
    pub fn plan<S: AsRef<str>>(&self, requested: &[S]) -> Result<LoadPlan, KmodError> {
        let mut plan = LoadPlan::default();
        let mut levels: BTreeMap<String, usize> = BTreeMap::new();
        let mut seen_request = BTreeSet::new();
        for name in requested {
            let name = module_name(name.as_ref());
            if !seen_request.insert(name.clone()) {
                continue;
            }
            if self.is_builtin(&name) {
                plan.builtin.push(name);
            } else if self.modules.contains_key(&name) {
                self.level_of(&name, &mut levels, &mut Vec::new(), &mut plan.missing)?;
            } else {
                plan.missing.push(MissingModule {
                    name,
                    needed_by: None,
                });
            }
        }
        let depth = levels.values().max().map_or(0, |deepest| deepest + 1);
        plan.waves = vec![Vec::new(); depth];
        for (name, level) in levels {
            plan.waves[level].push(name);
        }
        Ok(plan)
    }

    /// A module's wave: 0 without dependencies, else one past its deepest dependency.
    fn level_of(
        &self,
        name: &str,
        levels: &mut BTreeMap<String, usize>,
        path: &mut Vec<String>,
        missing: &mut Vec<MissingModule>,
    ) -> Result<usize, KmodError> {
        if let Some(level) = levels.get(name) {
            return Ok(*level);
        }
        if path.iter().any(|visiting| visiting == name) {
            return Err(KmodError::Cycle(name.to_string()));
        }
        let Some(module) = self.modules.get(name) else {
            return Ok(0);
        };
        path.push(name.to_string());
        let mut level = 0;
        for dep in &module.deps {
            if self.is_builtin(dep) {
                continue;
            }
            if !self.modules.contains_key(dep) {
                if !missing.iter().any(|m| &m.name == dep) {
                    missing.push(MissingModule {
                        name: dep.clone(),
                        needed_by: Some(name.to_string()),
                    });
                }
                continue;
            }
            level = level.max(self.level_of(dep, levels, path, missing)? + 1);
        }
        path.pop();
        levels.insert(name.to_string(), level);
        Ok(level)
    }

    /// `modules.dep` in depmod's format for the given modules (all when `None`): each line
    /// lists every transitive dependency, the one to load first last, as modprobe expects.
    pub fn render_dep(&self, only: Option<&BTreeSet<String>>) -> Result<String, KmodError> {
        let mut out = String::new();
        for module in self.modules.values() {
            if only.is_some_and(|only| !only.contains(&module.name)) {
                continue;
            }
            let plan = self.plan(&module.deps)?;
            out.push_str(&module.path);
            out.push(':');
            for wave in plan.waves.iter().rev() {
                for dep in wave {
                    if let Some(dep) = self.modules.get(dep) {
                        out.push(' ');
                        out.push_str(&dep.path);
                    }
                }
            }
            out.push('\n');
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/block/nbd.ko:
kernel/drivers/virtio/virtio_pci.ko.xz: kernel/drivers/virtio/virtio_pci_legacy_dev.ko
";

    #[test]
    fn names_fold_suffixes_and_dashes() {
        assert_eq!(
            module_name("kernel/drivers/net/virtio_net.ko"),
            "virtio_net"
        );
        assert_eq!(module_name("virtio-net"), "virtio_net");
        assert_eq!(module_name("a/b/cdc-ncm.ko.zst"), "cdc_ncm");
        assert_eq!(module_name("x.ko.gz"), "x");
        assert_eq!(module_name("y.ko.xz"), "y");
    }

    #[test]
    fn plan_orders_dependencies_into_waves() {
        let index = ModuleIndex::parse(DEP, None).unwrap();
        let plan = index.plan(&["virtio-net", "nbd"]).unwrap();
        assert_eq!(
            plan.waves,
            vec![
                vec!["failover".to_string(), "nbd".to_string()],
                vec!["net_failover".to_string()],
                vec!["virtio_net".to_string()],
            ]
        );
        assert!(plan.missing.is_empty());
    }

    #[test]
    fn builtin_modules_are_skipped_and_unknown_ones_reported() {
        let index = ModuleIndex::parse(DEP, Some("kernel/fs/ext4/ext4.ko\n")).unwrap();
        let plan = index.plan(&["ext4", "nosuchmod", "nbd", "nbd"]).unwrap();
        assert_eq!(plan.builtin, vec!["ext4"]);
        assert_eq!(
            plan.missing,
            vec![MissingModule {
                name: "nosuchmod".into(),
                needed_by: None
            }]
        );
        assert_eq!(plan.modules().collect::<Vec<_>>(), vec!["nbd"]);
    }

    #[test]
    fn a_missing_dependency_names_the_module_that_needs_it() {
        let index = ModuleIndex::parse(DEP, None).unwrap();
        let plan = index.plan(&["virtio_pci"]).unwrap();
        assert_eq!(
            plan.missing,
            vec![MissingModule {
                name: "virtio_pci_legacy_dev".into(),
                needed_by: Some("virtio_pci".into())
            }]
        );
        assert_eq!(plan.modules().collect::<Vec<_>>(), vec!["virtio_pci"]);
    }

    #[test]
    fn cycles_are_an_error_not_a_hang() {
        let index = ModuleIndex::parse("a.ko: b.ko\nb.ko: a.ko\n", None).unwrap();
        assert!(matches!(index.plan(&["a"]), Err(KmodError::Cycle(_))));
    }

    #[test]
    fn malformed_lines_are_reported_with_their_number() {
        let err = ModuleIndex::parse("a.ko:\nnot a dep line\n", None).unwrap_err();
        assert!(matches!(err, KmodError::Parse { line: 2, .. }), "{err:?}");
    }

    #[test]
    fn rendered_dep_lists_transitive_dependencies_last_loaded_first() {
        let mut index = ModuleIndex::new();
        index.insert(Module::new("kernel/net/core/failover.ko", vec![]));
        index.insert(Module::new(
            "kernel/drivers/net/net_failover.ko",
            vec!["failover".into()],
        ));
        index.insert(Module::new(
            "kernel/drivers/net/virtio_net.ko",
            vec!["net_failover".into()],
        ));
        let only: BTreeSet<String> = ["virtio_net".to_string()].into();
        assert_eq!(
            index.render_dep(Some(&only)).unwrap(),
            "kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko\n"
        );
        let reparsed = ModuleIndex::parse(&index.render_dep(None).unwrap(), None).unwrap();
        assert_eq!(
            reparsed.plan(&["virtio_net"]).unwrap(),
            index.plan(&["virtio_net"]).unwrap()
        );
    }
}
