//! The rootfs archive: an optional input tarball, plus what the image config adds.
//!
//! Order (later wins on the same path): input tarball (minus `./boot/*` and `./tmp/*`),
//! programs with their libraries, directories, services, the init binary, applet links,
//! overlays. Added entries get mode from their source, uid/gid 0 and mtime = the build's
//! epoch; input tarball entries keep their own metadata (incl. pax records such as xattrs).
//!
//! The input tarball is read twice (once to learn its paths, once to copy) instead of
//! being held in memory: rootfs tarballs are hundreds of MB unpacked.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use bootkit_common::archive_name::{EntryKind, PathWalk, display_name};
use bootkit_common::compress;
use bootkit_common::layout::{APPLETS_DIR, INIT_IN_ROOTFS, SERVICES_DIR};
use bootkit_common::service_def;

use crate::compress::Encoder;
use crate::config::{CompressionKind, ImageConfig, Program};
use crate::elf::{HostEntry, gather_libraries};
use crate::error::{BuildError, Result};
use crate::tree::{Node, NodeKind, Source, Tree, mode_of, normalize};

/// Add a host program at its destination, its links, and the libraries it needs.
pub fn add_program(tree: &mut Tree, program: &Program) -> Result<()> {
    let src = &program.src;
    // metadata() follows symlinks: /bin/sh -> dash is copied as dash's content at /bin/sh.
    let meta = fs::metadata(src).map_err(|_| BuildError::Missing {
        what: "program",
        path: src.clone(),
        hint: "install it on the build host or fix its `src` in the image config".into(),
    })?;
    let dest = match &program.dest {
        Some(dest) => dest.clone(),
        None => src.to_string_lossy().into_owned(),
    };
    let dest = format!("/{}", normalize(&dest)?);
    tree.add_file(&dest, Source::Host(src.clone()), mode_of(&meta))?;
    let (dir, name) = dest.rsplit_once('/').unwrap_or(("", dest.as_str()));
    for link in &program.links {
        if link.contains('/') {
            return Err(BuildError::Config(format!(
                "link {link:?} of {}: links are names in the program's directory, not paths",
                src.display()
            )));
        }
        tree.add_symlink(&format!("{dir}/{link}"), name)?;
    }
    for entry in gather_libraries(src)? {
        match entry {
            HostEntry::File(path) => {
                let meta = fs::metadata(&path)
                    .map_err(BuildError::io(format!("read {}", path.display())))?;
                let image = path.to_string_lossy().into_owned();
                tree.add_file(&image, Source::Host(path), mode_of(&meta))?;
            }
            HostEntry::Symlink { path, target } => {
                tree.add_symlink(&path.to_string_lossy(), &target.to_string_lossy())?;
            }
        }
    }
    Ok(())
}

/// Everything the image config adds to the rootfs, in "later wins" order.
pub fn added_tree(config: &ImageConfig) -> Result<Tree> {
    let mut tree = Tree::new();
    for program in &config.rootfs.programs {
        add_program(&mut tree, program)?;
    }
    for dir in &config.rootfs.directories {
        tree.add_host_dir(&dir.src, &dir.dest)?;
    }
    if let Some(services) = &config.rootfs.services {
        add_services(&mut tree, services)?;
    }
    let init = &config.init.binary;
    if !init.is_file() {
        return Err(missing_init(init));
    }
    tree.add_file(INIT_IN_ROOTFS, Source::Host(init.clone()), 0o755)?;
    for applet in &config.init.applets {
        tree.add_symlink(&format!("{APPLETS_DIR}/{applet}"), INIT_IN_ROOTFS)?;
    }
    for overlay in &config.overlay {
        let (source, default_mode) = match (&overlay.src, &overlay.content) {
            (Some(src), None) => {
                let meta = fs::metadata(src).map_err(|_| BuildError::Missing {
                    what: "overlay source",
                    path: src.clone(),
                    hint: format!("create it or fix [[overlay]] dest = {:?}", overlay.dest),
                })?;
                (Source::Host(src.clone()), mode_of(&meta))
            }
            (None, Some(content)) => (Source::Bytes(content.clone().into_bytes()), 0o644),
            _ => {
                return Err(BuildError::Config(format!(
                    "[[overlay]] dest = {:?} needs exactly one of `src` or `content`",
                    overlay.dest
                )));
            }
        };
        tree.add_file(&overlay.dest, source, overlay.mode.unwrap_or(default_mode))?;
    }
    Ok(tree)
}

