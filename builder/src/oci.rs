//! Tinkerbell action images: OCI images of one layer holding a few static binaries, built
//! without Docker or buildah (neither is on a build host or in CI).
//!
//! The layer is a reproducible tar (sorted entries, uid/gid 0, mtime `SOURCE_DATE_EPOCH`,
//! gzip with a zero header time), so the same inputs give the same digests. An image is
//! written as an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/...`), which
//! [`read_layout`] reads back with every digest, size and media type checked, and which
//! [`crate::registry::push`] publishes.
//!
//! The documents, blobs and digests are bootkit-oci's (the worker pulls with the same types);
//! what is here is the builder's own: the layer tree, the reproducible layer, the layout.

use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use bootkit_oci::digest::sha256_hex;
use bootkit_oci::manifest::{
    ContainerConfig, ImageIndex, OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST, Platform,
    REF_NAME_ANNOTATION, RootFs,
};
use bootkit_oci::{Blob, Descriptor, ImageConfig, ImageManifest, OciImage, sha256_digest};
use serde::{Deserialize, Serialize};

use crate::compress::Encoder;
use crate::config::CompressionKind;
use crate::error::{BuildError, Result};
use crate::rootfs::write_archive;
use crate::tree::{Source, Tree, mode_of};

const LAYOUT_VERSION: &str = "1.0.0";

/// A host file and where it goes in the image: `SRC:DEST` on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerFile {
    /// The file on the build host; it must be a regular file.
    pub src: PathBuf,
    /// Its path in the image (a leading `/` is optional; `..` is refused).
    pub dest: String,
}

/// A symlink in the image: `PATH:TARGET` on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerLink {
    /// The symlink's path in the image.
    pub path: String,
    /// What it points to, stored as written (relative or absolute).
    pub target: String,
}

fn split_pair(text: &str, form: &str) -> std::result::Result<(String, String), String> {
    match text.split_once(':') {
        Some((left, right)) if !left.is_empty() && !right.is_empty() => {
            Ok((left.to_string(), right.to_string()))
        }
        _ => Err(format!("{text:?}: expected {form}")),
    }
}

impl FromStr for LayerFile {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let (src, dest) = split_pair(text, "HOST_PATH:IMAGE_PATH")?;
        Ok(LayerFile {
            src: PathBuf::from(src),
            dest,
        })
    }
}

impl FromStr for LayerLink {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let (path, target) = split_pair(text, "IMAGE_PATH:TARGET")?;
        Ok(LayerLink { path, target })
    }
}

/// What an action image holds and how it runs.
#[derive(Debug, Clone, Default)]
pub struct ActionImageSpec {
    /// The files of the layer, with their modes from the host.
    pub files: Vec<LayerFile>,
    /// The symlinks of the layer.
    pub links: Vec<LayerLink>,
    /// The image's `Entrypoint`: the program and its first arguments.
    pub entrypoint: Vec<String>,
    /// The image's `Cmd`: the default arguments. This or `entrypoint` must be given.
    pub cmd: Vec<String>,
    /// `KEY=VALUE` entries.
    pub env: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct LayoutMarker {
    #[serde(rename = "imageLayoutVersion")]
    image_layout_version: String,
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value)
        .map_err(|err| BuildError::Config(format!("cannot encode an image document: {err}")))
}

/// Build the image in memory. `epoch` is every entry's mtime.
pub fn build_action_image(spec: &ActionImageSpec, epoch: u64) -> Result<OciImage> {
    if spec.entrypoint.is_empty() && spec.cmd.is_empty() {
        return Err(BuildError::Config(
            "an action image needs an entrypoint or a command (--entrypoint or --cmd)".into(),
        ));
    }
    let tree = layer_tree(spec)?;
    let tar = write_archive(&tree, None, CompressionKind::None, epoch)?;
    let diff_id = sha256_digest(&tar);
    let layer = Blob::new(OCI_LAYER_GZIP, gzip(&tar)?);
    let config = ImageConfig {
        architecture: Platform::linux_amd64().architecture,
        os: Platform::linux_amd64().os,
        config: ContainerConfig {
            entrypoint: non_empty(&spec.entrypoint),
            cmd: non_empty(&spec.cmd),
            env: non_empty(&spec.env),
            working_dir: Some("/".into()),
        },
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id],
        },
    };
    let config = Blob::new(OCI_CONFIG, to_json(&config)?);
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        config: config.descriptor(),
        layers: vec![layer.descriptor()],
    };
    Ok(OciImage {
        manifest: Blob::new(OCI_MANIFEST, to_json(&manifest)?),
        config,
        layers: vec![layer],
    })
}

/// An empty list is left out of the config (`None`), as the image config has always been written.
fn non_empty(list: &[String]) -> Option<Vec<String>> {
    (!list.is_empty()).then(|| list.to_vec())
}

