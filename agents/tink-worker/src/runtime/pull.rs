//! Client-side pull into containerd (what containerd 1.6's Go client does, as that daemon has
//! no Transfer service): blobs into the content store under a lease, layers applied with the
//! diff service onto snapshots named by chain ID, then the image record.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::diff_client::DiffClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::{
    AbortRequest, ApplyRequest, CreateImageRequest, CreateRequest, DeleteRequest, GetImageRequest,
    Image, Info, InfoRequest, ReadContentRequest, UpdateImageRequest, UpdateRequest, WriteAction,
    WriteContentRequest,
};
use containerd_client::tonic::Code;
use containerd_client::types::Descriptor as ContainerdDescriptor;
use futures::TryStreamExt;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{Runtime, RuntimeError};
use bootkit_oci::manifest::{ImageConfig, ImageManifest};
use bootkit_oci::{
    BlobReader, Descriptor, Reference, RegistryClient, RegistryError, ResolvedImage,
};

/// Layers downloaded at once (as containerd's own client does by default).
const PARALLEL_DOWNLOADS: usize = 3;
/// Size of the content writes sent to containerd: fewer, larger messages than the network's
/// chunks.
const WRITE_CHUNK: usize = 1 << 20;

/// An image present and unpacked in containerd.
#[derive(Debug, Clone)]
pub struct PulledImage {
    /// The image record's name (the reference as written, with Docker's defaults).
    pub name: String,
    /// `sha256:<hex>` of the platform's image manifest.
    pub manifest_digest: String,
    /// The image config (entrypoint, cmd, env, working dir).
    pub config: ImageConfig,
    /// The snapshot of the whole root filesystem: containers are prepared on top of it.
    pub top_chain_id: String,
}

/// The image record name of an action's `image`.
pub fn image_name(image: &str) -> Result<String, RuntimeError> {
    Ok(image.parse::<Reference>()?.to_string())
}

/// Chain IDs from diff IDs (OCI image spec): the first is the first diff ID, each next one
/// is `sha256(previous + " " + diff_id)`.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chain: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match chain.last() {
            None => diff_id.clone(),
            Some(parent) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{parent} {diff_id}")))
            ),
        };
        chain.push(next);
    }
    chain
}

impl Runtime {
    /// Pulls `image` from its registry's hosts (containerd's `hosts.toml` mirrors, the
    /// `docker_registry` mirror, or the registry itself; see [`RegistryClient::hosts_for`])
    /// into containerd and unpacks it. A host that fails is logged and the next one is tried.
    /// Blobs and snapshots already present are skipped. Registry requests are retried by the
    /// registry client's policy; a transfer cut mid-blob restarts that blob.
    pub async fn pull(
        &self,
        registry: &RegistryClient,
        image: &str,
    ) -> Result<PulledImage, RuntimeError> {
        let reference: Reference = image.parse()?;
        let resolved = registry.resolve(&reference).await?;
        let config_bytes = registry
            .fetch_document(&resolved, &resolved.manifest.config)
            .await?;
        let config = parse_config(image, &config_bytes, &resolved.manifest)?;
        let chain = chain_ids(&config.rootfs.diff_ids);
        let top_chain_id = chain.last().cloned().ok_or_else(|| RuntimeError::Image {
            image: image.to_string(),
            why: "it has no layers".to_string(),
        })?;
        let pulled = PulledImage {
            name: reference.to_string(),
            manifest_digest: resolved.descriptor.digest.clone(),
            config,
            top_chain_id,
        };
        let lease = self.create_lease().await?;
        let result = async {
            self.store_and_unpack_layers(
                &lease,
                registry,
                &resolved,
                &resolved.manifest,
                &pulled.config.rootfs.diff_ids,
            )
            .await?;
            let config_labels = HashMap::from([(
                format!("containerd.io/gc.ref.snapshot.{}", self.config.snapshotter),
                pulled.top_chain_id.clone(),
            )]);
            self.store_bytes(
                &lease,
                &resolved.manifest.config,
                config_labels,
                config_bytes,
            )
            .await?;
            self.store_bytes(
                &lease,
                &resolved.descriptor,
                manifest_gc_labels(&resolved.manifest),
                resolved.manifest_bytes.clone(),
            )
            .await?;
            self.set_image_record(&pulled.name, &resolved.descriptor)
                .await
        }
        .await;
        // The image record and the GC labels keep everything: the lease only guarded the pull.
        let released = self.delete_lease(&lease).await;
        result?;
        released?;
        Ok(pulled)
    }

