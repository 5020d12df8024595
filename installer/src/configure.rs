//! Configuring the installed system from the install config: hostname, users with SSH keys,
//! proxy environment, a static network, a cloud-init NoCloud seed. This is the chroot half of
//! EMT Standalone's install-os.sh, done by editing files in the mounted root filesystem.
//!
//! Every edit is computed in memory first, so a problem found in the installed system (a group
//! that does not exist, a malformed /etc/passwd) stops before any file is written. Files are
//! then replaced atomically (temporary file, fsync, rename), keeping an existing file's mode
//! and owner. Paths are resolved inside the installed root (`openat2` with `RESOLVE_IN_ROOT`),
//! so an absolute symlink in the image can never lead a write out into the installer's own
//! filesystem. Running again with the same config changes nothing.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};

use crate::config::{
    CloudInit, Hostname, InstallConfig, PartitionName, Proxy, StaticNetwork, User,
};
use crate::copy_network::{NETWORK_DIR, NetworkFile};
use crate::mount::{MountError, Mounted};

/// GPT names of the root filesystem partition, in order of preference (EMT names it `rootfs`,
/// its A/B images `rootfs_a`).
pub const ROOTFS_PARTITION_NAMES: [&str; 3] = ["rootfs", "rootfs_a", "root"];

/// Login ids given to new users: from 1000 up to login.defs' default UID_MAX.
const FIRST_USER_ID: u32 = 1000;
const LAST_USER_ID: u32 = 60000;

/// Why the installed system cannot be configured.
#[derive(Debug, thiserror::Error)]
pub enum ConfigureError {
    /// The written disk's partition table does not parse.
    #[error("cannot read the partition table of {disk}; was the image written completely?")]
    PartitionTable {
        /// The disk written.
        disk: PathBuf,
        /// gptman's error.
        source: gptman::Error,
    },
    /// No partition has the root filesystem's name.
    #[error(
        "{disk} has no root filesystem partition named {wanted}; its partitions are named \
         {found}; set [system] rootfs_partition in the install config to the right one"
    )]
    NoRootPartition {
        /// The disk written.
        disk: PathBuf,
        /// The partition name looked for.
        wanted: String,
        /// The names the disk's partitions have.
        found: String,
    },
    /// The root partition's device node does not exist.
    #[error(
        "{device}, the root partition, does not exist: the kernel did not pick up \
         the written partition table; re-read it (blockdev --rereadpt) and run again"
    )]
    NoPartitionDevice {
        /// The device node expected.
        device: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Mounting or unmounting the root filesystem failed.
    #[error(transparent)]
    Mount(#[from] MountError),
    /// A file of the installed system is not as the configuration needs it.
    #[error("installed system's {path}: {reason}")]
    System {
        /// The path inside the installed system.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file operation in the installed system failed.
    #[error("cannot {action} {path} in the installed system")]
    Io {
        /// What was being done (`write`, `create`, ...).
        action: &'static str,
        /// The path inside the installed system.
        path: String,
        /// The operating system's error.
        source: io::Error,
    },
}

/// One file or directory the configuration wrote, for the installer's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Path inside the installed system, e.g. `/etc/hostname`.
    pub path: String,
    /// What was done to it, e.g. `set to node-a`.
    pub what: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.path, self.what)
    }
}

/// Finds the root filesystem partition of the image written on `disk`, mounts it, applies
/// the config and writes the `copied_network` files (`--copy-network`) into
/// /etc/systemd/network, and unmounts it. Does nothing (and mounts nothing) when there is
/// nothing to set. Returns what was written; empty when everything was already so.
pub fn configure_disk(
    config: &InstallConfig,
    disk: &Path,
    copied_network: &[NetworkFile],
) -> Result<Vec<Change>, ConfigureError> {
    if !config.configures_system() && copied_network.is_empty() {
        return Ok(Vec::new());
    }
    let number = find_root_partition(disk, config.system.rootfs_partition.as_ref())?;
    let device = crate::disk::partition_path(disk, number);
    std::fs::metadata(&device).map_err(|source| ConfigureError::NoPartitionDevice {
        device: device.clone(),
        source,
    })?;
    let mounted = Mounted::new(&device)?;
    let changes = apply_to_root(config, mounted.path(), copied_network)?;
    mounted.unmount()?;
    Ok(changes)
}

