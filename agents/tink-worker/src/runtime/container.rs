//! Runs one workflow action as a container: snapshot, container, task with its output
//! through FIFOs, a deadline, and removal afterwards.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use containerd_client::services::v1::container::Runtime as ContainerRuntime;
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{PrepareSnapshotRequest, RemoveSnapshotRequest};
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteTaskRequest, KillRequest, StartRequest, WaitRequest,
};
use containerd_client::types::Mount;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::unix::pipe;
use tokio::sync::watch;

use super::pull::image_name;
use super::spec::{BindMount, SPEC_TYPE_URL, SpecInput, runtime_spec};
use super::{Runtime, RuntimeError};

/// Lines of output kept for the failure message.
pub const TAIL_LINES: usize = 20;
/// How long output may still arrive after the task is gone (the shim flushing its copies).
const OUTPUT_GRACE: Duration = Duration::from_secs(5);
/// How long a killed task is given to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Which output stream of the action a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    /// The action's stdout.
    Stdout,
    /// The action's stderr.
    Stderr,
}

/// How an action's `command` combines with the image's ENTRYPOINT and CMD.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ArgsMode {
    /// tink-agent's rule, as `docker run IMAGE COMMAND…` does: ENTRYPOINT + (command, or CMD
    /// when there is none).
    #[default]
    EntrypointThenCommand,
    /// EMT's worker: the command is the whole argument list (ENTRYPOINT + CMD when empty).
    CommandIsWholeArgs,
}

/// One action to run.
#[derive(Debug, Clone, Default)]
pub struct ContainerRequest {
    /// The action's name: the container ID is made from it.
    pub name: String,
    /// The image as the template writes it (pulled beforehand).
    pub image: String,
    /// `<worker_dir>/<worker_dir::workflow_dir_name(workflow_id)>` is mounted as `/workflow`.
    pub workflow_id: String,
    /// Command and arguments, combined with the image's as [`ContainerRequest::args_mode`] says.
    pub command: Vec<String>,
    /// Environment variables, over the image's.
    pub environment: Vec<(String, String)>,
    /// Docker syntax: `/host/path:/container/path[:ro|:rw]`.
    pub volumes: Vec<String>,
    /// Run in the host's PID namespace (`pid: host`).
    pub host_pid: bool,
    /// A network namespace of its own instead of the host's network.
    pub network_namespace: bool,
    /// How `command` combines with ENTRYPOINT and CMD.
    pub args_mode: ArgsMode,
    /// Killed with SIGKILL when this runs out.
    pub timeout: Option<Duration>,
    /// Keep the container, task and snapshot afterwards (debugging).
    pub keep: bool,
}

/// How a container run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionOutcome {
    /// The task's exit status as containerd reports it (137 after the timeout's SIGKILL).
    pub exit_code: u32,
    /// True when the timeout ran out and the task was killed.
    pub timed_out: bool,
    /// The last `TAIL_LINES` lines of stdout and stderr, in arrival order.
    pub last_lines: Vec<String>,
}

impl Runtime {
    /// Runs `action` to completion (or its deadline), handing each output line to `on_line`.
    pub async fn run_action(
        &self,
        action: &ContainerRequest,
        on_line: &(dyn Fn(OutputStream, &str) + Sync),
    ) -> Result<ActionOutcome, RuntimeError> {
        let image = self.image(&image_name(&action.image)?).await?;
        let id = container_id(&action.name);
        let fifo_dir = self.config.state_dir.join(&id);
        let fifos = Fifos::create(&fifo_dir)?;
        let paths = fifos.paths();
        let Fifos {
            stdout,
            stderr,
            keep_open,
            ..
        } = fifos;
        let tail = Mutex::new(VecDeque::with_capacity(TAIL_LINES));
        let (finished, finished_signal) = watch::channel(false);
        let lifecycle = async {
            let result = self.run_task(&id, action, &image, paths, keep_open).await;
            let _ = finished.send(true);
            result
        };
        let stdout = forward_lines(
            stdout,
            OutputStream::Stdout,
            on_line,
            &tail,
            finished_signal.clone(),
        );
        let stderr = forward_lines(
            stderr,
            OutputStream::Stderr,
            on_line,
            &tail,
            finished_signal,
        );
        let (result, (), ()) = tokio::join!(lifecycle, stdout, stderr);
        if !action.keep {
            self.remove_container(&id).await;
        }
        // Best effort: the state dir is on a tmpfs that goes away with the node anyway.
        let _ = std::fs::remove_dir_all(&fifo_dir);
        let (exit_code, timed_out) = result?;
        let last_lines = tail.into_inner().unwrap_or_else(|p| p.into_inner()).into();
        Ok(ActionOutcome {
            exit_code,
            timed_out,
            last_lines,
        })
    }

