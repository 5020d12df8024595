//! containerd's `hosts.toml` as containerd documents and tests it: the examples of
//! containerd's `docs/hosts.md` and the file and expected hosts of its
//! `core/remotes/docker/config/hosts_test.go` (`TestParseHostFile`), both at containerd commit
//! 301026e58c619e63d09c0ec411012e54c0124b03, are the reference; then the directory lookup
//! (`host_port_`, `host:port`, `_default`) and our own keys as the same host list.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bootkit_oci::hosts::{
    Capabilities, ClientCertificate, HostScheme, RegistryHost, load_namespace_dir, parse_hosts_toml,
};
use bootkit_oci::{RegistryClient, RegistryConfig, RegistryError};

fn host(scheme: HostScheme, name: &str, path: &str, capabilities: Capabilities) -> RegistryHost {
    RegistryHost {
        scheme,
        host: name.to_string(),
        path: path.to_string(),
        capabilities,
        ca: Vec::new(),
        client: Vec::new(),
        skip_verify: None,
        headers: BTreeMap::new(),
        dial_timeout: None,
    }
}

const PULL: Capabilities = Capabilities {
    pull: true,
    resolve: false,
    push: false,
};
const PULL_RESOLVE: Capabilities = Capabilities {
    pull: true,
    resolve: true,
    push: false,
};
const ALL: Capabilities = Capabilities::ALL;
use HostScheme::{Http, Https};

fn client(certificate: &str, key: Option<&str>) -> ClientCertificate {
    ClientCertificate {
        certificate: PathBuf::from(certificate),
        key: key.map(PathBuf::from),
    }
}

fn headers(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
        .collect()
}

/// containerd's TestParseHostFile, its file and its expected list, entry by entry (its
/// `referrers` capability is one this client never uses, so its "all" is ours).
#[test]
fn containerd_parse_host_file_test() {
    const TESTTOML: &str = r#"
server = "https://test-default.registry"
ca = "/etc/path/default"
[header]
  x-custom-1 = "custom header"

[host."https://mirror.registry"]
  capabilities = ["pull"]
  ca = "/etc/certs/mirror.pem"
  skip_verify = false
  [host."https://mirror.registry".header]
    x-custom-2 = ["value1", "value2"]

[host."https://mirror-bak.registry/us"]
  capabilities = ["pull"]
  skip_verify = true

[host."http://mirror.registry"]
  capabilities = ["pull"]

[host."https://test-1.registry"]
  capabilities = ["pull", "resolve", "push", "referrers"]
  ca = ["/etc/certs/test-1-ca.pem", "/etc/certs/special.pem"]
  client = [["/etc/certs/client.cert", "/etc/certs/client.key"],["/etc/certs/client.pem", ""]]

[host."https://test-2.registry"]
  client = "/etc/certs/client.pem"

[host."https://test-3.registry"]
  client = ["/etc/certs/client-1.pem", "/etc/certs/client-2.pem"]

[host."https://no-referrers.registry"]
  capabilities = ["pull", "resolve", "push"]
  client = ["/etc/certs/client-1.pem", "/etc/certs/client-2.pem"]

[host."https://noncompliantmirror.registry/v2/namespaceprefix"]
  capabilities = ["pull"]
  override_path = true

[host."https://noprefixnoncompliant.registry"]
  override_path = true

[host."https://onlyheader.registry".header]
  x-custom-1 = "justaheader"

[host."https://dial-timeout.registry"]
  dial_timeout = "3s"
"#;
    let mut expected = Vec::new();
    let mut mirror = host(Https, "mirror.registry", "/v2", PULL);
    mirror.ca = vec!["/etc/certs/mirror.pem".into()];
    mirror.skip_verify = Some(false);
    mirror.headers = headers(&[("x-custom-2", &["value1", "value2"])]);
    expected.push(mirror);
    let mut bak = host(Https, "mirror-bak.registry", "/us/v2", PULL);
    bak.skip_verify = Some(true);
    expected.push(bak);
    expected.push(host(Http, "mirror.registry", "/v2", PULL));
    let mut test1 = host(Https, "test-1.registry", "/v2", ALL);
    test1.ca = vec![
        "/etc/certs/test-1-ca.pem".into(),
        "/etc/certs/special.pem".into(),
    ];
    test1.client = vec![
        client("/etc/certs/client.cert", Some("/etc/certs/client.key")),
        client("/etc/certs/client.pem", None),
    ];
    expected.push(test1);
    let mut test2 = host(Https, "test-2.registry", "/v2", ALL);
    test2.client = vec![client("/etc/certs/client.pem", None)];
    expected.push(test2);
    let mut test3 = host(Https, "test-3.registry", "/v2", ALL);
    test3.client = vec![
        client("/etc/certs/client-1.pem", None),
        client("/etc/certs/client-2.pem", None),
    ];
    expected.push(test3);
    let mut no_referrers = host(Https, "no-referrers.registry", "/v2", ALL);
    no_referrers.client = test3_clients();
    expected.push(no_referrers);
    expected.push(host(
        Https,
        "noncompliantmirror.registry",
        "/v2/namespaceprefix",
        PULL,
    ));
    expected.push(host(Https, "noprefixnoncompliant.registry", "", ALL));
    let mut only_header = host(Https, "onlyheader.registry", "/v2", ALL);
    only_header.headers = headers(&[("x-custom-1", &["justaheader"])]);
    expected.push(only_header);
    let mut dial = host(Https, "dial-timeout.registry", "/v2", ALL);
    dial.dial_timeout = Some(Duration::from_secs(3));
    expected.push(dial);
    let mut default = host(Https, "test-default.registry", "/v2", ALL);
    default.ca = vec!["/etc/path/default".into()];
    default.headers = headers(&[("x-custom-1", &["custom header"])]);
    expected.push(default);

    let hosts = parse_hosts_toml(TESTTOML, Path::new(""), Path::new("hosts.toml")).unwrap();
    assert_eq!(hosts.len(), expected.len());
    for (index, (got, want)) in hosts.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "host {index}");
    }
}