/// The number of the partition named `wanted`, or else the first of
/// [`ROOTFS_PARTITION_NAMES`] that the disk's GPT has.
pub fn find_root_partition(
    disk: &Path,
    wanted: Option<&PartitionName>,
) -> Result<u32, ConfigureError> {
    let table_error = |source| ConfigureError::PartitionTable {
        disk: disk.to_owned(),
        source,
    };
    let mut file = File::open(disk).map_err(|e| table_error(gptman::Error::Io(e)))?;
    let gpt = gptman::GPT::find_from(&mut file).map_err(table_error)?;
    let names: Vec<(u32, String)> = gpt
        .iter()
        .filter(|(_, entry)| entry.is_used())
        .map(|(number, entry)| (number, entry.partition_name.as_str().to_owned()))
        .collect();
    let candidates: Vec<&str> = match wanted {
        Some(name) => vec![name.as_str()],
        None => ROOTFS_PARTITION_NAMES.to_vec(),
    };
    candidates
        .iter()
        .find_map(|candidate| {
            names
                .iter()
                .find(|(_, name)| name == candidate)
                .map(|(number, _)| *number)
        })
        .ok_or_else(|| ConfigureError::NoRootPartition {
            disk: disk.to_owned(),
            wanted: candidates.join(" or "),
            found: names
                .iter()
                .map(|(number, name)| format!("{number}:{name:?}"))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Applies the config to the system whose root filesystem is mounted at `root`.
pub fn configure_root(config: &InstallConfig, root: &Path) -> Result<Vec<Change>, ConfigureError> {
    apply_to_root(config, root, &[])
}

fn apply_to_root(
    config: &InstallConfig,
    root: &Path,
    copied_network: &[NetworkFile],
) -> Result<Vec<Change>, ConfigureError> {
    let root = RootDir::open(root)?;
    let mut staged = Staged::new(&root);
    if let Some(hostname) = &config.hostname {
        stage_hostname(&mut staged, hostname)?;
    }
    if !config.users.is_empty() {
        stage_users(&mut staged, &config.users)?;
    }
    if let Some(proxy) = &config.proxy {
        stage_proxy(&mut staged, proxy)?;
    }
    if let Some(network) = &config.network {
        stage_network(&mut staged, network)?;
    }
    if let Some(cloud_init) = &config.cloud_init {
        stage_cloud_init(&mut staged, cloud_init, config.hostname.as_ref())?;
    }
    for file in copied_network {
        let path = format!("{NETWORK_DIR}/{}", file.name);
        staged.replace(
            &path,
            file.text.clone(),
            0o644,
            ROOT_OWNER,
            "copied network",
        )?;
    }
    staged.commit()
}

const ROOT_OWNER: Owner = Owner { uid: 0, gid: 0 };

/// Rewrites each file of `dir` whose name ends in `suffix`, inside the filesystem mounted at
/// `root` (resolved in it as in a chroot, replaced atomically, mode and owner kept), with
/// `edit`'s text noted as `what`. None: `dir` is missing or holds no such file. A file that
/// `edit` leaves unchanged is not written.
pub(crate) fn edit_files_in(
    root: &Path,
    dir: &str,
    suffix: &str,
    what: &str,
    edit: impl Fn(&str) -> String,
) -> Result<Option<Vec<Change>>, ConfigureError> {
    let root = RootDir::open(root)?;
    let Some(names) = root.file_names(dir)? else {
        return Ok(None);
    };
    let names: Vec<String> = names.into_iter().filter(|n| n.ends_with(suffix)).collect();
    if names.is_empty() {
        return Ok(None);
    }
    let mut staged = Staged::new(&root);
    for name in names {
        let path = format!("{}/{name}", dir.trim_end_matches('/'));
        let file = staged.file(&path, 0o644, ROOT_OWNER)?;
        file.text = edit(&file.text);
        file.note(what);
    }
    staged.commit().map(Some)
}

fn stage_hostname(staged: &mut Staged, hostname: &Hostname) -> Result<(), ConfigureError> {
    let what = format!("hostname {hostname}");
    staged.replace(
        "/etc/hostname",
        format!("{hostname}\n"),
        0o644,
        ROOT_OWNER,
        &what,
    )?;

    let short = hostname.as_str().split('.').next().unwrap_or_default();
    let names = if short == hostname.as_str() {
        hostname.to_string()
    } else {
        format!("{hostname} {short}")
    };
    // Debian's convention: the machine's own name on 127.0.1.1, so it resolves offline.
    let line = format!("127.0.1.1\t{names}");
    let hosts = staged.file("/etc/hosts", 0o644, ROOT_OWNER)?;
    if hosts.text.is_empty() {
        hosts.text = "127.0.0.1\tlocalhost\n::1\tlocalhost\n".into();
    }
    hosts.text = replace_or_append(&hosts.text, &line, |existing| {
        existing.split_whitespace().next() == Some("127.0.1.1")
    });
    hosts.note(&what);
    Ok(())
}

/// `text` with every line for which `matches` holds replaced by `line` (once), or with
/// `line` appended when none does.
fn replace_or_append(text: &str, line: &str, matches: impl Fn(&str) -> bool) -> String {
    let mut lines: Vec<&str> = Vec::new();
    let mut placed = false;
    for existing in text.lines() {
        if !matches(existing) {
            lines.push(existing);
        } else if !placed {
            lines.push(line);
            placed = true;
        }
    }
    if !placed {
        lines.push(line);
    }
    lines.join("\n") + "\n"
}

fn stage_users(staged: &mut Staged, users: &[User]) -> Result<(), ConfigureError> {
    let mut passwd = Table::load(staged, "/etc/passwd", 7)?;
    let mut group = Table::load(staged, "/etc/group", 4)?;
    let mut shadow = Table::load(staged, "/etc/shadow", 9)?;
    let mut gshadow = if staged.root.exists("/etc/gshadow")? {
        Some(Table::load(staged, "/etc/gshadow", 4)?)
    } else {
        None
    };
    let today = days_since_epoch();
    for user in users {
        let name = user.name.as_str();
        let account = match passwd.get(name) {
            Some(fields) => Account::from_passwd(&fields, &passwd.path)?,
            None => {
                let account = new_account(staged.root, &passwd, &group, name)?;
                passwd.upsert(account.passwd_line(name));
                shadow.upsert(new_shadow_line(name, user, today));
                if group.get(name).is_none() {
                    group.upsert(vec![
                        name.into(),
                        "x".into(),
                        account.gid.to_string(),
                        String::new(),
                    ]);
                    if let Some(gshadow) = gshadow.as_mut() {
                        gshadow.upsert(vec![name.into(), "!".into(), String::new(), String::new()]);
                    }
                }
                account
            }
        };
        if let Some(hash) = &user.password_hash {
            set_password(&mut shadow, name, hash.as_str(), today)?;
        }
        for member_of in supplementary_groups(&group, user)? {
            group.add_member(&member_of, name);
            if let Some(gshadow) = gshadow.as_mut() {
                gshadow.add_member(&member_of, name);
            }
        }
        stage_home(staged, &account, user)?;
    }
    let what = format!(
        "users {}",
        users
            .iter()
            .map(|u| u.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for table in [Some(passwd), Some(group), Some(shadow), gshadow]
        .into_iter()
        .flatten()
    {
        table.store(staged, &what)?;
    }
    Ok(())
}

/// What the installer needs to know of a login: ids and home directory.
struct Account {
    uid: u32,
    gid: u32,
    home: String,
    shell: String,
}

impl Account {
    fn from_passwd(fields: &[String], path: &str) -> Result<Self, ConfigureError> {
        let id = |index: usize| {
            fields[index]
                .parse::<u32>()
                .map_err(|_| ConfigureError::System {
                    path: path.into(),
                    reason: format!("the line of user {} has a bad uid or gid", fields[0]),
                })
        };
        Ok(Self {
            uid: id(2)?,
            gid: id(3)?,
            home: fields[5].clone(),
            shell: fields[6].clone(),
        })
    }

    fn passwd_line(&self, name: &str) -> Vec<String> {
        let (uid, gid) = (self.uid.to_string(), self.gid.to_string());
        [name, "x", &uid, &gid, "", &self.home, &self.shell]
            .map(String::from)
            .to_vec()
    }

    fn owner(&self) -> Owner {
        Owner {
            uid: self.uid,
            gid: self.gid,
        }
    }
}

fn new_account(
    root: &RootDir,
    passwd: &Table,
    group: &Table,
    name: &str,
) -> Result<Account, ConfigureError> {
    let uid = next_free_id(passwd.ids(2)).ok_or_else(|| ConfigureError::System {
        path: passwd.path.clone(),
        reason: format!("no free uid between {FIRST_USER_ID} and {LAST_USER_ID} for user {name}"),
    })?;
    // A group already named like the user (some images ship one) becomes its primary group.
    let gid = match group.get(name) {
        Some(fields) => fields[2].parse().ok(),
        None => next_free_id(group.ids(2)),
    }
    .ok_or_else(|| ConfigureError::System {
        path: group.path.clone(),
        reason: format!("no usable gid for the group of user {name}"),
    })?;
    let shell = ["/bin/bash", "/bin/sh"]
        .into_iter()
        .find(|shell| root.exists(shell).unwrap_or(false))
        .unwrap_or("/bin/sh");
    Ok(Account {
        uid,
        gid,
        home: format!("/home/{name}"),
        shell: shell.into(),
    })
}

/// One above the largest id already in the login range, so new ids never reuse an old one.
fn next_free_id(ids: impl Iterator<Item = u32>) -> Option<u32> {
    let next = ids
        .filter(|id| (FIRST_USER_ID..=LAST_USER_ID).contains(id))
        .max()
        .map_or(FIRST_USER_ID, |largest| largest + 1);
    (next <= LAST_USER_ID).then_some(next)
}

fn new_shadow_line(name: &str, user: &User, today: u64) -> Vec<String> {
    // "*" and not "!": OpenSSH treats a "!" password as a locked account and refuses even
    // key logins, while "*" only means no password matches.
    let hash = user
        .password_hash
        .as_ref()
        .map_or("*", |hash| hash.as_str());
    [
        name,
        hash,
        &today.to_string(),
        "0",
        "99999",
        "7",
        "",
        "",
        "",
    ]
    .map(String::from)
    .to_vec()
}

fn set_password(
    shadow: &mut Table,
    name: &str,
    hash: &str,
    today: u64,
) -> Result<(), ConfigureError> {
    let mut fields = shadow.get(name).ok_or_else(|| ConfigureError::System {
        path: shadow.path.clone(),
        reason: format!("user {name} is in /etc/passwd but has no line here"),
    })?;
    if fields[1] != hash {
        fields[1] = hash.into();
        fields[2] = today.to_string();
        shadow.upsert(fields);
    }
    Ok(())
}

/// The user's configured groups plus the administrators' group when `sudo` is set.
fn supplementary_groups(group: &Table, user: &User) -> Result<Vec<String>, ConfigureError> {
    let mut names: Vec<String> = user.groups.iter().map(|g| g.as_str().to_owned()).collect();
    if user.sudo {
        let admin = ["sudo", "wheel"]
            .into_iter()
            .find(|name| group.get(name).is_some())
            .ok_or_else(|| ConfigureError::System {
                path: group.path.clone(),
                reason: format!(
                    "user {} has sudo = true but the system has neither a sudo nor a wheel \
                     group; check that the image includes sudo",
                    user.name
                ),
            })?;
        names.push(admin.into());
    }
    if let Some(missing) = names.iter().find(|name| group.get(name).is_none()) {
        return Err(ConfigureError::System {
            path: group.path.clone(),
            reason: format!(
                "group {missing} of user {} does not exist in the installed system; remove it \
                 from groups or use an image that has it",
                user.name
            ),
        });
    }
    Ok(names)
}

fn stage_home(staged: &mut Staged, account: &Account, user: &User) -> Result<(), ConfigureError> {
    let owner = account.owner();
    staged.dir(&account.home, 0o700, owner);
    if user.ssh_authorized_keys.is_empty() {
        return Ok(());
    }
    let ssh_dir = format!("{}/.ssh", account.home.trim_end_matches('/'));
    staged.dir(&ssh_dir, 0o700, owner);
    let keys = staged.file(&format!("{ssh_dir}/authorized_keys"), 0o600, owner)?;
    for key in &user.ssh_authorized_keys {
        let key = key.as_str().trim();
        if !keys.text.lines().any(|line| line.trim() == key) {
            if !keys.text.is_empty() && !keys.text.ends_with('\n') {
                keys.text.push('\n');
            }
            keys.text.push_str(key);
            keys.text.push('\n');
        }
    }
    keys.note(&format!("SSH keys of {}", user.name));
    Ok(())
}

fn stage_proxy(staged: &mut Staged, proxy: &Proxy) -> Result<(), ConfigureError> {
    let settings: Vec<(&str, &str)> = [
        ("http_proxy", proxy.http.as_ref().map(|v| v.as_str())),
        ("https_proxy", proxy.https.as_ref().map(|v| v.as_str())),
        ("no_proxy", proxy.no_proxy.as_ref().map(|v| v.as_str())),
    ]
    .into_iter()
    .filter_map(|(key, value)| Some((key, value?)))
    .collect();
    // Tools disagree on the case (curl reads http_proxy, Go reads HTTPS_PROXY): set both.
    let variables: Vec<(String, &str)> = settings
        .iter()
        .flat_map(|&(key, value)| [(key.to_owned(), value), (key.to_ascii_uppercase(), value)])
        .collect();

    let environment = staged.file("/etc/environment", 0o644, ROOT_OWNER)?;
    let mut text = environment.text.clone();
    for (key, value) in &variables {
        let prefix = format!("{key}=");
        text = replace_or_append(&text, &format!("{key}={value}"), |line| {
            line.trim_start()
                .trim_start_matches("export ")
                .starts_with(&prefix)
        });
    }
    environment.text = text;
    environment.note("proxy");

    let script: String = variables
        .iter()
        .map(|(key, value)| format!("export {key}=\"{value}\"\n"))
        .collect();
    let header = "# Written by bootkit-install from the install config's [proxy] section.\n";
    staged.replace(
        "/etc/profile.d/proxy.sh",
        format!("{header}{script}"),
        0o644,
        ROOT_OWNER,
        "proxy",
    )
}

fn stage_network(staged: &mut Staged, network: &StaticNetwork) -> Result<(), ConfigureError> {
    let mut text = String::from(
        "# Written by bootkit-install from the install config's [network] section.\n[Match]\n",
    );
    if let Some(name) = &network.interface {
        text += &format!("Name={name}\n");
    }
    if let Some(mac) = &network.mac {
        text += &format!("MACAddress={mac}\n");
    }
    text += &format!("\n[Network]\nAddress={}\n", network.address);
    if let Some(gateway) = network.gateway {
        text += &format!("Gateway={gateway}\n");
    }
    for server in &network.dns {
        text += &format!("DNS={server}\n");
    }
    let what = format!("static address {}", network.address);
    // "10-" sorts before EMT's 99-dhcp-en.network: networkd applies the first file that matches.
    staged.replace(
        &format!("{NETWORK_DIR}/10-bootkit-static.network"),
        text,
        0o644,
        ROOT_OWNER,
        &what,
    )
}

fn stage_cloud_init(
    staged: &mut Staged,
    cloud_init: &CloudInit,
    hostname: Option<&Hostname>,
) -> Result<(), ConfigureError> {
    const SEED: &str = "/var/lib/cloud/seed/nocloud";
    let user_data = cloud_init.user_data.clone().unwrap_or_default();
    let meta_data = cloud_init.meta_data.clone().unwrap_or_else(|| {
        // NoCloud needs a meta-data file; an instance-id tells cloud-init this is one instance.
        let name = hostname.map_or("install", |h| h.as_str());
        let local = hostname
            .map(|h| format!("local-hostname: {h}\n"))
            .unwrap_or_default();
        format!("instance-id: bootkit-{name}\n{local}")
    });
    // 0600: user-data often carries secrets (tokens, passwords for runcmd).
    staged.replace(
        &format!("{SEED}/user-data"),
        user_data,
        0o600,
        ROOT_OWNER,
        "cloud-init user-data",
    )?;
    staged.replace(
        &format!("{SEED}/meta-data"),
        meta_data,
        0o600,
        ROOT_OWNER,
        "cloud-init meta-data",
    )
}

fn days_since_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() / 86_400)
}

/// A colon-separated account database (/etc/passwd, group, shadow, gshadow), kept line by
/// line so that comments and unknown lines survive untouched.
struct Table {
    path: String,
    fields: usize,
    lines: Vec<String>,
}

impl Table {
    fn load(staged: &mut Staged, path: &str, fields: usize) -> Result<Self, ConfigureError> {
        let file = staged.file(path, 0o644, ROOT_OWNER)?;
        if file.original.is_none() {
            return Err(ConfigureError::System {
                path: path.into(),
                reason: "missing; is this the root filesystem of a Linux system?".into(),
            });
        }
        Ok(Self {
            path: path.into(),
            fields,
            lines: file.text.lines().map(String::from).collect(),
        })
    }

    /// The fields of `name`'s line, padded to the table's width.
    fn get(&self, name: &str) -> Option<Vec<String>> {
        self.lines.iter().find_map(|line| {
            let mut fields: Vec<String> = line.split(':').map(String::from).collect();
            (fields[0] == name).then(|| {
                fields.resize(self.fields.max(fields.len()), String::new());
                fields
            })
        })
    }

    fn upsert(&mut self, fields: Vec<String>) {
        let line = fields.join(":");
        let name_prefix = format!("{}:", fields[0]);
        match self.lines.iter_mut().find(|l| l.starts_with(&name_prefix)) {
            Some(existing) => *existing = line,
            None => self.lines.push(line),
        }
    }

    fn ids(&self, field: usize) -> impl Iterator<Item = u32> + '_ {
        self.lines
            .iter()
            .filter_map(move |line| line.split(':').nth(field)?.parse().ok())
    }

    /// Adds `member` to the comma-separated member list (the last field) of group `name`.
    fn add_member(&mut self, name: &str, member: &str) {
        let Some(mut fields) = self.get(name) else {
            return;
        };
        let last = self.fields - 1;
        let mut members: Vec<&str> = fields[last].split(',').filter(|m| !m.is_empty()).collect();
        if !members.contains(&member) {
            members.push(member);
            fields[last] = members.join(",");
            self.upsert(fields);
        }
    }

    fn store(self, staged: &mut Staged, what: &str) -> Result<(), ConfigureError> {
        let file = staged.file(&self.path, 0o644, ROOT_OWNER)?;
        file.text = self.lines.join("\n") + "\n";
        file.note(what);
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owner {
    uid: u32,
    gid: u32,
}

/// A file's new content, written at commit time only if it differs from the original.
struct StagedFile {
    original: Option<String>,
    text: String,
    /// Mode and owner for a new file; an existing file keeps its own.
    mode: u32,
    owner: Owner,
    notes: Vec<String>,
}

impl StagedFile {
    fn note(&mut self, what: &str) {
        if !self.notes.iter().any(|n| n == what) {
            self.notes.push(what.into());
        }
    }
}

/// All edits to the installed system, held until every one of them was computed.
struct Staged<'r> {
    root: &'r RootDir,
    /// Directories to create if missing, in order (parents first).
    dirs: Vec<(String, u32, Owner)>,
    files: BTreeMap<String, StagedFile>,
}

impl<'r> Staged<'r> {
    fn new(root: &'r RootDir) -> Self {
        Self {
            root,
            dirs: Vec::new(),
            files: BTreeMap::new(),
        }
    }

    /// The staged content of `path`, read from the installed system on first use (empty
    /// when the file does not exist yet); missing parent directories are staged too.
    fn file(
        &mut self,
        path: &str,
        mode: u32,
        owner: Owner,
    ) -> Result<&mut StagedFile, ConfigureError> {
        if let Some((parent, _)) = path
            .rsplit_once('/')
            .filter(|(parent, _)| !parent.is_empty())
        {
            self.dir_all(parent);
        }
        match self.files.entry(path.to_owned()) {
            Entry::Occupied(staged) => Ok(staged.into_mut()),
            Entry::Vacant(slot) => {
                let original = self.root.read(path)?;
                Ok(slot.insert(StagedFile {
                    text: original.clone().unwrap_or_default(),
                    original,
                    mode,
                    owner,
                    notes: Vec::new(),
                }))
            }
        }
    }

    /// Stages `path` with exactly `text`.
    fn replace(
        &mut self,
        path: &str,
        text: String,
        mode: u32,
        owner: Owner,
        what: &str,
    ) -> Result<(), ConfigureError> {
        let file = self.file(path, mode, owner)?;
        file.text = text;
        file.note(what);
        Ok(())
    }

    /// A directory to create with this mode and owner when missing; its missing parents are
    /// made root-owned 0755.
    fn dir(&mut self, path: &str, mode: u32, owner: Owner) {
        if let Some((parent, _)) = path.trim_end_matches('/').rsplit_once('/')
            && !parent.is_empty()
        {
            self.dir(parent, 0o755, ROOT_OWNER);
        }
        if !self.dirs.iter().any(|(existing, _, _)| existing == path) {
            self.dirs.push((path.to_owned(), mode, owner));
        }
    }

    fn dir_all(&mut self, path: &str) {
        self.dir(path, 0o755, ROOT_OWNER);
    }

    fn commit(self) -> Result<Vec<Change>, ConfigureError> {
        let mut changes = Vec::new();
        for (path, mode, owner) in &self.dirs {
            if self.root.create_dir(path, *mode, *owner)? {
                changes.push(Change {
                    path: path.clone(),
                    what: "created directory".into(),
                });
            }
        }
        for (path, file) in self.files {
            if file.original.as_deref() == Some(file.text.as_str()) {
                continue;
            }
            self.root
                .write(&path, file.text.as_bytes(), file.mode, file.owner)?;
            changes.push(Change {
                path,
                what: file.notes.join(", "),
            });
        }
        Ok(changes)
    }
}

/// The installed system's root directory; every path is resolved inside it, as in a chroot.
struct RootDir {
    fd: OwnedFd,
}

impl RootDir {
    fn open(root: &Path) -> Result<Self, ConfigureError> {
        let fd = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_error("open", &root.display().to_string(), e.into()))?;
        Ok(Self { fd })
    }

    fn open_in(&self, path: &str, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        let relative = path.trim_start_matches('/');
        let relative = if relative.is_empty() { "." } else { relative };
        Ok(rustix::fs::openat2(
            &self.fd,
            relative,
            flags | OFlags::CLOEXEC,
            mode,
            ResolveFlags::IN_ROOT,
        )?)
    }

    fn exists(&self, path: &str) -> Result<bool, ConfigureError> {
        match self.open_in(path, OFlags::PATH, Mode::empty()) {
            Ok(_) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(io_error("look up", path, error)),
        }
    }

    fn read(&self, path: &str) -> Result<Option<String>, ConfigureError> {
        let fd = match self.open_in(path, OFlags::RDONLY, Mode::empty()) {
            Ok(fd) => fd,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io_error("open", path, error)),
        };
        let mut text = String::new();
        File::from(fd)
            .read_to_string(&mut text)
            .map_err(|error| io_error("read", path, error))?;
        Ok(Some(text))
    }

    /// The names of the regular files in directory `path`, sorted; None when it is missing.
    fn file_names(&self, path: &str) -> Result<Option<Vec<String>>, ConfigureError> {
        let fd = match self.open_in(path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()) {
            Ok(fd) => fd,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io_error("open", path, error)),
        };
        let dir = rustix::fs::Dir::read_from(&fd).map_err(|e| io_error("list", path, e.into()))?;
        let mut names = Vec::new();
        for entry in dir {
            let entry = entry.map_err(|e| io_error("list", path, e.into()))?;
            if entry.file_type() == rustix::fs::FileType::RegularFile
                && let Ok(name) = entry.file_name().to_str()
            {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(Some(names))
    }

    fn split(path: &str) -> (&str, &str) {
        path.trim_end_matches('/')
            .rsplit_once('/')
            .unwrap_or(("", path))
    }

    /// Creates the directory unless it exists; true when it was created.
    fn create_dir(&self, path: &str, mode: u32, owner: Owner) -> Result<bool, ConfigureError> {
        if self.exists(path)? {
            return Ok(false);
        }
        self.make_dir(path, mode, owner)
            .map_err(|error| io_error("create directory", path, error))?;
        Ok(true)
    }

    fn make_dir(&self, path: &str, mode: u32, owner: Owner) -> io::Result<()> {
        let (parent, name) = Self::split(path);
        let parent = self.open_in(parent, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
        rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(mode))?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let dir = rustix::fs::openat(&parent, name, flags, Mode::empty())?;
        set_owner_and_mode(&dir, owner, mode)
    }

    /// Replaces `path` atomically; an existing file's mode and owner are kept.
    fn write(
        &self,
        path: &str,
        data: &[u8],
        mode: u32,
        owner: Owner,
    ) -> Result<(), ConfigureError> {
        self.replace_file(path, data, mode, owner)
            .map_err(|error| io_error("write", path, error))
    }

    fn replace_file(&self, path: &str, data: &[u8], mode: u32, owner: Owner) -> io::Result<()> {
        let (mode, owner) = match self.open_in(path, OFlags::PATH, Mode::empty()) {
            Ok(existing) => {
                let stat = rustix::fs::fstat(&existing)?;
                let owner = Owner {
                    uid: stat.st_uid,
                    gid: stat.st_gid,
                };
                (stat.st_mode & 0o7777, owner)
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => (mode, owner),
            Err(error) => return Err(error),
        };
        let (parent, name) = Self::split(path);
        let parent = self.open_in(parent, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
        let temporary = format!(".{name}.bootkit-install");
        match rustix::fs::unlinkat(&parent, temporary.as_str(), AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(error) => return Err(error.into()),
        }
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(
            &parent,
            temporary.as_str(),
            flags,
            Mode::from_raw_mode(0o600),
        )?;
        set_owner_and_mode(&fd, owner, mode)?;
        let mut file = File::from(fd);
        file.write_all(data)?;
        file.sync_all()?;
        rustix::fs::renameat(&parent, temporary.as_str(), &parent, name)?;
        rustix::fs::fsync(&parent)?;
        Ok(())
    }
}

fn set_owner_and_mode(fd: impl AsFd, owner: Owner, mode: u32) -> io::Result<()> {
    rustix::fs::fchown(
        &fd,
        Some(rustix::fs::Uid::from_raw(owner.uid)),
        Some(rustix::fs::Gid::from_raw(owner.gid)),
    )?;
    // After chown, which clears set-id bits; and not left to the umask.
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
    Ok(())
}

fn io_error(action: &'static str, path: &str, source: io::Error) -> ConfigureError {
    ConfigureError::Io {
        action,
        path: path.into(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use crate::config::fixtures::{KEY, edge_user_proxy_and_network};

    const HASH: &str = "$6$salt$IxDD3jeSOb5eB1CX5LBsqZFVkJdido3OUILO5Ifz5iwMuTS4XMS130MTSuDDl3aCI6WouIL9AjRbLCelDCy.g.";

    /// A minimal installed system: an existing login (uid 1000) and the system accounts.
    fn system() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let files = [
            (
                "etc/passwd",
                "root:x:0:0:root:/root:/bin/bash\nadmin:x:1000:1000::/home/admin:/bin/bash\n\
                 nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
            ),
            (
                "etc/group",
                "root:x:0:\nsudo:x:27:admin\ndocker:x:998:\nadmin:x:1000:\nops:x:1004:\n\
                 nogroup:x:65534:\n",
            ),
            (
                "etc/shadow",
                "root:*:19000:0:99999:7:::\nadmin:!:19000:0:99999:7:::\n",
            ),
            (
                "etc/gshadow",
                "root:*::\nsudo:*::admin\ndocker:!::\nadmin:!::\nops:!::\n",
            ),
            ("etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\told-name\n"),
            ("bin/bash", ""),
        ];
        for (path, text) in files {
            let path = root.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        std::fs::set_permissions(
            root.path().join("etc/shadow"),
            PermissionsExt::from_mode(0o640),
        )
        .unwrap();
        root
    }

    fn config(text: &str) -> InstallConfig {
        crate::config::parse(text, Path::new("install.toml")).unwrap()
    }

    fn read(root: &tempfile::TempDir, path: &str) -> String {
        std::fs::read_to_string(root.path().join(path)).unwrap()
    }

    /// Every file under the root with its content, mode and owner.
    fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>, u32, u32)> {
        let mut found = Vec::new();
        let mut pending = vec![root.to_owned()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let meta = std::fs::symlink_metadata(&path).unwrap();
                if meta.is_dir() {
                    pending.push(path.clone());
                }
                let content = if meta.is_file() {
                    std::fs::read(&path).unwrap()
                } else {
                    Vec::new()
                };
                found.push((path, content, meta.mode(), meta.uid()));
            }
        }
        found.sort();
        found
    }

    /// A config that sets everything `configure` writes.
    fn full() -> String {
        format!(
            r##"
hostname = "edge-01.example.com"
{}[cloud_init]
user_data = "#cloud-config\nruncmd: [touch, /ok]\n"
"##,
            edge_user_proxy_and_network(HASH, "52:54:00:12:34:56", r#"["192.168.1.1"]"#)
        )
    }

    #[test]
    #[ignore = "needs root: writes root-owned files and chowns to the users' ids"]
    fn new_user_gets_next_ids_groups_shadow_and_a_private_ssh_directory() {
        let root = system();
        configure_root(&config(&full()), root.path()).unwrap();

        // uid above admin's 1000; gid above the largest group id in range (ops, 1004).
        assert!(read(&root, "etc/passwd").ends_with("edge:x:1001:1005::/home/edge:/bin/bash\n"));
        let group = read(&root, "etc/group");
        assert!(group.contains("sudo:x:27:admin,edge\n") && group.contains("docker:x:998:edge\n"));
        assert!(group.ends_with("edge:x:1005:\n"), "{group}");
        assert!(read(&root, "etc/gshadow").contains("sudo:*::admin,edge\n"));
        let shadow = read(&root, "etc/shadow");
        assert!(
            shadow
                .lines()
                .any(|l| l.starts_with(&format!("edge:{HASH}:"))),
            "{shadow}"
        );
        let shadow_meta = std::fs::metadata(root.path().join("etc/shadow")).unwrap();
        assert_eq!(
            shadow_meta.mode() & 0o7777,
            0o640,
            "an existing file keeps its mode"
        );

        for (path, mode) in [
            ("home/edge", 0o700),
            ("home/edge/.ssh", 0o700),
            ("home/edge/.ssh/authorized_keys", 0o600),
        ] {
            let meta = std::fs::metadata(root.path().join(path)).unwrap();
            assert_eq!(
                (meta.mode() & 0o7777, meta.uid(), meta.gid()),
                (mode, 1001, 1005),
                "{path}"
            );
        }
        assert_eq!(
            read(&root, "home/edge/.ssh/authorized_keys"),
            format!("{KEY}\n")
        );
    }

    #[test]
    #[ignore = "needs root: writes root-owned files and chowns to the users' ids"]
    fn hostname_proxy_network_and_cloud_init_files_are_written() {
        let root = system();
        let changes = configure_root(&config(&full()), root.path()).unwrap();
        let changed: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        assert!(
            changed.contains(&"/etc/hostname") && changed.contains(&"/home/edge"),
            "{changed:?}"
        );

        assert_eq!(read(&root, "etc/hostname"), "edge-01.example.com\n");
        assert_eq!(
            read(&root, "etc/hosts"),
            "127.0.0.1\tlocalhost\n127.0.1.1\tedge-01.example.com edge-01\n"
        );
        let environment = read(&root, "etc/environment");
        assert!(environment.contains("http_proxy=http://proxy.example.com:3128\n"));
        assert!(environment.contains("HTTP_PROXY=http://proxy.example.com:3128\n"));
        assert!(environment.contains("NO_PROXY=localhost,.example.com\n"));
        assert!(!read(&root, "etc/profile.d/proxy.sh").contains("https_proxy"));
        assert!(
            read(&root, "etc/profile.d/proxy.sh")
                .contains("export http_proxy=\"http://proxy.example.com:3128\"\n")
        );
        let network = read(&root, "etc/systemd/network/10-bootkit-static.network");
        assert!(
            network.contains("[Match]\nMACAddress=52:54:00:12:34:56\n"),
            "{network}"
        );
        assert!(
            network.contains("Address=192.168.1.10/24\nGateway=192.168.1.1\nDNS=192.168.1.1\n"),
            "{network}"
        );
        let seed = root.path().join("var/lib/cloud/seed/nocloud");
        assert_eq!(
            std::fs::read_to_string(seed.join("user-data")).unwrap(),
            "#cloud-config\nruncmd: [touch, /ok]\n"
        );
        assert_eq!(
            std::fs::read_to_string(seed.join("meta-data")).unwrap(),
            "instance-id: bootkit-edge-01.example.com\nlocal-hostname: edge-01.example.com\n"
        );
        let mode = std::fs::metadata(seed.join("user-data")).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    #[ignore = "needs root: writes root-owned files and chowns to the users' ids"]
    fn applying_the_same_config_twice_changes_nothing_the_second_time() {
        let root = system();
        configure_root(&config(&full()), root.path()).unwrap();
        let after_first = snapshot(root.path());
        let changes = configure_root(&config(&full()), root.path()).unwrap();
        assert!(changes.is_empty(), "second run changed {changes:?}");
        assert_eq!(snapshot(root.path()), after_first);
    }

    #[test]
    #[ignore = "needs root: writes root-owned files and chowns to the users' ids"]
    fn existing_user_keeps_its_ids_and_gets_the_new_password_and_key() {
        let root = system();
        let text = format!(
            "[[users]]\nname = \"admin\"\npassword_hash = \"{HASH}\"\nssh_authorized_keys = [\"{KEY}\"]\n"
        );
        configure_root(&config(&text), root.path()).unwrap();
        let passwd = read(&root, "etc/passwd");
        let admin_lines = passwd.lines().filter(|l| l.starts_with("admin:")).count();
        assert_eq!(admin_lines, 1, "{passwd}");
        assert!(read(&root, "etc/shadow").contains(&format!("admin:{HASH}:")));
        let keys = root.path().join("home/admin/.ssh/authorized_keys");
        let meta = std::fs::metadata(&keys).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (1000, 1000));
    }

    #[test]
    fn a_problem_in_the_installed_system_stops_before_any_file_is_written() {
        let root = system();
        let before = snapshot(root.path());
        let text = "hostname = \"edge\"\n[[users]]\nname = \"edge\"\ngroups = [\"video\"]\n";
        let message = configure_root(&config(text), root.path())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("video") && message.contains("/etc/group"),
            "{message}"
        );
        assert_eq!(snapshot(root.path()), before);
    }

    #[test]
    #[ignore = "needs root: writes root-owned files and chowns to the users' ids"]
    fn sudo_needs_a_sudo_or_wheel_group() {
        let root = system();
        std::fs::write(root.path().join("etc/group"), "root:x:0:\nwheel:x:10:\n").unwrap();
        configure_root(
            &config("[[users]]\nname = \"edge\"\nsudo = true\n"),
            root.path(),
        )
        .unwrap();
        assert!(read(&root, "etc/group").contains("wheel:x:10:edge\n"));

        std::fs::write(root.path().join("etc/group"), "root:x:0:\n").unwrap();
        let message = configure_root(
            &config("[[users]]\nname = \"ops2\"\nsudo = true\n"),
            root.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            message.contains("neither a sudo nor a wheel group"),
            "{message}"
        );
    }

    #[test]
    #[ignore = "needs root: writes root-owned files and chowns to the users' ids"]
    fn an_absolute_symlink_in_the_image_is_resolved_inside_it_not_on_the_host() {
        let root = system();
        let host = tempfile::tempdir().unwrap();
        let host_file = host.path().join("hostname");
        std::fs::write(&host_file, "installer-host\n").unwrap();
        std::os::unix::fs::symlink(&host_file, root.path().join("etc/hostname")).unwrap();
        configure_root(&config("hostname = \"edge\""), root.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(&host_file).unwrap(),
            "installer-host\n"
        );
        assert_eq!(read(&root, "etc/hostname"), "edge\n");
    }

    #[test]
    fn new_ids_skip_system_and_nobody_ids() {
        assert_eq!(
            next_free_id([0, 1, 998, 65534].into_iter()),
            Some(FIRST_USER_ID)
        );
        assert_eq!(next_free_id([0, 1000, 1007, 65534].into_iter()), Some(1008));
        assert_eq!(next_free_id([LAST_USER_ID].into_iter()), None);
    }
}