fn layer_tree(spec: &ActionImageSpec) -> Result<Tree> {
    let mut tree = Tree::new();
    for file in &spec.files {
        let meta = fs::metadata(&file.src).map_err(|_| BuildError::Missing {
            what: "action image file",
            path: file.src.clone(),
            hint: "build it first (scripts/build-bootkit.sh) or fix --file".into(),
        })?;
        if !meta.is_file() {
            return Err(BuildError::Config(format!(
                "--file {}:{}: the source is not a regular file",
                file.src.display(),
                file.dest
            )));
        }
        tree.add_file(&file.dest, Source::Host(file.src.clone()), mode_of(&meta))?;
    }
    for link in &spec.links {
        tree.add_symlink(&link.path, &link.target)?;
    }
    // Mount points the runtime expects to exist in the root.
    for dir in ["dev", "proc", "sys", "tmp"] {
        if tree.get(dir).is_none() {
            tree.add_dir(dir, if dir == "tmp" { 0o1777 } else { 0o755 })?;
        }
    }
    Ok(tree)
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let compressed = (|| {
        let mut encoder = Encoder::new(CompressionKind::Gzip, Vec::new())?;
        encoder.write_all(data)?;
        encoder.finish()
    })();
    compressed.map_err(BuildError::io("gzip the image layer"))
}

/// Write `image` as an OCI image layout in `dir`, named `tag` in its index. Blobs already
/// there are kept (they are content-addressed); index.json is replaced.
pub fn write_layout(image: &OciImage, tag: &str, dir: &Path) -> Result<()> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(BuildError::io(format!("create {}", blobs.display())))?;
    for blob in image.blobs() {
        let path = blobs.join(blob.hex());
        crate::reproducible::write_atomic(&path, &blob.data)?;
    }
    let marker = LayoutMarker {
        image_layout_version: LAYOUT_VERSION.into(),
    };
    crate::reproducible::write_atomic(&dir.join("oci-layout"), &to_json(&marker)?)?;
    let mut manifest = image.manifest.descriptor();
    manifest.annotations = [(REF_NAME_ANNOTATION.to_string(), tag.to_string())].into();
    manifest.platform = Some(Platform::linux_amd64());
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(OCI_INDEX.into()),
        manifests: vec![manifest],
    };
    crate::reproducible::write_atomic(&dir.join("index.json"), &to_json(&index)?)
}

/// Read the one image of the layout in `dir` and its tag, checking every blob's digest,
/// size and media type against the descriptor that names it.
pub fn read_layout(dir: &Path) -> Result<(OciImage, String)> {
    let fail = |reason: String| BuildError::Archive {
        archive: dir.to_path_buf(),
        reason: format!("not a valid OCI image layout: {reason}"),
    };
    let marker: LayoutMarker = parse_json(&read_file(&dir.join("oci-layout"))?)
        .map_err(|err| fail(format!("oci-layout: {err}")))?;
    if marker.image_layout_version != LAYOUT_VERSION {
        return Err(fail(format!(
            "layout version {} (expected {LAYOUT_VERSION})",
            marker.image_layout_version
        )));
    }
    let index: ImageIndex = parse_json(&read_file(&dir.join("index.json"))?)
        .map_err(|err| fail(format!("index.json: {err}")))?;
    let [entry] = index.manifests.as_slice() else {
        return Err(fail(format!(
            "index.json lists {} images; an action image layout holds one",
            index.manifests.len()
        )));
    };
    let tag = entry
        .annotations
        .get(REF_NAME_ANNOTATION)
        .cloned()
        .unwrap_or_else(|| "latest".into());
    let manifest_blob = read_blob(dir, entry, OCI_MANIFEST).map_err(fail)?;
    let manifest: ImageManifest =
        parse_json(&manifest_blob.data).map_err(|err| fail(format!("manifest: {err}")))?;
    if manifest.schema_version != 2 {
        return Err(fail(format!(
            "manifest schemaVersion {}",
            manifest.schema_version
        )));
    }
    let config = read_blob(dir, &manifest.config, OCI_CONFIG).map_err(fail)?;
    let config_json: ImageConfig =
        parse_json(&config.data).map_err(|err| fail(format!("image config: {err}")))?;
    if config_json.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(fail(format!(
            "the config lists {} layer diff ids, the manifest {} layers",
            config_json.rootfs.diff_ids.len(),
            manifest.layers.len()
        )));
    }
    let mut layers = Vec::new();
    for (descriptor, diff_id) in manifest.layers.iter().zip(&config_json.rootfs.diff_ids) {
        let layer = read_blob(dir, descriptor, OCI_LAYER_GZIP).map_err(fail)?;
        let tar = bootkit_common::compress::decode_all(&layer.data)
            .map_err(|err| fail(format!("layer {}: {err}", layer.digest)))?;
        let actual = sha256_digest(&tar);
        if &actual != diff_id {
            return Err(fail(format!(
                "layer {} unpacks to {actual}, the config says {diff_id}",
                layer.digest
            )));
        }
        layers.push(layer);
    }
    Ok((
        OciImage {
            manifest: manifest_blob,
            config,
            layers,
        },
        tag,
    ))
}