/// The error for a missing init binary (no file at `path`), with the command that builds it.
pub fn missing_init(path: &Path) -> BuildError {
    BuildError::Missing {
        what: "init binary",
        path: path.to_path_buf(),
        hint: "build it first: cargo build --release -p bootkit-init --target x86_64-unknown-linux-gnu".into(),
    }
}

/// Service definitions: every `*.toml` of the directory, checked against the init's schema
/// now, so that a typo fails the build, naming the file, line and key, instead of the node
/// skipping the service at boot.
fn add_services(tree: &mut Tree, dir: &Path) -> Result<()> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(BuildError::io(format!(
            "list services directory {}",
            dir.display()
        )))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml") && path.is_file())
        .collect();
    files.sort();
    for path in files {
        let text = fs::read_to_string(&path)
            .map_err(BuildError::io(format!("read service {}", path.display())))?;
        check_service(&path, &text)?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        tree.add_file(
            &format!("{SERVICES_DIR}/{name}"),
            Source::Bytes(text.into_bytes()),
            0o644,
        )?;
    }
    Ok(())
}

/// The same checks the init makes when it loads a definition at boot.
fn check_service(path: &Path, text: &str) -> Result<()> {
    let problem = if text.len() as u64 > service_def::MAX_FILE_BYTES {
        format!(
            "{} bytes is more than the init reads (at most {})",
            text.len(),
            service_def::MAX_FILE_BYTES
        )
    } else {
        match service_def::parse(&service_def::name_of_file(path), text) {
            Ok(_) => return Ok(()),
            Err(err) => err.to_string(),
        }
    };
    Err(BuildError::Config(format!(
        "service definition {}: {problem}; fix it, or the init skips this service at boot",
        path.display()
    )))
}

/// What the input tarball holds, learnt in a first pass.
#[derive(Debug, Default)]
struct BaseIndex {
    dirs: BTreeSet<String>,
    symlinks: BTreeMap<String, String>,
}

/// Entries dropped from an input tarball, as generate-bootkit-initramfs.sh does: the
/// kernel and initramfs under /boot are not needed in a RAM root, /tmp starts empty.
fn dropped(path: &str) -> bool {
    path.starts_with("boot/") || path.starts_with("tmp/")
}

fn open_tar(path: &Path) -> Result<tar::Archive<Box<dyn Read>>> {
    let file = File::open(path).map_err(|_| BuildError::Missing {
        what: "rootfs archive",
        path: path.to_path_buf(),
        hint: "fix [rootfs] archive in the image config".into(),
    })?;
    let (_, reader) = compress::decoder(BufReader::new(file))
        .map_err(BuildError::io(format!("read {}", path.display())))?;
    Ok(tar::Archive::new(reader))
}

fn tar_error(archive: &Path) -> impl Fn(io::Error) -> BuildError + '_ {
    move |err| BuildError::Archive {
        archive: archive.to_path_buf(),
        reason: err.to_string(),
    }
}

