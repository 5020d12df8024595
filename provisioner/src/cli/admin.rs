//! `provisioner init` and the admin listener's flags of `serve`.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use provisioner::admin::AdminOptions;
use provisioner::https::TlsFiles;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use super::output::Output;

/// Flags of `serve` for the admin API and page (flattened into `ServeArgs`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AdminArgs {
    /// File holding the admin API's bearer token (mode 0600; `provisioner init` writes one).
    #[arg(help_heading = "Admin API", long, value_name = "PATH")]
    admin_token_file: Option<PathBuf>,
    /// PEM CA: admin clients with a certificate it signed need no token (needs --admin-tls-cert).
    #[arg(help_heading = "Admin API", long, value_name = "PATH")]
    admin_client_ca: Option<PathBuf>,
    /// PEM certificate chain: serve the admin API over HTTPS (with --admin-tls-key).
    #[arg(
        help_heading = "Admin API",
        long,
        value_name = "PATH",
        requires = "admin_tls_key"
    )]
    admin_tls_cert: Option<PathBuf>,
    /// PEM private key for --admin-tls-cert.
    #[arg(
        help_heading = "Admin API",
        long,
        value_name = "PATH",
        requires = "admin_tls_cert"
    )]
    admin_tls_key: Option<PathBuf>,
    /// Serve the admin API without authentication: for tests and development only.
    #[arg(help_heading = "Admin API", long, conflicts_with_all = ["admin_token_file", "admin_client_ca"])]
    admin_insecure_no_auth: bool,
}

impl AdminArgs {
    /// The admin listener's options, with the token read from its file.
    pub fn options(&self) -> anyhow::Result<AdminOptions> {
        let token = self
            .admin_token_file
            .as_deref()
            .map(read_token)
            .transpose()?;
        let tls = match (&self.admin_tls_cert, &self.admin_tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        };
        Ok(AdminOptions {
            token,
            client_ca: self.admin_client_ca.clone(),
            tls,
            insecure_no_auth: self.admin_insecure_no_auth,
        })
    }
}

/// Reads the token, refusing a file others can read: a leaked token is full admin access.
fn read_token(path: &Path) -> anyhow::Result<String> {
    let metadata = std::fs::metadata(path)
        .with_context(|| format!("reading the admin token file {} failed", path.display()))?;
    if metadata.mode() & 0o077 != 0 {
        anyhow::bail!(
            "the admin token file {} is readable by other users (mode {:o}); run `chmod 600 {}`",
            path.display(),
            metadata.mode() & 0o777,
            path.display()
        );
    }
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("reading the admin token file {} failed", path.display()))?;
    let token = token.trim();
    anyhow::ensure!(
        !token.is_empty(),
        "the admin token file {} is empty; `provisioner init` writes a random token",
        path.display()
    );
    Ok(token.to_string())
}

#[derive(clap::Args)]
pub struct InitArgs {
    /// Directory for the CA, certificates, keys and token (created if missing).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// A DNS name of this host for the server certificate (repeatable; localhost always).
    #[arg(long = "hostname", value_name = "NAME")]
    hostnames: Vec<String>,
    /// An IP address of this host for the server certificate (repeatable; 127.0.0.1 always).
    #[arg(long = "ip", value_name = "IP")]
    ips: Vec<IpAddr>,
    /// Replace files that exist already.
    #[arg(long)]
    force: bool,
}

/// What `init` writes, and whether the file is a secret (mode 0600) or public (0644).
///
/// `server.pem` is the chain, leaf then `ca.pem`: nodes pin the CA by its hash
/// (`tinkerbell_ca_sha256`), so the server must present it. The node CA signs only nodes'
/// client certificates; it is not `ca.pem`, so a node certificate is never an admin credential.
const FILES: [(&str, Secrecy); 9] = [
    ("ca.pem", Secrecy::Public),
    ("ca-key.pem", Secrecy::Secret),
    ("server.pem", Secrecy::Public),
    ("server-key.pem", Secrecy::Secret),
    ("admin.pem", Secrecy::Public),
    ("admin-key.pem", Secrecy::Secret),
    ("admin-token", Secrecy::Secret),
    ("node-ca.pem", Secrecy::Public),
    ("node-ca-key.pem", Secrecy::Secret),
];

#[derive(Clone, Copy)]
enum Secrecy {
    Public,
    Secret,
}