fn test3_clients() -> Vec<ClientCertificate> {
    vec![
        client("/etc/certs/client-1.pem", None),
        client("/etc/certs/client-2.pem", None),
    ]
}

/// docs/hosts.md, "Setup a Local Mirror for Docker": the mirrors in the file's order, a
/// relative `ca` taken from the file's directory, then the server.
#[test]
fn docs_local_mirror_for_docker() {
    let text = r#"server = "https://registry-1.docker.io"    # Exclude this to not use upstream

[host."https://public-mirror.example.com"]
  capabilities = ["pull"]                  # Requires less trust, won't resolve tag to digest from this host
[host."https://docker-mirror.internal"]
  capabilities = ["pull", "resolve"]
  ca = "docker-mirror.crt"                 # Or absolute path /etc/containerd/certs.d/docker.io/docker-mirror.crt
"#;
    let dir = Path::new("/etc/containerd/certs.d/docker.io");
    let hosts = parse_hosts_toml(text, dir, &dir.join("hosts.toml")).unwrap();
    let mut internal = host(Https, "docker-mirror.internal", "/v2", PULL_RESOLVE);
    internal.ca = vec![dir.join("docker-mirror.crt")];
    assert_eq!(
        hosts,
        [
            host(Https, "public-mirror.example.com", "/v2", PULL),
            internal,
            host(Https, "registry-1.docker.io", "/v2", ALL),
        ]
    );
}

/// docs/hosts.md, "Simple (default) Host Config for Docker" and "Bypass TLS Verification".
#[test]
fn docs_default_docker_and_bypass_tls() {
    let simple = r#"server = "https://docker.io"

[host."https://registry-1.docker.io"]
  capabilities = ["pull", "resolve"]
"#;
    let hosts = parse_hosts_toml(simple, Path::new("/d"), Path::new("/d/hosts.toml")).unwrap();
    assert_eq!(
        hosts,
        [
            host(Https, "registry-1.docker.io", "/v2", PULL_RESOLVE),
            host(Https, "docker.io", "/v2", ALL),
        ]
    );

    let bypass = r#"server = "https://registry-1.docker.io"

[host."http://192.168.31.250:5000"]
  capabilities = ["pull", "resolve", "push"]
  skip_verify = true
"#;
    let hosts = parse_hosts_toml(bypass, Path::new("/d"), Path::new("/d/hosts.toml")).unwrap();
    let mut insecure = host(Http, "192.168.31.250:5000", "/v2", ALL);
    insecure.skip_verify = Some(true);
    assert!(insecure.has_tls_settings());
    assert_eq!(hosts[0], insecure);
}