/// Reads the base rootfs archive's directories and symlinks, and refuses, naming the entry,
/// every entry the init would refuse at boot (the shared rules of
/// `bootkit_common::archive_name`), and an archive without entries.
fn scan_base(archive: &Path) -> Result<BaseIndex> {
    let mut index = BaseIndex::default();
    let mut tar = open_tar(archive)?;
    let mut walk = PathWalk::default();
    let mut entries = 0_u64;
    for entry in tar.entries().map_err(tar_error(archive))? {
        let entry = entry.map_err(tar_error(archive))?;
        let kind = entry.header().entry_type();
        if kind == tar::EntryType::XGlobalHeader {
            continue;
        }
        entries += 1;
        let raw_name = entry.path_bytes().into_owned();
        let raw_link = entry.link_name_bytes().map(|link| link.into_owned());
        let walked = match (kind, &raw_link) {
            (tar::EntryType::Symlink, _) => EntryKind::Symlink,
            (tar::EntryType::Link, Some(target)) => EntryKind::HardLink(target),
            _ => EntryKind::Other,
        };
        walk.check(&raw_name, walked)
            .map_err(|reason| BuildError::Archive {
                archive: archive.to_path_buf(),
                reason: format!(
                    "entry '{}' would be refused at boot: {reason}; fix the archive",
                    display_name(&raw_name)
                ),
            })?;
        let path = entry_path(&entry, archive)?;
        if kind.is_dir() {
            index.dirs.insert(path);
        } else if kind.is_symlink() {
            let target = entry
                .link_name()
                .map_err(tar_error(archive))?
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            index.symlinks.insert(path, target);
        }
    }
    if entries == 0 {
        return Err(BuildError::Archive {
            archive: archive.to_path_buf(),
            reason: "it has no entries, and the init refuses an empty rootfs; give [rootfs] \
                     archive a rootfs tarball"
                .into(),
        });
    }
    Ok(index)
}

fn entry_path<R: Read>(entry: &tar::Entry<'_, R>, archive: &Path) -> Result<String> {
    let path = entry.path().map_err(tar_error(archive))?;
    normalize(&path.to_string_lossy()).map_err(|_| BuildError::Archive {
        archive: archive.to_path_buf(),
        reason: format!("entry {} escapes the root", path.display()),
    })
}

/// Follow the input tarball's symlinks in `path` (its parents, and the last component too
/// when `last` is set): a host library at `lib/x86_64-linux-gnu/...` must land in
/// `usr/lib/...` when the tarball's `lib` is a link to `usr/lib`, or the init would have to
/// write through a symlink (which it refuses).
fn resolve_in_base(path: &str, symlinks: &BTreeMap<String, String>, last: bool) -> String {
    let mut parts: Vec<String> = path.split('/').map(str::to_string).collect();
    let mut i = 0;
    let mut hops = 0;
    while i < parts.len() {
        let is_last = i + 1 == parts.len();
        let target = symlinks.get(&parts[..=i].join("/"));
        match target {
            Some(target) if (!is_last || last) && hops < 40 => {
                hops += 1;
                let mut resolved: Vec<String> = if target.starts_with('/') {
                    Vec::new()
                } else {
                    parts[..i].to_vec()
                };
                for component in target.split('/') {
                    match component {
                        "" | "." => {}
                        ".." => {
                            resolved.pop();
                        }
                        other => resolved.push(other.to_string()),
                    }
                }
                resolved.extend(parts.drain(i + 1..));
                parts = resolved;
                i = 0;
            }
            _ => i += 1,
        }
    }
    parts.join("/")
}

/// The added tree with paths moved through the input tarball's symlinked directories.
fn rebase(tree: &Tree, base: &BaseIndex) -> Result<Tree> {
    let mut out = Tree::new();
    for (path, node) in tree.nodes().filter(|(_, node)| !node.implicit) {
        let is_dir = node.kind == NodeKind::Dir;
        let resolved = resolve_in_base(path, &base.symlinks, is_dir);
        out.add(&resolved, node.kind.clone(), node.mode)?;
    }
    Ok(out)
}

/// Whether an input tarball entry gives way to an added one: the same path as an added
/// non-directory, or below one.
fn overridden(path: &str, tree: &Tree) -> bool {
    let mut prefix = path;
    loop {
        if tree
            .get(prefix)
            .is_some_and(|node| node.kind != NodeKind::Dir)
        {
            return true;
        }
        match prefix.rfind('/') {
            Some(slash) => prefix = &prefix[..slash],
            None => return false,
        }
    }
}