    /// The image `name` as containerd has it: its config and top snapshot.
    pub async fn image(&self, name: &str) -> Result<PulledImage, RuntimeError> {
        let mut images = ImagesClient::new(self.channel().await?);
        let record = images
            .get(self.request(
                GetImageRequest {
                    name: name.to_string(),
                },
                None,
            ))
            .await
            .map_err(|status| match status.code() {
                Code::NotFound => RuntimeError::Image {
                    image: name.to_string(),
                    why: "containerd does not have it; pull it first".to_string(),
                },
                _ => self.failed(format!("image lookup of {name}"), status),
            })?
            .into_inner()
            .image;
        let target = record
            .and_then(|image| image.target)
            .ok_or_else(|| RuntimeError::Image {
                image: name.to_string(),
                why: "its record has no target".to_string(),
            })?;
        let manifest_bytes = self.read_content(&target.digest).await?;
        let manifest: ImageManifest =
            serde_json::from_slice(&manifest_bytes).map_err(|e| RuntimeError::Image {
                image: name.to_string(),
                why: format!("its manifest is unreadable: {e}"),
            })?;
        let config_bytes = self.read_content(&manifest.config.digest).await?;
        let config = parse_config(name, &config_bytes, &manifest)?;
        let top_chain_id =
            chain_ids(&config.rootfs.diff_ids)
                .pop()
                .ok_or_else(|| RuntimeError::Image {
                    image: name.to_string(),
                    why: "it has no layers".to_string(),
                })?;
        Ok(PulledImage {
            name: name.to_string(),
            manifest_digest: target.digest,
            config,
            top_chain_id,
        })
    }

    async fn read_content(&self, digest: &str) -> Result<Vec<u8>, RuntimeError> {
        let mut content = ContentClient::new(self.channel().await?);
        let request = ReadContentRequest {
            digest: digest.to_string(),
            offset: 0,
            size: 0,
        };
        let mut stream = content
            .read(self.request(request, None))
            .await
            .map_err(|status| self.failed(format!("content read of {digest}"), status))?
            .into_inner();
        let mut data = Vec::new();
        while let Some(message) = stream
            .message()
            .await
            .map_err(|status| self.failed(format!("content read of {digest}"), status))?
        {
            data.extend_from_slice(&message.data);
        }
        Ok(data)
    }