fn certs_d(files: &[(&str, &str)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = root.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    root
}

fn client_for(root: &Path, mirror: Option<&str>, insecure: &[&str]) -> RegistryClient {
    RegistryClient::new(RegistryConfig {
        hosts_dir: Some(root.to_path_buf()),
        mirror: mirror.map(str::to_string),
        insecure_registries: insecure.iter().map(|s| s.to_string()).collect(),
        ..RegistryConfig::default()
    })
    .unwrap()
}

/// docs/hosts.md, "Setup Default Mirror for All Registries": `_default` is used when no
/// namespace directory matches, and without `server` the registry itself comes after the
/// mirror; with the mirror as `server` only the mirror is used.
#[test]
fn default_namespace_and_the_registry_itself_after_the_mirrors() {
    let root = certs_d(&[(
        "_default/hosts.toml",
        "[host.\"https://registry.example.com\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
    )]);
    let hosts = client_for(root.path(), None, &[])
        .hosts_for("quay.io")
        .unwrap();
    assert_eq!(
        hosts,
        [
            host(Https, "registry.example.com", "/v2", PULL_RESOLVE),
            host(Https, "quay.io", "/v2", ALL),
        ]
    );
    let hosts = client_for(root.path(), None, &[])
        .hosts_for("docker.io")
        .unwrap();
    assert_eq!(
        hosts[1].host, "registry-1.docker.io",
        "Docker Hub's API host"
    );

    let only = certs_d(&[(
        "_default/hosts.toml",
        "server = \"https://registry.example.com\"\n",
    )]);
    let hosts = client_for(only.path(), None, &[])
        .hosts_for("quay.io")
        .unwrap();
    assert_eq!(hosts, [host(Https, "registry.example.com", "/v2", ALL)]);
}

/// docs/hosts.md, "Port Handling in Registry Host": `myregistry.io_5000_` before
/// `myregistry.io:5000` before `_default`.
#[test]
fn a_registry_with_a_port_finds_its_directory_in_containerds_order() {
    let root = certs_d(&[
        (
            "myregistry.io_5000_/hosts.toml",
            "server = \"http://a:1\"\n",
        ),
        ("myregistry.io:5000/hosts.toml", "server = \"http://b:1\"\n"),
        ("_default/hosts.toml", "server = \"http://c:1\"\n"),
    ]);
    let hosts_of = |registry: &str| {
        client_for(root.path(), None, &[])
            .hosts_for(registry)
            .unwrap()
            .into_iter()
            .map(|h| h.host)
            .collect::<Vec<_>>()
    };
    assert_eq!(hosts_of("myregistry.io:5000"), ["a:1"]);
    std::fs::remove_dir_all(root.path().join("myregistry.io_5000_")).unwrap();
    assert_eq!(hosts_of("myregistry.io:5000"), ["b:1"]);
    assert_eq!(hosts_of("other.io"), ["c:1"]);
}

/// "If no hosts.toml configuration exists in the host directory, it will fallback to check
/// certificate files based on Docker's certificate file pattern" (docs/hosts.md).
#[test]
fn a_directory_without_hosts_toml_gives_docker_style_certificates() {
    let root = certs_d(&[
        ("registry.local/ca.crt", "x"),
        ("registry.local/client.cert", "x"),
        ("registry.local/client.key", "x"),
        ("registry.local/other.cert", "x"),
    ]);
    let dir = root.path().join("registry.local");
    let hosts = load_namespace_dir(&dir).unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].host, "", "the registry itself");
    assert_eq!(hosts[0].ca, [dir.join("ca.crt")]);
    assert_eq!(
        hosts[0].client,
        [
            ClientCertificate {
                certificate: dir.join("client.cert"),
                key: Some(dir.join("client.key")),
            },
            ClientCertificate {
                certificate: dir.join("other.cert"),
                key: None,
            },
        ]
    );
    let through_client = client_for(root.path(), None, &[])
        .hosts_for("registry.local")
        .unwrap();
    assert_eq!(through_client[0].host, "registry.local");
    assert_eq!(through_client[0].ca, [dir.join("ca.crt")]);
}