    /// Snapshot, container, task; returns the exit status and whether the deadline hit.
    async fn run_task(
        &self,
        id: &str,
        action: &ContainerRequest,
        image: &super::PulledImage,
        (stdout, stderr): (String, String),
        keep_open: (File, File),
    ) -> Result<(u32, bool), RuntimeError> {
        let rootfs = self.create_container(id, action, image).await?;
        let mut tasks = TasksClient::new(self.channel().await?);
        let create = CreateTaskRequest {
            container_id: id.to_string(),
            rootfs,
            stdout,
            stderr,
            ..Default::default()
        };
        tasks
            .create(self.request(create, None))
            .await
            .map_err(|status| self.failed(format!("task create of {id}"), status))?;
        // The shim holds the FIFOs' write ends now: ours would only delay the end of output.
        drop(keep_open);
        tasks
            .start(self.request(
                StartRequest {
                    container_id: id.to_string(),
                    exec_id: String::new(),
                },
                None,
            ))
            .await
            .map_err(|status| self.failed(format!("task start of {id}"), status))?;
        let wait = WaitRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
        };
        let waited = match action.timeout {
            Some(limit) => {
                tokio::time::timeout(limit, tasks.wait(self.request(wait.clone(), None)))
                    .await
                    .ok()
            }
            None => Some(tasks.wait(self.request(wait.clone(), None)).await),
        };
        let (status, timed_out) = match waited {
            Some(result) => (result, false),
            None => {
                let kill = KillRequest {
                    container_id: id.to_string(),
                    exec_id: String::new(),
                    signal: libc::SIGKILL as u32,
                    all: true,
                };
                tasks
                    .kill(self.request(kill, None))
                    .await
                    .map_err(|status| self.failed(format!("task kill of {id}"), status))?;
                let reaped = tokio::time::timeout(KILL_WAIT, tasks.wait(self.request(wait, None)))
                    .await
                    .map_err(|_| RuntimeError::Containerd {
                        operation: format!("task wait of {id} after SIGKILL"),
                        code: containerd_client::tonic::Code::DeadlineExceeded,
                        status_message: format!("not reaped within {KILL_WAIT:?}"),
                    })?;
                (reaped, true)
            }
        };
        let exit_code = status
            .map_err(|status| self.failed(format!("task wait of {id}"), status))?
            .into_inner()
            .exit_status;
        if !action.keep {
            tasks
                .delete(self.request(
                    DeleteTaskRequest {
                        container_id: id.to_string(),
                    },
                    None,
                ))
                .await
                .map_err(|status| self.failed(format!("task delete of {id}"), status))?;
        }
        Ok((exit_code, timed_out))
    }

    /// The container's snapshot and record, made under a lease: until the record exists,
    /// nothing else keeps containerd's garbage collector off the fresh snapshot.
    async fn create_container(
        &self,
        id: &str,
        action: &ContainerRequest,
        image: &super::PulledImage,
    ) -> Result<Vec<Mount>, RuntimeError> {
        let spec = runtime_spec(&self.spec_input(id, action, image)?);
        let lease = self.create_lease().await?;
        let created = async {
            let channel = self.channel().await?;
            let prepare = PrepareSnapshotRequest {
                snapshotter: self.config.snapshotter.clone(),
                key: id.to_string(),
                parent: image.top_chain_id.clone(),
                labels: Default::default(),
            };
            let rootfs = SnapshotsClient::new(channel.clone())
                .prepare(self.request(prepare, Some(&lease)))
                .await
                .map_err(|status| self.failed(format!("snapshot prepare for {id}"), status))?
                .into_inner()
                .mounts;
            let container = Container {
                id: id.to_string(),
                image: image.name.clone(),
                runtime: Some(ContainerRuntime {
                    name: self.config.runtime.clone(),
                    options: None,
                }),
                spec: Some(prost_types::Any {
                    type_url: SPEC_TYPE_URL.to_string(),
                    value: spec.to_string().into_bytes(),
                }),
                snapshotter: self.config.snapshotter.clone(),
                snapshot_key: id.to_string(),
                ..Default::default()
            };
            let create = CreateContainerRequest {
                container: Some(container),
            };
            ContainersClient::new(channel)
                .create(self.request(create, Some(&lease)))
                .await
                .map_err(|status| self.failed(format!("container create of {id}"), status))?;
            Ok::<_, RuntimeError>(rootfs)
        }
        .await;
        let released = self.delete_lease(&lease).await;
        let rootfs = created?;
        released?;
        Ok(rootfs)
    }

    fn spec_input(
        &self,
        id: &str,
        action: &ContainerRequest,
        image: &super::PulledImage,
    ) -> Result<SpecInput, RuntimeError> {
        let config = &image.config.config;
        let entrypoint = config.entrypoint.clone().unwrap_or_default();
        let cmd = config.cmd.clone().unwrap_or_default();
        let args = match (action.args_mode, action.command.is_empty()) {
            (_, true) => [entrypoint, cmd].concat(),
            (ArgsMode::EntrypointThenCommand, false) => {
                [entrypoint, action.command.clone()].concat()
            }
            (ArgsMode::CommandIsWholeArgs, false) => action.command.clone(),
        };
        if args.is_empty() {
            return Err(RuntimeError::InvalidAction(format!(
                "action {:?}: neither the action nor the image {} gives a command to run",
                action.name, image.name
            )));
        }
        Ok(SpecInput {
            args,
            env: merged_env(
                config.env.as_deref().unwrap_or_default(),
                &action.environment,
            ),
            cwd: config
                .working_dir
                .clone()
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| "/".into()),
            binds: self.binds(action)?,
            host_network: !action.network_namespace,
            host_pid: action.host_pid,
            cgroups_path: format!("/{}/{id}", self.config.namespace),
        })
    }

    /// The host paths every action gets, then the action's own volumes.
    fn binds(&self, action: &ContainerRequest) -> Result<Vec<BindMount>, RuntimeError> {
        let bind = |source: &str, destination: &str, read_only| BindMount {
            source: PathBuf::from(source),
            destination: destination.to_string(),
            read_only,
        };
        let mut binds = vec![bind("/dev", "/dev", false), bind("/sys", "/sys", false)];
        for (path, read_only) in [
            ("/lib/modules", true),
            ("/lib/firmware", false),
            ("/etc/resolv.conf", true),
        ] {
            if Path::new(path).exists() {
                binds.push(bind(path, path, read_only));
            }
        }
        let worker_dir = &self.config.worker_dir;
        let workflow_dir = worker_dir.join(
            crate::worker_dir::workflow_dir_name(&action.workflow_id)
                .map_err(RuntimeError::InvalidAction)?,
        );
        std::fs::create_dir_all(&workflow_dir)
            .map_err(|e| RuntimeError::io(format!("creating {}", workflow_dir.display()), e))?;
        binds.push(BindMount {
            source: worker_dir.clone(),
            destination: "/worker".into(),
            read_only: false,
        });
        binds.push(BindMount {
            source: workflow_dir,
            destination: "/workflow".into(),
            read_only: false,
        });
        for volume in &action.volumes {
            let volume = parse_volume(volume)?;
            std::fs::create_dir_all(&volume.source)
                .or_else(|e| {
                    if volume.source.exists() {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(|e| {
                    RuntimeError::io(
                        format!("creating volume source {}", volume.source.display()),
                        e,
                    )
                })?;
            binds.push(volume);
        }
        Ok(binds)
    }

    /// Removes the task, container and snapshot of `id`, whichever exist. Best effort: a
    /// leftover is named by its ID and does not stop the next action.
    async fn remove_container(&self, id: &str) {
        let Ok(channel) = self.channel().await else {
            return;
        };
        let _ = TasksClient::new(channel.clone())
            .delete(self.request(
                DeleteTaskRequest {
                    container_id: id.to_string(),
                },
                None,
            ))
            .await;
        let _ = ContainersClient::new(channel.clone())
            .delete(self.request(DeleteContainerRequest { id: id.to_string() }, None))
            .await;
        let remove = RemoveSnapshotRequest {
            snapshotter: self.config.snapshotter.clone(),
            key: id.to_string(),
        };
        let _ = SnapshotsClient::new(channel)
            .remove(self.request(remove, None))
            .await;
    }
}

/// Parses a Docker `-v` bind: `/host:/container[:ro|:rw]`.
pub fn parse_volume(text: &str) -> Result<BindMount, RuntimeError> {
    let invalid = |why: &str| {
        RuntimeError::InvalidAction(format!(
            "volume {text:?}: {why}; write it as /host/path:/container/path[:ro]"
        ))
    };
    let parts: Vec<&str> = text.split(':').collect();
    let (source, destination, read_only) = match parts.as_slice() {
        [source, destination] => (*source, *destination, false),
        [source, destination, "ro"] => (*source, *destination, true),
        [source, destination, "rw"] => (*source, *destination, false),
        [_, _, mode] => return Err(invalid(&format!("unknown mode {mode:?}"))),
        _ => return Err(invalid("it is not source:destination")),
    };
    if !source.starts_with('/') {
        return Err(invalid(
            "named volumes are not supported, the source must be an absolute path",
        ));
    }
    if !destination.starts_with('/') {
        return Err(invalid("the destination must be an absolute path"));
    }
    Ok(BindMount {
        source: PathBuf::from(source),
        destination: destination.to_string(),
        read_only,
    })
}

/// The image's environment with the action's on top (same name: the action wins).
fn merged_env(image_env: &[String], action_env: &[(String, String)]) -> Vec<String> {
    let mut env: Vec<String> = image_env
        .iter()
        .filter(|entry| {
            let name = entry.split('=').next().unwrap_or_default();
            !action_env.iter().any(|(key, _)| key == name)
        })
        .cloned()
        .collect();
    if !env.iter().any(|e| e.starts_with("PATH=")) && !action_env.iter().any(|(k, _)| k == "PATH") {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string());
    }
    env.extend(
        action_env
            .iter()
            .map(|(key, value)| format!("{key}={value}")),
    );
    env
}

/// A containerd ID (`[A-Za-z0-9]+([._-][A-Za-z0-9]+)*`) made from the action name, unique
/// by a timestamp.
fn container_id(action_name: &str) -> String {
    let mut id = String::new();
    for c in action_name.chars().take(48) {
        if c.is_ascii_alphanumeric() {
            id.push(c);
        } else if !id.is_empty() && !id.ends_with('-') {
            id.push('-');
        }
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let name = id.trim_end_matches('-');
    if name.is_empty() {
        format!("action-{nanos}")
    } else {
        format!("{name}-{nanos}")
    }
}

/// The stdout and stderr FIFOs of one task, opened for reading before the task exists.
struct Fifos {
    stdout: pipe::Receiver,
    stderr: pipe::Receiver,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    /// Our own write ends, held until the shim has opened its: a FIFO with no writer reads
    /// as ended, which would stop the forwarding before the task has started.
    keep_open: (File, File),
}

impl Fifos {
    fn create(dir: &Path) -> Result<Self, RuntimeError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            RuntimeError::io(format!("creating the FIFO directory {}", dir.display()), e)
        })?;
        let open = |name: &str| -> Result<(pipe::Receiver, File, PathBuf), RuntimeError> {
            let path = dir.join(name);
            nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(
                |e| RuntimeError::io(format!("creating the FIFO {}", path.display()), e.into()),
            )?;
            let receiver = pipe::OpenOptions::new()
                .open_receiver(&path)
                .map_err(|e| RuntimeError::io(format!("opening the FIFO {}", path.display()), e))?;
            let writer = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&path)
                .map_err(|e| RuntimeError::io(format!("opening the FIFO {}", path.display()), e))?;
            Ok((receiver, writer, path))
        };
        let (stdout, stdout_writer, stdout_path) = open("stdout")?;
        let (stderr, stderr_writer, stderr_path) = open("stderr")?;
        Ok(Self {
            stdout,
            stderr,
            stdout_path,
            stderr_path,
            keep_open: (stdout_writer, stderr_writer),
        })
    }

    fn paths(&self) -> (String, String) {
        (
            self.stdout_path.to_string_lossy().into_owned(),
            self.stderr_path.to_string_lossy().into_owned(),
        )
    }
}