    pub(super) async fn create_lease(&self) -> Result<String, RuntimeError> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let id = format!("tink-worker-pull-{nanos}-{}", std::process::id());
        let mut leases = LeasesClient::new(self.channel().await?);
        let request = CreateRequest {
            id: id.clone(),
            labels: HashMap::new(),
        };
        leases
            .create(self.request(request, None))
            .await
            .map_err(|status| self.failed("lease create", status))?;
        Ok(id)
    }

    pub(super) async fn delete_lease(&self, id: &str) -> Result<(), RuntimeError> {
        let mut leases = LeasesClient::new(self.channel().await?);
        let request = DeleteRequest {
            id: id.to_string(),
            sync: false,
        };
        match leases.delete(self.request(request, None)).await {
            Err(status) if status.code() != Code::NotFound => {
                Err(self.failed(format!("lease delete of {id}"), status))
            }
            _ => Ok(()),
        }
    }

    /// Downloads the layers a few at a time (skipping those containerd has) and applies each
    /// one as soon as it is in and the layers below it are applied, so that unpacking
    /// overlaps the downloads still running.
    async fn store_and_unpack_layers(
        &self,
        lease: &str,
        registry: &RegistryClient,
        source: &ResolvedImage,
        manifest: &ImageManifest,
        diff_ids: &[String],
    ) -> Result<(), RuntimeError> {
        let (stored, mut stored_signal) = mpsc::unbounded_channel::<usize>();
        let downloads = async {
            // Moved in, so that the unpacking sees the end of the downloads.
            let stored = stored;
            futures::stream::iter(manifest.layers.iter().enumerate().map(Ok))
                .try_for_each_concurrent(PARALLEL_DOWNLOADS, |(index, layer)| {
                    let stored = stored.clone();
                    async move {
                        self.store_layer(lease, registry, source, layer).await?;
                        let _ = stored.send(index);
                        Ok::<_, RuntimeError>(())
                    }
                })
                .await
        };
        let unpacking = async {
            let chain = chain_ids(diff_ids);
            let mut present = vec![false; manifest.layers.len()];
            for (index, layer) in manifest.layers.iter().enumerate() {
                while !present[index] {
                    match stored_signal.recv().await {
                        Some(done) => present[done] = true,
                        // A download failed: its error is the one reported.
                        None => return Ok(()),
                    }
                }
                if self.snapshot_exists(&chain[index]).await? {
                    continue;
                }
                let parent = index
                    .checked_sub(1)
                    .map(|below| chain[below].clone())
                    .unwrap_or_default();
                self.apply_layer(lease, layer, &diff_ids[index], &parent, &chain[index])
                    .await?;
            }
            Ok::<_, RuntimeError>(())
        };
        let (downloaded, unpacked) = tokio::join!(downloads, unpacking);
        downloaded?;
        unpacked
    }

    async fn store_layer(
        &self,
        lease: &str,
        registry: &RegistryClient,
        source: &ResolvedImage,
        layer: &Descriptor,
    ) -> Result<(), RuntimeError> {
        if self.content_labels(&layer.digest).await?.is_some() {
            return Ok(());
        }
        // Each request is already retried by the registry client; this retries a download cut
        // in the middle, which restarts the blob.
        let what = format!("download of layer {}", layer.digest);
        let cut_midway = |error: &RuntimeError| {
            matches!(
                error,
                RuntimeError::Registry(RegistryError::Transfer { .. })
            )
        };
        registry
            .retry_policy()
            .run(&what, cut_midway, || async {
                let mut blob = registry.fetch_blob(source, layer).await?;
                self.write_content(
                    lease,
                    layer,
                    HashMap::new(),
                    ChunkSource::Registry(&mut blob),
                )
                .await
            })
            .await
    }

    /// Stores a small blob already in memory, or only sets its labels if containerd has it.
    async fn store_bytes(
        &self,
        lease: &str,
        descriptor: &Descriptor,
        labels: HashMap<String, String>,
        data: Bytes,
    ) -> Result<(), RuntimeError> {
        match self.content_labels(&descriptor.digest).await? {
            Some(present) => {
                if labels.iter().all(|(k, v)| present.get(k) == Some(v)) {
                    return Ok(());
                }
                self.update_content_labels(descriptor, labels).await
            }
            None => {
                self.write_content(lease, descriptor, labels, ChunkSource::Memory(Some(data)))
                    .await
            }
        }
    }

    /// The labels of a blob in the content store, `None` if it is not there.
    async fn content_labels(
        &self,
        digest: &str,
    ) -> Result<Option<HashMap<String, String>>, RuntimeError> {
        let mut content = ContentClient::new(self.channel().await?);
        let request = InfoRequest {
            digest: digest.to_string(),
        };
        match content.info(self.request(request, None)).await {
            Ok(response) => Ok(Some(
                response
                    .into_inner()
                    .info
                    .map(|i| i.labels)
                    .unwrap_or_default(),
            )),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(self.failed(format!("content info of {digest}"), status)),
        }
    }

    async fn update_content_labels(
        &self,
        descriptor: &Descriptor,
        labels: HashMap<String, String>,
    ) -> Result<(), RuntimeError> {
        let mut content = ContentClient::new(self.channel().await?);
        let paths = labels.keys().map(|key| format!("labels.{key}")).collect();
        let request = UpdateRequest {
            info: Some(Info {
                digest: descriptor.digest.clone(),
                size: descriptor.size,
                created_at: None,
                updated_at: None,
                labels,
            }),
            update_mask: Some(prost_types::FieldMask { paths }),
        };
        content
            .update(self.request(request, None))
            .await
            .map_err(|status| {
                self.failed(
                    format!("content label update of {}", descriptor.digest),
                    status,
                )
            })?;
        Ok(())
    }

    /// Streams a blob into the content store; containerd checks size and digest at commit.
    /// Requests and acknowledgements flow at once (one answer per request), so a large blob
    /// is not held up by round trips.
    async fn write_content(
        &self,
        lease: &str,
        descriptor: &Descriptor,
        labels: HashMap<String, String>,
        mut source: ChunkSource<'_>,
    ) -> Result<(), RuntimeError> {
        let write_ref = format!("tink-worker-{}", descriptor.digest);
        let operation = format!("content write of {}", descriptor.digest);
        let (sender, receiver) = mpsc::channel::<WriteContentRequest>(4);
        let mut content = ContentClient::new(self.channel().await?);
        let request = self.request(ReceiverStream::new(receiver), Some(lease));
        let send = async {
            let mut offset = 0i64;
            while let Some(data) = source.next_block().await? {
                let length = data.len() as i64;
                let message =
                    write_request(WriteAction::Write, &write_ref, descriptor, offset, data);
                if sender.send(message).await.is_err() {
                    // containerd ended the call: its answer says why.
                    return Ok(());
                }
                offset += length;
            }
            let mut commit = write_request(
                WriteAction::Commit,
                &write_ref,
                descriptor,
                offset,
                Vec::new(),
            );
            commit.labels = labels;
            let _ = sender.send(commit).await;
            drop(sender);
            Ok::<_, RuntimeError>(())
        };
        let receive = async {
            let mut answers = content.write(request).await?.into_inner();
            while answers.message().await?.is_some() {}
            Ok::<_, containerd_client::tonic::Status>(())
        };
        let (sent, received) = tokio::join!(send, receive);
        let result = match received {
            Err(status) if status.code() == Code::AlreadyExists => Ok(()),
            Err(status) => Err(self.failed(operation, status)),
            Ok(()) => sent,
        };
        if result.is_err() {
            self.abort_write(&write_ref).await;
        }
        result
    }

    /// Drops a half-written blob so that the next attempt starts clean.
    async fn abort_write(&self, write_ref: &str) {
        if let Ok(channel) = self.channel().await {
            let request = AbortRequest {
                r#ref: write_ref.to_string(),
            };
            // Best effort: containerd also expires abandoned writes itself.
            let _ = ContentClient::new(channel)
                .abort(self.request(request, None))
                .await;
        }
    }

    async fn snapshot_exists(&self, key: &str) -> Result<bool, RuntimeError> {
        let mut snapshots = SnapshotsClient::new(self.channel().await?);
        let request = StatSnapshotRequest {
            snapshotter: self.config.snapshotter.clone(),
            key: key.to_string(),
        };
        match snapshots.stat(self.request(request, None)).await {
            Ok(_) => Ok(true),
            Err(status) if status.code() == Code::NotFound => Ok(false),
            Err(status) => Err(self.failed(format!("snapshot stat of {key}"), status)),
        }
    }

    async fn apply_layer(
        &self,
        lease: &str,
        layer: &Descriptor,
        diff_id: &str,
        parent: &str,
        chain_id: &str,
    ) -> Result<(), RuntimeError> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let key = format!("extract-{nanos}-{chain_id}");
        let mut snapshots = SnapshotsClient::new(self.channel().await?);
        let prepare = PrepareSnapshotRequest {
            snapshotter: self.config.snapshotter.clone(),
            key: key.clone(),
            parent: parent.to_string(),
            labels: HashMap::new(),
        };
        let mounts = snapshots
            .prepare(self.request(prepare, Some(lease)))
            .await
            .map_err(|status| {
                self.failed(
                    format!("snapshot prepare for layer {}", layer.digest),
                    status,
                )
            })?
            .into_inner()
            .mounts;
        let result = async {
            let mut diff = DiffClient::new(self.channel().await?);
            let apply = ApplyRequest {
                diff: Some(containerd_descriptor(layer)),
                mounts,
                payloads: HashMap::new(),
                sync_fs: false,
            };
            let applied = diff
                .apply(self.request(apply, Some(lease)))
                .await
                .map_err(|status| {
                    self.failed(format!("diff apply of layer {}", layer.digest), status)
                })?
                .into_inner()
                .applied
                .map(|d| d.digest)
                .unwrap_or_default();
            if applied != diff_id {
                return Err(RuntimeError::Image {
                    image: layer.digest.clone(),
                    why: format!("the layer unpacks to {applied}, but the config says {diff_id}"),
                });
            }
            let commit = CommitSnapshotRequest {
                snapshotter: self.config.snapshotter.clone(),
                name: chain_id.to_string(),
                key: key.clone(),
                labels: HashMap::new(),
            };
            match snapshots.commit(self.request(commit, Some(lease))).await {
                Ok(_) => Ok(()),
                // Another pull committed the same layer first: theirs is as good.
                Err(status) if status.code() == Code::AlreadyExists => Ok(()),
                Err(status) => Err(self.failed(format!("snapshot commit of {chain_id}"), status)),
            }
        }
        .await;
        if result.is_err() || self.snapshot_exists(&key).await.unwrap_or(false) {
            let remove = RemoveSnapshotRequest {
                snapshotter: self.config.snapshotter.clone(),
                key,
            };
            // Best effort: the lease's removal lets GC take what is left.
            let _ = snapshots.remove(self.request(remove, Some(lease))).await;
        }
        result
    }

    /// Creates the image record, or points an existing one at the new manifest.
    async fn set_image_record(&self, name: &str, target: &Descriptor) -> Result<(), RuntimeError> {
        let mut images = ImagesClient::new(self.channel().await?);
        let image = Image {
            name: name.to_string(),
            labels: HashMap::new(),
            target: Some(containerd_descriptor(target)),
            created_at: None,
            updated_at: None,
        };
        let create = CreateImageRequest {
            image: Some(image.clone()),
            source_date_epoch: None,
        };
        match images.create(self.request(create, None)).await {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::AlreadyExists => {
                let update = UpdateImageRequest {
                    image: Some(image),
                    update_mask: None,
                    source_date_epoch: None,
                };
                images
                    .update(self.request(update, None))
                    .await
                    .map_err(|status| self.failed(format!("image update of {name}"), status))?;
                Ok(())
            }
            Err(status) => Err(self.failed(format!("image create of {name}"), status)),
        }
    }
}

