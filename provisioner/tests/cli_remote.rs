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
        common::cli::init(&pki);
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

    /// The CLI with `--server` and `--ca` of this site and its admin token, HOME in `home`.
    fn remote(&self, home: &Path, args: &[&str]) -> Output {
        let ca = self.file("ca.pem");
        let mut all = vec!["--server", &self.url, "--ca", &ca];
        all.extend_from_slice(args);
        cli(home, Some(&self.token()), &all)
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
    let ca = site.file("ca.pem");
    let remote = |args: &[&str]| site.remote(home, args);

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
}

/// A Hardware and a Template as Tinkerbell objects, for `apply -f` over the API.
const OBJECTS: &str = r#"apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata:
  name: rack1-n07
  namespace: default
spec:
  interfaces:
  - dhcp:
      mac: "52:54:00:aa:00:07"
      hostname: rack1-n07
---
apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata:
  name: rack1-n08
  namespace: default
spec:
  interfaces:
  - dhcp:
      mac: "not-a-mac"
"#;

#[test]
fn templates_hardware_workflows_and_objects_through_the_server() {
    let site = Site::start();
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let remote = |args: &[&str]| site.remote(home, args);
    let files = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = files.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };

    // The profile's template is there already; a second one, named on the command line.
    let template = file("template.yaml", common::TEMPLATE);
    let created = succeeded(&remote(&[
        "--json",
        "template",
        "create",
        "--file",
        &template,
        "--name",
        "remote-install",
    ]));
    let template_id = serde_json::from_str::<serde_json::Value>(&created).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let listed = succeeded(&remote(&["template", "list"]));
    assert!(listed.contains("remote-install"), "{listed}");
    let shown = succeeded(&remote(&["template", "get", "remote-install"]));
    assert!(shown.contains("name: remote-install") && shown.contains("three-actions"));

    let hardware = file(
        "hardware.json",
        r#"{"id": "rack1-n06", "macs": ["52-54-00-AA-00-06"], "ips": ["10.0.0.6"]}"#,
    );
    succeeded(&remote(&["hardware", "create", "--file", &hardware]));
    let shown = succeeded(&remote(&["hardware", "get", "52:54:00:aa:00:06"]));
    assert!(
        shown.contains("id: rack1-n06") && shown.contains("10.0.0.6"),
        "{shown}"
    );
    let missing = failed(&remote(&["hardware", "get", "rack1-n60"]));
    assert!(
        missing.contains("404") && missing.contains("rack1-n60"),
        "{missing}"
    );

    let workflow = succeeded(&remote(&[
        "--json",
        "workflow",
        "create",
        "--template",
        &template_id,
        "--hardware",
        r#"{"device_1": "52:54:00:aa:00:06"}"#,
    ]));
    let workflow_id = serde_json::from_str::<serde_json::Value>(&workflow).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let shown = succeeded(&remote(&["workflow", "get", &workflow_id]));
    assert!(
        shown.contains("disk/wipe") && shown.contains("finish/reboot"),
        "{shown}"
    );
    assert!(succeeded(&remote(&["workflow", "list"])).contains(&workflow_id));

    // Applied by the server, all checked first: a wrong object stops the whole file, and
    // the message points at it.
    let objects = file("objects.yaml", OBJECTS);
    let refused = failed(&remote(&["apply", "-f", &objects]));
    assert!(
        refused.contains("nothing applied")
            && refused.contains("document 2")
            && refused.contains("not-a-mac"),
        "{refused}"
    );
    let first = file("first.yaml", OBJECTS.split("---").next().unwrap());
    let applied = succeeded(&remote(&["apply", "-f", &first]));
    assert_eq!(
        applied.trim(),
        "hardware.tinkerbell.org/default/rack1-n07 created"
    );
    let again = succeeded(&remote(&["apply", "-f", &first]));
    assert_eq!(
        again.trim(),
        "hardware.tinkerbell.org/default/rack1-n07 unchanged"
    );
    let yaml = succeeded(&remote(&["get", "hardware", "rack1-n07", "-o", "yaml"]));
    assert!(
        yaml.starts_with("apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\n")
            && yaml.contains("52:54:00:aa:00:07"),
        "{yaml}"
    );
    let unknown = failed(&remote(&["get", "hw", "rack1-n70"]));
    assert!(
        unknown.contains("hardware.tinkerbell.org \"default/rack1-n70\" not found"),
        "{unknown}"
    );

    // What the CLI did over the API is in the server's database.
    let store = site.db.open();
    assert_eq!(store.get_hardware("rack1-n06").unwrap().ips, ["10.0.0.6"]);
    assert_eq!(
        store.get_hardware("default/rack1-n07").unwrap().macs,
        ["52:54:00:aa:00:07"]
    );
    assert_eq!(
        store.get_workflow(&workflow_id).unwrap().template_id,
        template_id
    );

    succeeded(&remote(&["workflow", "delete", &workflow_id]));
    succeeded(&remote(&["hardware", "delete", "rack1-n06"]));
    succeeded(&remote(&["template", "delete", "remote-install"]));
    assert!(
        store
            .list_workflows()
            .unwrap()
            .iter()
            .all(|w| w.id != workflow_id)
    );
    assert!(store.get_hardware("rack1-n06").is_err());
    assert!(store.get_template("remote-install").is_err());
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

#[test]
fn a_relative_profile_path_sent_to_a_server_is_resolved_in_the_servers_artifacts_directory() {
    let site = Site::start();
    let home = tempfile::tempdir().unwrap();
    // Run from a directory that holds no such files: this host's directory means nothing to
    // the server, so the path goes as given and the server finds it under its artifacts
    // directory (where the site's profile files are).
    let elsewhere = tempfile::tempdir().unwrap();
    let created = Command::new(PROVISIONER)
        .current_dir(elsewhere.path())
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .env("BOOTKIT_ADMIN_TOKEN", site.token())
        .args(["--server", &site.url, "--ca", &site.file("ca.pem")])
        .args([
            "profile", "create", "--name", "remote", "--kernel", "vmlinuz",
        ])
        .args([
            "--initramfs",
            "initramfs.img",
            "--template",
            "three-actions",
        ])
        .args(["--os-image", "http://images.invalid/os.img"])
        .output()
        .unwrap();
    succeeded(&created);
    let stored = site.db.open().get_profile("remote").unwrap();
    assert_eq!(stored.kernel, "vmlinuz");
    assert_eq!(stored.initramfs, "initramfs.img");
}
