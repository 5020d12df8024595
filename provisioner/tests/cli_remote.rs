//! The CLI against a real `provisioner serve` on loopback, over its admin REST API with the
//! files `provisioner init` wrote: `--server` with a token or a client certificate, and a
//! context saved by `provisioner login`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::TestDb;
use common::serve_child::{LogLines, ServeChild};
use provisioner::store::RegistrationSpec;

const PROVISIONER: &str = env!("CARGO_BIN_EXE_provisioner");

/// A served database with one registered node (serial HUX0010), the init directory, and the
/// admin API's URL as `serve` printed it.
struct Site {
    db: TestDb,
    pki: PathBuf,
    url: String,
    _serve: ServeChild,
}

impl Site {
    fn start() -> Self {
        let db = TestDb::new();
        let store = db.open();
        common::fleet::create_profile(&store, db.dir.path());
        store
            .register(&RegistrationSpec {
                serial: Some("HUX0010".into()),
                mac: Some("52:54:00:aa:00:10".into()),
                profile: common::fleet::PROFILE.into(),
                ..Default::default()
            })
            .unwrap();
        drop(store);
        let pki = db.dir.path().join("pki");
        let init = Command::new(PROVISIONER)
            .args(["init", "--dir"])
            .arg(&pki)
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "{}",
            String::from_utf8_lossy(&init.stderr)
        );
        let file = |name: &str| pki.join(name).display().to_string();
        let mut child = Command::new(PROVISIONER)
            .arg("--db")
            .arg(db.path())
            .args(["serve", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .arg("--allow-unauthenticated-workers")
            .args(["--admin-token-file", &file("admin-token")])
            .args(["--admin-tls-cert", &file("server.pem")])
            .args(["--admin-tls-key", &file("server-key.pem")])
            .args(["--admin-client-ca", &file("ca.pem")])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut log = LogLines::of(&mut child);
        let serve = ServeChild(child);
        let line = log.until("status page and admin API at ");
        let url = line
            .split_once("status page and admin API at ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap()
            .to_string();
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
        Self {
            db,
            pki,
            url,
            _serve: serve,
        }
    }

    fn file(&self, name: &str) -> String {
        self.pki.join(name).display().to_string()
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.pki.join("admin-token"))
            .unwrap()
            .trim()
            .to_string()
    }
}

/// The CLI with HOME (and so its config file) in `home`, no token in the environment unless
/// given.
fn cli(home: &Path, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(PROVISIONER);
    command
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("BOOTKIT_ADMIN_TOKEN")
        .args(args);
    if let Some(token) = token {
        command.env("BOOTKIT_ADMIN_TOKEN", token);
    }
    command.output().unwrap()
}

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn failed(output: &Output) -> String {
    assert!(!output.status.success(), "should have failed");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn list_show_revoke_through_server_flags() {
    let site = Site::start();
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let token = site.token();
    let ca = site.file("ca.pem");
    let remote = |args: &[&str]| {
        let mut all = vec!["--server", &site.url, "--ca", &ca];
        all.extend_from_slice(args);
        cli(home, Some(&token), &all)
    };

    let listed = succeeded(&remote(&["node", "list"]));
    let header = listed.lines().next().unwrap();
    assert!(
        header.starts_with("ID  ") && header.contains("SERIAL"),
        "{listed}"
    );
    assert!(listed.contains("HUX0010"), "{listed}");
    // The same nodes as the database holds, read by the library.
    let json: serde_json::Value =
        serde_json::from_str(&succeeded(&remote(&["node", "list", "-o", "json"]))).unwrap();
    let stored = site.db.open().list_nodes().unwrap();
    assert_eq!(json[0]["id"], stored[0].id.as_str());

    let shown = succeeded(&remote(&["node", "show", "HUX0010"]));
    assert!(
        shown.contains("serial HUX0010") && shown.contains("timeline"),
        "{shown}"
    );
    let hint = failed(&remote(&["node", "show", "HUX001O"]));
    assert!(
        hint.contains("no node HUX001O; did you mean HUX0010?"),
        "{hint}"
    );

    let revoked = succeeded(&remote(&["node", "revoke", "HUX0010"]));
    assert!(
        revoked.contains("0 active credential(s) revoked"),
        "{revoked}"
    );
    // The server recorded the change in its audit log, which the CLI reads back remotely.
    let audit = succeeded(&remote(&["audit"]));
    assert!(audit.contains("revoke"), "{audit}");

    // A client certificate instead of the token.
    let by_certificate = cli(
        home,
        None,
        &[
            "node",
            "list",
            "--server",
            &site.url,
            "--ca",
            &ca,
            "--client-cert",
            &site.file("admin.pem"),
            "--client-key",
            &site.file("admin-key.pem"),
        ],
    );
    assert!(succeeded(&by_certificate).contains("HUX0010"));

    // No credential: the server's refusal, and how to give one.
    let refused = failed(&cli(
        home,
        None,
        &["node", "list", "--server", &site.url, "--ca", &ca],
    ));
    assert!(
        refused.contains("401") && refused.contains("--token or BOOTKIT_ADMIN_TOKEN"),
        "{refused}"
    );
    // Commands without an API client yet say so instead of guessing.
    let local_only = failed(&remote(&["template", "list"]));
    assert!(
        local_only.contains("works on a database on this host only"),
        "{local_only}"
    );
}

#[test]
fn a_saved_context_is_used_by_every_command() {
    let site = Site::start();
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let ca = site.file("ca.pem");
    let token = site.token();

    // A wrong token is refused at login, and nothing is saved.
    let config = home.join(".config/bootkit/provisioner.toml");
    let bad = failed(&cli(
        home,
        None,
        &[
            "login", &site.url, "--ca", &ca, "--token", "wrong", "--name", "lab",
        ],
    ));
    assert!(
        bad.contains("logging in to") && bad.contains("nothing was saved"),
        "{bad}"
    );
    assert!(!config.exists());

    let login = succeeded(&cli(
        home,
        None,
        &[
            "login", &site.url, "--ca", &ca, "--token", &token, "--name", "lab",
        ],
    ));
    assert!(login.contains("context lab saved"), "{login}");
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the config holds a token");

    // No --db, no --server: the current context.
    assert!(succeeded(&cli(home, None, &["node", "list"])).contains("HUX0010"));
    let shown = succeeded(&cli(home, None, &["node", "show", "HUX0010"]));
    assert!(shown.contains("serial HUX0010"), "{shown}");
    let revoked = succeeded(&cli(home, None, &["node", "revoke", "HUX0010"]));
    assert!(revoked.contains("revoked"), "{revoked}");
    assert!(succeeded(&cli(home, None, &["profile", "list"])).contains("edge"));
    assert!(succeeded(&cli(home, None, &["node", "registrations"])).contains("HUX0010"));

    let contexts = succeeded(&cli(home, None, &["context", "list"]));
    assert!(
        contexts
            .lines()
            .any(|line| line.starts_with("* lab") && line.contains(site.url.trim_end_matches('/'))),
        "{contexts}"
    );
    let unknown = failed(&cli(home, None, &["context", "use", "lba"]));
    assert!(
        unknown.contains("no context lba") && unknown.contains("did you mean lab?"),
        "{unknown}"
    );
    succeeded(&cli(home, None, &["context", "delete", "lab"]));
    let nothing = failed(&cli(home, None, &["node", "list"]));
    assert!(nothing.contains("no --db and no --server"), "{nothing}");
}