/// Write the rootfs archive: input tarball entries, then the added tree, compressed.
pub fn write_archive(
    tree: &Tree,
    base: Option<&Path>,
    kind: CompressionKind,
    epoch: u64,
) -> Result<Vec<u8>> {
    let encoder = Encoder::new(kind, Vec::new()).map_err(BuildError::io("start compressor"))?;
    let mut builder = tar::Builder::new(encoder);
    let (tree, base_index) = match base {
        Some(archive) => {
            let index = scan_base(archive)?;
            let tree = rebase(tree, &index)?;
            copy_base(&mut builder, archive, &tree)?;
            (tree, index)
        }
        None => (tree.clone(), BaseIndex::default()),
    };
    for (path, node) in tree.nodes() {
        // A directory the input tarball already has keeps the tarball's metadata.
        if node.kind == NodeKind::Dir && base_index.dirs.contains(path) {
            continue;
        }
        append_node(&mut builder, path, node, epoch)?;
    }
    let encoder = builder
        .into_inner()
        .map_err(BuildError::io("write rootfs archive"))?;
    encoder
        .finish()
        .map_err(BuildError::io("compress rootfs archive"))
}

fn copy_base<W: Write>(builder: &mut tar::Builder<W>, archive: &Path, tree: &Tree) -> Result<()> {
    let fail = tar_error(archive);
    let mut tar = open_tar(archive)?;
    let mut skipped = BTreeSet::new();
    for entry in tar.entries().map_err(&fail)? {
        let mut entry = entry.map_err(&fail)?;
        let path = entry_path(&entry, archive)?;
        if path.is_empty() {
            continue; // "./": the root's mode comes from rootflags=, not the archive.
        }
        if dropped(&path) || overridden(&path, tree) {
            skipped.insert(path);
            continue;
        }
        let mut header = entry.header().clone();
        let link = entry
            .link_name()
            .map_err(&fail)?
            .map(|link| link.to_string_lossy().into_owned());
        let pax = pax_records(&mut entry).map_err(&fail)?;
        if let Some(records) = pax {
            append_pax(builder, &records).map_err(&fail)?;
        }
        let kind = header.entry_type();
        if kind.is_hard_link() {
            let target = normalize(link.as_deref().unwrap_or_default())?;
            if skipped.contains(&target) {
                continue; // A hard link to a dropped file cannot be made.
            }
            builder
                .append_link(&mut header, &path, &target)
                .map_err(&fail)?;
        } else if kind.is_symlink() {
            builder
                .append_link(&mut header, &path, link.unwrap_or_default())
                .map_err(&fail)?;
        } else {
            builder
                .append_data(&mut header, &path, &mut entry)
                .map_err(&fail)?;
        }
    }
    Ok(())
}

/// An entry's pax records except path/linkpath (those are rewritten with the entry).
fn pax_records<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Option<Vec<u8>>> {
    let Some(extensions) = entry.pax_extensions()? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for extension in extensions {
        let extension = extension?;
        let key = extension.key_bytes();
        if key == b"path" || key == b"linkpath" {
            continue;
        }
        // A record is "<len> <key>=<value>\n" where <len> counts the whole record, itself
        // included: find the fixed point.
        let body_len = key.len() + extension.value_bytes().len() + 3;
        let mut len = body_len + 1;
        while len != body_len + len.to_string().len() {
            len = body_len + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} ").as_bytes());
        out.extend_from_slice(key);
        out.push(b'=');
        out.extend_from_slice(extension.value_bytes());
        out.push(b'\n');
    }
    Ok((!out.is_empty()).then_some(out))
}

fn append_pax<W: Write>(builder: &mut tar::Builder<W>, records: &[u8]) -> io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::XHeader);
    header.set_size(records.len() as u64);
    header.set_mode(0o644);
    header.set_path("././@PaxHeader")?;
    header.set_cksum();
    builder.append(&header, records)
}