/// `docker_registry=` and `insecure_registries=` are the same host list in a simpler form:
/// the mirror is the only server of registries without a directory of their own (in place of
/// `_default`), a registry's own hosts.toml wins, and insecure hosts get `skip_verify` with
/// the HTTP fallback.
#[test]
fn the_command_line_mirror_and_insecure_registries_are_host_lists_too() {
    let root = certs_d(&[
        (
            "_default/hosts.toml",
            "server = \"https://default.example\"\n",
        ),
        (
            "quay.io/hosts.toml",
            "[host.\"https://quay-mirror.local\"]\n",
        ),
    ]);
    let client = client_for(root.path(), Some("10.0.0.1:5000"), &["10.0.0.1:5000"]);
    let mut mirror = host(Http, "10.0.0.1:5000", "/v2", ALL);
    mirror.skip_verify = Some(true);
    assert_eq!(client.hosts_for("docker.io").unwrap(), [mirror]);
    let quay = client.hosts_for("quay.io").unwrap();
    assert_eq!(
        quay.iter().map(|h| h.host.as_str()).collect::<Vec<_>>(),
        ["quay-mirror.local", "quay.io"]
    );

    let nothing = tempfile::tempdir().unwrap();
    let plain = client_for(&nothing.path().join("missing"), None, &[]);
    assert_eq!(
        plain.hosts_for("ghcr.io").unwrap(),
        [host(Https, "ghcr.io", "/v2", ALL)],
        "no directory: the registry itself"
    );
}

fn refused(text: &str) -> String {
    let file = Path::new("/etc/containerd/certs.d/quay.io/hosts.toml");
    match parse_hosts_toml(text, file.parent().unwrap(), file) {
        Err(error @ RegistryError::HostsFile { .. }) => error.to_string(),
        other => panic!("{text:?} was not refused: {other:?}"),
    }
}

#[test]
fn a_bad_hosts_toml_is_refused_naming_the_file_and_the_key() {
    for (text, key) in [
        (
            "[host.\"https://m\"]\nskip_verify = \"yes\"\n",
            "host.\"https://m\".skip_verify",
        ),
        (
            "[host.\"https://m\"]\ncapabilities = [\"fetch\"]\n",
            "host.\"https://m\".capabilities",
        ),
        ("ca = 3\n", "key ca "),
        ("server = \"ftp://m\"\n", "key server "),
        (
            "[host.\"https://m\".header]\nx-a = 1\n",
            "host.\"https://m\".header.x-a",
        ),
        (
            "[host.\"https://m\"]\nclient = [[\"a\"]]\n",
            "host.\"https://m\".client",
        ),
        (
            "[host.\"https://m\"]\ndial_timeout = \"soon\"\n",
            "dial_timeout",
        ),
    ] {
        let message = refused(text);
        assert!(
            message.contains("/etc/containerd/certs.d/quay.io/hosts.toml") && message.contains(key),
            "{text:?}: {message}"
        );
    }
    let message = refused("server = \"https://m\"\n[host.\"https://x\"\ncapabilities = []\n");
    assert!(
        message.contains("not valid TOML") && message.contains("line 2"),
        "{message}"
    );
}

#[test]
fn header_values_do_not_reach_debug_output() {
    let hosts = parse_hosts_toml(
        "[host.\"https://m\".header]\nAuthorization = \"Basic c2VjcmV0OnNlY3JldA==\"\n",
        Path::new("/d"),
        Path::new("/d/hosts.toml"),
    )
    .unwrap();
    let debug = format!("{hosts:?}");
    assert!(
        debug.contains("Authorization") && !debug.contains("c2VjcmV0"),
        "{debug}"
    );
}

/// The README's air-gapped example is a file this parser takes, with the meaning the README
/// gives it.
#[test]
fn the_readme_example_means_what_the_readme_says() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let after = readme
        .split_once("An air-gapped site whose mirror holds every image")
        .expect("the README's hosts.toml example")
        .1;
    let block = after
        .split_once("```toml\n")
        .unwrap()
        .1
        .split_once("```")
        .unwrap()
        .0;
    let text: String = block
        .lines()
        .map(|line| line.strip_prefix("  ").unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n");
    let dir = Path::new("/etc/containerd/certs.d/_default");
    let hosts = parse_hosts_toml(&text, dir, &dir.join("hosts.toml")).unwrap();
    assert_eq!(hosts.len(), 2);
    assert_eq!(
        (hosts[0].host.as_str(), hosts[0].capabilities),
        ("cache.rack3.local", PULL)
    );
    assert_eq!(hosts[0].client[0].key, Some(dir.join("rack3-client.key")));
    assert_eq!(hosts[0].dial_timeout, Some(Duration::from_secs(2)));
    assert_eq!(hosts[1].host, "mirror.site.local:5000");
    assert_eq!(hosts[1].ca, [dir.join("mirror-ca.pem")]);
    assert_eq!(
        hosts[1].headers["Authorization"],
        ["Basic c2l0ZTpzM2NyZXQ="]
    );
    use base64::Engine as _;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode("c2l0ZTpzM2NyZXQ=")
            .unwrap(),
        b"site:s3cret"
    );
}