/// Hands each line of `receiver` to `on_line` and the tail, until the shim closes the FIFO
/// (or, once the task is over, the grace period ends).
async fn forward_lines(
    receiver: pipe::Receiver,
    stream: OutputStream,
    on_line: &(dyn Fn(OutputStream, &str) + Sync),
    tail: &Mutex<VecDeque<String>>,
    mut finished: watch::Receiver<bool>,
) {
    let mut reader = BufReader::new(receiver);
    let grace = async {
        let _ = finished.wait_for(|done| *done).await;
        tokio::time::sleep(OUTPUT_GRACE).await;
    };
    tokio::pin!(grace);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        tokio::select! {
            read = reader.read_until(b'\n', &mut buffer) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buffer);
                    let line = line.trim_end_matches(['\n', '\r']);
                    on_line(stream, line);
                    let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
                    if tail.len() == TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line.to_string());
                }
            },
            () = &mut grace => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: T) {}

    #[test]
    fn actions_and_pulls_can_be_spawned_on_the_worker_runtime() {
        let runtime = Runtime::new(super::super::RuntimeConfig::default());
        let action = ContainerRequest::default();
        let on_line = |_: OutputStream, _: &str| {};
        assert_send(runtime.run_action(&action, &on_line));
        let registry = bootkit_oci::RegistryClient::new(Default::default()).unwrap();
        assert_send(runtime.pull(&registry, "alpine"));
    }

    #[test]
    fn volumes_in_docker_syntax() {
        let volume = parse_volume("/var/lib/data:/data:ro").unwrap();
        assert_eq!(volume.source, PathBuf::from("/var/lib/data"));
        assert_eq!(volume.destination, "/data");
        assert!(volume.read_only);
        assert!(!parse_volume("/a:/b").unwrap().read_only);
        for bad in ["named:/data", "/a:relative", "/a", "/a:/b:zz"] {
            let error = parse_volume(bad).unwrap_err().to_string();
            assert!(error.contains(bad), "{error}");
        }
    }

    #[test]
    fn action_environment_overrides_the_image_and_path_is_kept() {
        let env = merged_env(
            &["PATH=/bin".into(), "MODE=image".into()],
            &[
                ("MODE".into(), "action".into()),
                ("DEST".into(), "/dev/sda".into()),
            ],
        );
        assert_eq!(env, vec!["PATH=/bin", "MODE=action", "DEST=/dev/sda"]);
    }

    #[test]
    fn container_ids_are_valid_for_containerd() {
        let id = container_id("Stream image: ubuntu/22.04!!");
        let (name, stamp) = id.rsplit_once('-').unwrap();
        assert_eq!(name, "Stream-image-ubuntu-22-04");
        assert!(stamp.chars().all(|c| c.is_ascii_digit()));
        assert!(container_id("…").starts_with("action-"));
    }
}