fn parse_config(
    image: &str,
    bytes: &[u8],
    manifest: &ImageManifest,
) -> Result<ImageConfig, RuntimeError> {
    let config: ImageConfig = serde_json::from_slice(bytes).map_err(|e| RuntimeError::Image {
        image: image.to_string(),
        why: format!("its config is unreadable: {e}"),
    })?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(RuntimeError::Image {
            image: image.to_string(),
            why: format!(
                "its manifest has {} layers but its config {} diff IDs",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        });
    }
    Ok(config)
}

/// The labels containerd's garbage collector follows from a manifest to its blobs.
fn manifest_gc_labels(manifest: &ImageManifest) -> HashMap<String, String> {
    let mut labels = HashMap::from([(
        "containerd.io/gc.ref.content.config".to_string(),
        manifest.config.digest.clone(),
    )]);
    for (index, layer) in manifest.layers.iter().enumerate() {
        labels.insert(
            format!("containerd.io/gc.ref.content.l.{index}"),
            layer.digest.clone(),
        );
    }
    labels
}

fn containerd_descriptor(descriptor: &Descriptor) -> ContainerdDescriptor {
    ContainerdDescriptor {
        media_type: descriptor.media_type.clone(),
        digest: descriptor.digest.clone(),
        size: descriptor.size,
        annotations: descriptor.annotations.clone(),
    }
}