pub fn init(args: &InitArgs, out: &Output) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating the directory {} failed", args.dir.display()))?;
    refuse_to_overwrite(args)?;
    let contents = generate(&args.hostnames, &args.ips)?;
    for ((name, secrecy), content) in FILES.iter().zip(&contents) {
        write_new(&args.dir.join(name), content, *secrecy, args.force)?;
    }
    let dir = args.dir.display();
    out.done(&format!(
        "wrote {files} in {dir}\n\
         serve the admin API with:\n  \
         --admin-token-file {dir}/admin-token --admin-tls-cert {dir}/server.pem \
         --admin-tls-key {dir}/server-key.pem --admin-client-ca {dir}/ca.pem\n\
         and the node-facing HTTPS and gRPC with:\n  --tls-cert {dir}/server.pem --tls-key {dir}/server-key.pem\n\
         and node enrollment (client certificates for nodes) with:\n  \
         --node-ca-cert {dir}/node-ca.pem --node-ca-key {dir}/node-ca-key.pem\n\
         admin clients: trust {dir}/ca.pem and send the token as `Authorization: Bearer`, \
         or present {dir}/admin.pem with {dir}/admin-key.pem",
        files = FILES.map(|(name, _)| name).join(", "),
    ))
}

fn refuse_to_overwrite(args: &InitArgs) -> anyhow::Result<()> {
    if args.force {
        return Ok(());
    }
    let existing: Vec<_> = FILES
        .iter()
        .map(|(name, _)| args.dir.join(name))
        .filter(|path| path.exists())
        .map(|path| path.display().to_string())
        .collect();
    anyhow::ensure!(
        existing.is_empty(),
        "refusing to overwrite {}; give --force to replace them (clients trusting the old CA or token stop working)",
        existing.join(", ")
    );
    Ok(())
}

/// The files' contents, in the order of [`FILES`].
fn generate(hostnames: &[String], ips: &[IpAddr]) -> anyhow::Result<Vec<String>> {
    let (ca, ca_key) = certificate_authority("bootkit provisioner CA")?;
    let (node_ca, node_ca_key) = certificate_authority("bootkit node CA")?;

    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    names.extend(hostnames.iter().cloned());
    names.extend(ips.iter().map(IpAddr::to_string));
    names.dedup();
    let server_key = KeyPair::generate().context("generating the server key failed")?;
    let mut server_params =
        CertificateParams::new(names).context("a --hostname is not a valid DNS name")?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "bootkit provisioner");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = server_params
        .signed_by(&server_key, &ca, &ca_key)
        .context("signing the server certificate failed")?;

    let admin_key = KeyPair::generate().context("generating the admin client key failed")?;
    let mut admin_params = CertificateParams::default();
    admin_params
        .distinguished_name
        .push(DnType::CommonName, "provisioner admin");
    admin_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin = admin_params
        .signed_by(&admin_key, &ca, &ca_key)
        .context("signing the admin client certificate failed")?;

    Ok(vec![
        ca.pem(),
        ca_key.serialize_pem(),
        format!("{}{}", server.pem(), ca.pem()),
        server_key.serialize_pem(),
        admin.pem(),
        admin_key.serialize_pem(),
        format!("{}\n", random_token()?),
        node_ca.pem(),
        node_ca_key.serialize_pem(),
    ])
}

/// A self-signed CA certificate named `name`, and its key.
fn certificate_authority(name: &str) -> anyhow::Result<(rcgen::Certificate, KeyPair)> {
    let key =
        KeyPair::generate().with_context(|| format!("generating the key of the {name} failed"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let certificate = params
        .self_signed(&key)
        .with_context(|| format!("signing the {name} certificate failed"))?;
    Ok((certificate, key))
}

/// 32 random bytes from the OS, as hex.
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|error| anyhow::anyhow!("the OS random generator failed: {error}"))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Creates `path` with its final mode from the start, so a secret is never readable by others,
/// not even for a moment.
fn write_new(path: &Path, content: &str, secrecy: Secrecy, replace: bool) -> anyhow::Result<()> {
    if replace {
        match std::fs::remove_file(path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(error)
                    .with_context(|| format!("removing the old {} failed", path.display()));
            }
            _ => {}
        }
    }
    let mode = match secrecy {
        Secrecy::Public => 0o644,
        Secrecy::Secret => 0o600,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {} failed", path.display()))?;
    file.write_all(content.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {} failed", path.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn token_file(mode: u32, content: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin-token");
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    #[test]
    fn the_token_is_read_trimmed_from_a_private_file() {
        let (_dir, path) = token_file(0o600, "  s3cret\n");
        assert_eq!(read_token(&path).unwrap(), "s3cret");
    }

    #[test]
    fn a_token_file_others_can_read_is_refused_with_the_fix() {
        let (_dir, path) = token_file(0o640, "s3cret\n");
        let error = read_token(&path).unwrap_err().to_string();
        assert!(error.contains("chmod 600"), "{error}");
    }

    #[test]
    fn an_empty_token_file_is_refused() {
        let (_dir, path) = token_file(0o600, "\n");
        let error = read_token(&path).unwrap_err().to_string();
        assert!(error.contains("empty"), "{error}");
    }
}