fn parse_json<'a, T: Deserialize<'a>>(data: &'a [u8]) -> serde_json::Result<T> {
    serde_json::from_slice(data)
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(BuildError::io(format!("read {}", path.display())))
}

/// The blob a descriptor names, checked against it.
fn read_blob(
    dir: &Path,
    descriptor: &Descriptor,
    media_type: &str,
) -> std::result::Result<Blob, String> {
    if descriptor.media_type != media_type {
        return Err(format!(
            "{} has media type {}, expected {media_type}",
            descriptor.digest, descriptor.media_type
        ));
    }
    let hex = sha256_hex(&descriptor.digest)
        .ok_or_else(|| format!("digest {:?} is not sha256:<64 hex>", descriptor.digest))?;
    let path = dir.join("blobs/sha256").join(hex);
    let data = fs::read(&path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    if i64::try_from(data.len()).ok() != Some(descriptor.size) {
        return Err(format!(
            "{} is {} bytes, its descriptor says {}",
            descriptor.digest,
            data.len(),
            descriptor.size
        ));
    }
    let blob = Blob::new(media_type, data);
    if blob.digest != descriptor.digest {
        return Err(format!(
            "{} holds content with digest {}",
            descriptor.digest, blob.digest
        ));
    }
    Ok(blob)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(dir: &Path) -> ActionImageSpec {
        let tool = dir.join("tool");
        fs::write(&tool, b"#!/bin/sh\necho hi\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).unwrap();
        ActionImageSpec {
            files: vec![LayerFile {
                src: tool,
                dest: "/usr/bin/tool".into(),
            }],
            links: vec![LayerLink {
                path: "/bin/t".into(),
                target: "/usr/bin/tool".into(),
            }],
            entrypoint: vec!["/usr/bin/tool".into()],
            cmd: vec![],
            env: vec!["A=1".into()],
        }
    }

    #[test]
    fn the_same_inputs_give_the_same_digests() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec_with(dir.path());
        let first = build_action_image(&spec, 0).unwrap();
        let second = build_action_image(&spec, 0).unwrap();
        assert_eq!(first.manifest.digest, second.manifest.digest);
        let later = build_action_image(&spec, 1_700_000_000).unwrap();
        assert_ne!(first.layers[0].digest, later.layers[0].digest);
    }

    #[test]
    fn a_written_layout_reads_back_checked() {
        let dir = tempfile::tempdir().unwrap();
        let image = build_action_image(&spec_with(dir.path()), 0).unwrap();
        let layout = dir.path().join("layout");
        write_layout(&image, "v1", &layout).unwrap();
        let (read, tag) = read_layout(&layout).unwrap();
        assert_eq!((read, tag.as_str()), (image.clone(), "v1"));

        let config: serde_json::Value = serde_json::from_slice(&image.config.data).unwrap();
        assert_eq!(config["config"]["Entrypoint"][0], "/usr/bin/tool");
        assert_eq!(config["config"]["Env"][0], "A=1");

        let tar = bootkit_common::compress::decode_all(&image.layers[0].data).unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let mut names = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            names.push(entry.path().unwrap().to_string_lossy().into_owned());
            if entry.path().unwrap().ends_with("usr/bin/tool") {
                assert_eq!(entry.header().mode().unwrap() & 0o777, 0o755);
            }
        }
        for wanted in ["usr/bin/tool", "bin/t", "dev", "proc", "sys", "tmp"] {
            assert!(
                names.iter().any(|n| n.trim_end_matches('/') == wanted),
                "{wanted} missing from {names:?}"
            );
        }
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "entries are sorted");
    }

    #[test]
    fn a_corrupt_blob_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let image = build_action_image(&spec_with(dir.path()), 0).unwrap();
        let layout = dir.path().join("layout");
        write_layout(&image, "latest", &layout).unwrap();
        let layer = layout.join("blobs/sha256").join(image.layers[0].hex());
        let mut data = fs::read(&layer).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xff;
        fs::write(&layer, data).unwrap();
        let err = read_layout(&layout).unwrap_err().to_string();
        assert!(err.contains(&image.layers[0].digest), "{err}");
    }

    #[test]
    fn an_image_without_anything_to_run_is_refused() {
        let err = build_action_image(&ActionImageSpec::default(), 0).unwrap_err();
        assert!(err.to_string().contains("--entrypoint"), "{err}");
    }

    #[test]
    fn file_and_link_arguments_parse() {
        let file: LayerFile = "target/x:/usr/bin/image2disk".parse().unwrap();
        assert_eq!(file.dest, "/usr/bin/image2disk");
        assert!("no-colon".parse::<LayerFile>().is_err());
        let link: LayerLink = "/bin/sh:busybox".parse().unwrap();
        assert_eq!(link.target, "busybox");
    }
}