fn write_request(
    action: WriteAction,
    write_ref: &str,
    descriptor: &Descriptor,
    offset: i64,
    data: Vec<u8>,
) -> WriteContentRequest {
    WriteContentRequest {
        action: action as i32,
        r#ref: write_ref.to_string(),
        total: descriptor.size,
        expected: descriptor.digest.clone(),
        offset,
        data,
        labels: HashMap::new(),
    }
}

/// Where a content write's bytes come from.
enum ChunkSource<'a> {
    Memory(Option<Bytes>),
    Registry(&'a mut BlobReader),
}

impl ChunkSource<'_> {
    /// The next block of up to `WRITE_CHUNK` bytes; `None` at the end (for a registry blob,
    /// only once its digest has been checked).
    async fn next_block(&mut self) -> Result<Option<Vec<u8>>, RuntimeError> {
        match self {
            ChunkSource::Memory(data) => Ok(data.take().map(|d| d.to_vec())),
            ChunkSource::Registry(blob) => {
                let mut block = BytesMut::new();
                while block.len() < WRITE_CHUNK {
                    match blob.next_chunk().await? {
                        Some(chunk) => block.extend_from_slice(&chunk),
                        None if block.is_empty() => return Ok(None),
                        None => break,
                    }
                }
                Ok(Some(block.to_vec()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_rule() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let chain = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chain[0], a);
        let expected = format!("sha256:{}", hex::encode(Sha256::digest(format!("{a} {b}"))));
        assert_eq!(chain[1], expected);
    }

    #[test]
    fn manifests_reference_config_and_every_layer_for_gc() {
        let descriptor = |digest: &str| Descriptor {
            media_type: "m".into(),
            digest: digest.into(),
            size: 1,
            platform: None,
            annotations: HashMap::new(),
        };
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: None,
            config: descriptor("sha256:c"),
            layers: vec![descriptor("sha256:l0"), descriptor("sha256:l1")],
        };
        let labels = manifest_gc_labels(&manifest);
        assert_eq!(labels["containerd.io/gc.ref.content.config"], "sha256:c");
        assert_eq!(labels["containerd.io/gc.ref.content.l.1"], "sha256:l1");
        assert_eq!(labels.len(), 3);
    }
}