fn append_node<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    node: &Node,
    epoch: u64,
) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(epoch);
    header.set_mode(node.mode);
    header.set_size(0);
    let fail = BuildError::io(format!("add {path} to the rootfs archive"));
    let result = match &node.kind {
        NodeKind::File(source) => {
            let data = source.read()?;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(data.len() as u64);
            builder.append_data(&mut header, path, &data[..])
        }
        NodeKind::Dir => {
            header.set_entry_type(tar::EntryType::Directory);
            builder.append_data(&mut header, path, io::empty())
        }
        NodeKind::Symlink(target) => {
            header.set_entry_type(tar::EntryType::Symlink);
            builder.append_link(&mut header, path, target)
        }
        NodeKind::CharDevice { major, minor } => {
            header.set_entry_type(tar::EntryType::Char);
            header
                .set_device_major(*major)
                .and_then(|()| header.set_device_minor(*minor))
                .and_then(|()| builder.append_data(&mut header, path, io::empty()))
        }
    };
    result.map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_service_key_fails_the_build_naming_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("good.toml"), "command = \"/bin/true\"\n").unwrap();
        fs::write(
            dir.path().join("worker.toml"),
            "args = [\"-v\"]\ncomand = \"/usr/bin/worker\"\n",
        )
        .unwrap();
        let message = add_services(&mut Tree::new(), dir.path())
            .unwrap_err()
            .to_string();
        assert!(message.contains("worker.toml: line 2: "), "{message}");
        assert!(message.contains("unknown field `comand`"), "{message}");
    }

    #[test]
    fn a_wrong_value_is_refused_with_its_key_and_good_services_are_added() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("a.toml"),
            "command = \"x\"\nmodes = [\"rescue\"]\n",
        )
        .unwrap();
        let message = add_services(&mut Tree::new(), dir.path())
            .unwrap_err()
            .to_string();
        assert!(message.contains("unknown mode `rescue`"), "{message}");
        fs::write(
            dir.path().join("a.toml"),
            "command = \"x\"\nuser = \"root\"\n",
        )
        .unwrap();
        let message = add_services(&mut Tree::new(), dir.path())
            .unwrap_err()
            .to_string();
        assert!(message.contains("line 2: `user`: "), "{message}");
        fs::write(dir.path().join("a.toml"), "command = \"x\"\n").unwrap();
        let mut tree = Tree::new();
        add_services(&mut tree, dir.path()).unwrap();
        assert_eq!(
            tree.len(),
            4,
            "/etc, /etc/bootkit, its services dir and a.toml"
        );
    }

    #[test]
    fn symlinked_directories_of_the_base_are_followed() {
        let symlinks = BTreeMap::from([
            ("lib".to_string(), "usr/lib".to_string()),
            ("lib64".to_string(), "/usr/lib64".to_string()),
            ("usr/lib/x".to_string(), "../share/y".to_string()),
        ]);
        assert_eq!(
            resolve_in_base("lib/x86_64-linux-gnu/libc.so.6", &symlinks, false),
            "usr/lib/x86_64-linux-gnu/libc.so.6"
        );
        assert_eq!(
            resolve_in_base("lib64/ld.so", &symlinks, false),
            "usr/lib64/ld.so"
        );
        assert_eq!(
            resolve_in_base("lib/x/f", &symlinks, false),
            "usr/share/y/f"
        );
        // The last component is only followed for directories.
        assert_eq!(resolve_in_base("lib", &symlinks, false), "lib");
        assert_eq!(resolve_in_base("lib", &symlinks, true), "usr/lib");
    }

    #[test]
    fn pax_records_count_their_own_length() {
        // "30 SCHILY.xattr.user.a=value\n" style records: check the fixed point.
        for value_len in [0usize, 5, 80, 95, 96, 1000] {
            let key = b"SCHILY.xattr.user.k";
            let body = key.len() + value_len + 3;
            let mut len = body + 1;
            while len != body + len.to_string().len() {
                len = body + len.to_string().len();
            }
            let record_len = len.to_string().len() + body;
            assert_eq!(len, record_len);
        }
    }

    fn base_tarball(dir: &Path) -> PathBuf {
        let mut tar = tar::Builder::new(Vec::new());
        let mut add = |path: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
            header.set_uid(1000);
            header.set_mtime(1_700_000_000);
            header.set_size(data.len() as u64);
            match link {
                Some(link) => tar.append_link(&mut header, path, link).unwrap(),
                None => tar.append_data(&mut header, path, data).unwrap(),
            }
        };
        add("./", tar::EntryType::Directory, b"", None);
        add("./usr/", tar::EntryType::Directory, b"", None);
        add("./usr/lib/", tar::EntryType::Directory, b"", None);
        add("./lib", tar::EntryType::Symlink, b"", Some("usr/lib"));
        add("./boot/", tar::EntryType::Directory, b"", None);
        add("./boot/vmlinuz", tar::EntryType::Regular, b"kernel", None);
        add("./tmp/", tar::EntryType::Directory, b"", None);
        add("./tmp/junk", tar::EntryType::Regular, b"junk", None);
        add("./etc/", tar::EntryType::Directory, b"", None);
        add(
            "./etc/environment",
            tar::EntryType::Regular,
            b"OLD=1\n",
            None,
        );
        add("./etc/hostname", tar::EntryType::Regular, b"emt\n", None);
        let data = tar.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let path = dir.join("rootfs.tar.gz");
        fs::write(&path, gz.finish().unwrap()).unwrap();
        path
    }

    fn list(archive: &[u8]) -> Vec<(String, u64, Vec<u8>)> {
        let (_, reader) = compress::decoder(archive).unwrap();
        let mut tar = tar::Archive::new(reader);
        let mut out = Vec::new();
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let uid = entry.header().uid().unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            out.push((path, uid, data));
        }
        out
    }

    #[test]
    fn base_tarball_is_filtered_merged_and_overridden() {
        let dir = tempfile::tempdir().unwrap();
        let base = base_tarball(dir.path());
        let mut tree = Tree::new();
        tree.add_file("/lib/libfoo.so", Source::Bytes(b"lib".to_vec()), 0o644)
            .unwrap();
        tree.add_file(
            "/etc/environment",
            Source::Bytes(b"NEW=1\n".to_vec()),
            0o644,
        )
        .unwrap();
        let archive = write_archive(&tree, Some(&base), CompressionKind::Zstd, 0).unwrap();
        let entries = list(&archive);
        let paths: Vec<&str> = entries.iter().map(|(p, _, _)| p.as_str()).collect();
        assert!(
            !paths.iter().any(|p| p.starts_with("boot/vmlinuz")),
            "{paths:?}"
        );
        assert!(!paths.contains(&"tmp/junk"), "{paths:?}");
        assert!(paths.contains(&"tmp"), "{paths:?}");
        assert!(paths.contains(&"usr/lib/libfoo.so"), "{paths:?}");
        assert!(!paths.contains(&"lib/libfoo.so"), "{paths:?}");
        let env: Vec<_> = entries
            .iter()
            .filter(|(p, _, _)| p == "etc/environment")
            .collect();
        assert_eq!(env.len(), 1, "one entry per path");
        assert_eq!(env[0].2, b"NEW=1\n");
        assert_eq!(env[0].1, 0, "added entries are owned by root");
        let hostname = entries
            .iter()
            .find(|(p, _, _)| p == "etc/hostname")
            .unwrap();
        assert_eq!(hostname.1, 1000, "tarball entries keep their metadata");
        // The tarball's etc directory is not repeated by the added tree.
        assert_eq!(
            paths
                .iter()
                .filter(|p| p.trim_end_matches('/') == "etc")
                .count(),
            1
        );
    }
}
