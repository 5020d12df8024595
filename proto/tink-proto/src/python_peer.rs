//! The independent peers of the protocol tests: Python programs in `peers/` speaking either
//! protocol through grpcio, with code generated from this crate's `.proto` files by protoc and
//! grpc_python_plugin. A test starts one, reads the JSON lines it prints, and so checks the
//! Rust side against an implementation it shares no code with.
//!
//! Needs Debian's `python3-grpcio`, `python3-protobuf` and `protobuf-compiler-grpc`
//! (scripts/setup.sh installs them).

use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

/// Debian's Python, which has grpcio; `python3` on PATH may be another one.
const PYTHON: &str = "/usr/bin/python3";
/// The gRPC code generator for Python (package protobuf-compiler-grpc).
const GRPC_PLUGIN: &str = "/usr/bin/grpc_python_plugin";

/// Which protocol's code the peer loads (each in its own process: both define
/// `proto.WorkflowService`).
#[derive(Debug, Clone, Copy)]
pub enum Protocol {
    /// `current.proto`: tinkerbell/tinkerbell v0.17 and later.
    Current,
    /// `legacy.proto`: tink v0.9 to v0.12.
    Legacy,
}

impl Protocol {
    fn proto_file(self) -> &'static str {
        match self {
            Protocol::Current => "current.proto",
            Protocol::Legacy => "legacy.proto",
        }
    }
}

/// A running Python peer; killed when dropped.
pub struct PythonPeer {
    child: Child,
    /// Held open: a server peer runs until its stdin closes (or it is killed on drop).
    _stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    _generated: tempfile::TempDir,
}

impl PythonPeer {
    /// Generates `protocol`'s Python code and starts `peers/<script>` with the generated
    /// directory as its first argument and `args` after it.
    pub fn start(script: &str, protocol: Protocol, args: &[&str]) -> io::Result<PythonPeer> {
        PythonPeer::start_wrapped(&[], script, protocol, args)
    }

    /// Like [`PythonPeer::start`], with the Python process run by `wrapper` (for example
    /// `ip netns exec NAME`, so a QEMU guest in that namespace reaches it).
    pub fn start_wrapped(
        wrapper: &[String],
        script: &str,
        protocol: Protocol,
        args: &[&str],
    ) -> io::Result<PythonPeer> {
        let generated = tempfile::tempdir()?;
        generate(protocol, generated.path())?;
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(PYTHON);
                command
            }
            None => Command::new(PYTHON),
        };
        let mut child = command
            .arg(crate_dir().join("peers").join(script))
            .arg(generated.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start {PYTHON}: {e}")))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(PythonPeer {
            _stdin: child.stdin.take(),
            child,
            lines,
            _generated: generated,
        })
    }

    /// The next line the peer printed, waiting at most `timeout`; `None` if none came (or
    /// the peer ended).
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }
}

impl Drop for PythonPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `protoc --python_out --grpc_out` of `protocol`'s `.proto` file into `out`.
fn generate(protocol: Protocol, out: &Path) -> io::Result<()> {
    let output = Command::new("protoc")
        .arg("-I")
        .arg(crate_dir().join("proto"))
        .arg(format!("--python_out={}", out.display()))
        .arg(format!("--grpc_out={}", out.display()))
        .arg(format!("--plugin=protoc-gen-grpc={GRPC_PLUGIN}"))
        .arg(protocol.proto_file())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run protoc: {e}")))?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "protoc could not generate the Python peer's code (scripts/setup.sh installs \
             protobuf-compiler-grpc): {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(())
}
