//! What the worker directory (`/worker`, the actions' `/worker`) holds: the reboot request
//! file, and each workflow's directory `<worker_dir>/<name>`, mounted as the actions'
//! `/workflow`. The workflow id comes from the server and is `namespace/name` with both
//! upstream servers (`default/my-workflow`); the directory name is the id escaped into one
//! plain path component, so that it can never leave the worker directory, never meets
//! another workflow's directory and never takes the name of the `reboot` request file.
//!
//! The rule: bytes `A-Z a-z 0-9 _ - .` stay, every other byte (and a leading `.`, and the
//! first byte of a name that would equal a reserved file's) becomes `%XX` in upper-case hex.
//! `%` is escaped too, so two ids never give the same name.

use std::path::{Path, PathBuf};

/// The file, relative to the worker directory, whose presence asks for a reboot.
pub const REBOOT_FILE: &str = "reboot";

/// The directory name of `workflow_id`; an error only for an empty id.
pub fn workflow_dir_name(workflow_id: &str) -> Result<String, String> {
    if workflow_id.is_empty() {
        return Err("the workflow id is empty, so it cannot name a directory".to_string());
    }
    let mut name = String::with_capacity(workflow_id.len());
    for (index, &byte) in workflow_id.as_bytes().iter().enumerate() {
        let plain = byte.is_ascii_alphanumeric()
            || matches!(byte, b'_' | b'-')
            || (byte == b'.' && index > 0);
        if plain {
            name.push(char::from(byte));
        } else {
            name.push_str(&format!("%{byte:02X}"));
        }
    }
    if name == REBOOT_FILE {
        name.replace_range(..1, &format!("%{:02X}", REBOOT_FILE.as_bytes()[0]));
    }
    Ok(name)
}

/// Creates `<worker_dir>/<workflow_dir_name(workflow_id)>` (and the worker directory) if missing.
pub fn create_workflow_dir(worker_dir: &Path, workflow_id: &str) -> Result<PathBuf, String> {
    let dir = worker_dir.join(workflow_dir_name(workflow_id)?);
    std::fs::create_dir_all(&dir).map_err(|err| {
        format!(
            "cannot create the workflow directory {}: {err}; is {} writable?",
            dir.display(),
            worker_dir.display()
        )
    })?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Component;

    #[test]
    fn upstream_ids_become_one_plain_component() {
        assert_eq!(
            workflow_dir_name("default/my-workflow").unwrap(),
            "default%2Fmy-workflow"
        );
        assert_eq!(workflow_dir_name("wf-1.v2").unwrap(), "wf-1.v2");
        assert_eq!(workflow_dir_name("../../etc").unwrap(), "%2E.%2F..%2Fetc");
        assert_eq!(workflow_dir_name("/etc").unwrap(), "%2Fetc");
        assert_eq!(workflow_dir_name(".").unwrap(), "%2E");
        assert_eq!(workflow_dir_name("reboot").unwrap(), "%72eboot");
        assert_eq!(workflow_dir_name("a b\n").unwrap(), "a%20b%0A");
        assert_eq!(workflow_dir_name("é").unwrap(), "%C3%A9");
        assert!(workflow_dir_name("").is_err());
    }

    #[test]
    fn different_ids_never_share_a_directory_and_none_leaves_the_worker_directory() {
        let ids = [
            "default/wf",
            "default%2Fwf",
            "default",
            "wf",
            "default/wf/x",
            "reboot",
            "%72eboot",
            "..",
            ".",
            "../x",
            "a/../b",
            "a%2",
            "a%2F",
            "a/",
            "a//",
        ];
        let names: BTreeSet<String> = ids
            .iter()
            .map(|id| workflow_dir_name(id).unwrap())
            .collect();
        assert_eq!(names.len(), ids.len(), "{names:?}");
        for name in &names {
            let components: Vec<Component<'_>> = Path::new(name).components().collect();
            assert!(
                matches!(components[..], [Component::Normal(_)]),
                "{name} is not one plain component"
            );
            assert_ne!(name, REBOOT_FILE);
        }
    }

    #[test]
    fn a_namespaced_workflow_gets_its_own_directory() {
        let dir = tempfile::tempdir().unwrap();
        let created = create_workflow_dir(dir.path(), "default/wf-1").unwrap();
        assert!(created.is_dir());
        assert_eq!(created, dir.path().join("default%2Fwf-1"));
    }
}
