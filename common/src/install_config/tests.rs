use super::*;

fn problem(text: &str) -> TomlError {
    match parse(text) {
        Ok(config) => panic!("config accepted but should not be: {config:?}"),
        Err(error) => error,
    }
}

/// Each kind of problem is named with the line and the dotted key that hold it (a key that
/// is absent: the line of its section).
/// Each `(text, line, key, message fragment)`: the config is refused, naming that line and
/// key, with a message that contains the fragment.
fn assert_each_named(cases: &[(&str, usize, &str, &str)]) {
    for &(text, line, key, message) in cases {
        let error = problem(text);
        assert_eq!(
            (error.line, error.key.as_deref()),
            (Some(line), Some(key)),
            "{text}\n{error}"
        );
        assert!(
            error.message.contains(message),
            "{error}\n  lacks: {message}"
        );
    }
}

#[test]
fn a_problem_is_named_with_its_line_and_key() {
    let sha256 = "a".repeat(64);
    let sha256_and_file = format!("[image]\nsha256 = \"{sha256}\"\nsha256_file = \"x\"\n");
    let cases = [
        // A misspelt key, at the top level and in a table.
        (
            "hostname = \"edge\"\nafter = \"reboot\"\nhostnme = \"x\"\n",
            3,
            "hostnme",
            "unknown field `hostnme`",
        ),
        (
            "hostname = \"edge\"\ndisk = { devce = \"/dev/sda\" }\n",
            2,
            "disk.devce",
            "unknown field `devce`",
        ),
        (
            "[disk]\nprefer = \"largest\"\nsize = 5\n",
            3,
            "disk.size",
            "unknown field `size`",
        ),
        // A wrong type or value.
        (
            "[disk]\nmin_size_bytes = \"64G\"\n",
            2,
            "disk.min_size_bytes",
            "",
        ),
        (
            "[disk]\ndevice = \"sda\"\n",
            2,
            "disk.device",
            "absolute device path",
        ),
        (
            "[[users]]\nname = \"edge\"\nsudo = \"yes\"\n",
            3,
            "users[0].sudo",
            "",
        ),
        // Checks across keys point at the key, or at its section when it is absent.
        (
            "[[users]]\nname = \"a\"\n[[users]]\nname = \"a\"\n",
            4,
            "users[1].name",
            "listed twice",
        ),
        (
            "hostname = \"x\"\n\n[network]\naddress = \"10.0.0.5/24\"\n",
            3,
            "network.interface",
            "",
        ),
        (sha256_and_file.as_str(), 2, "image.sha256", ""),
    ];
    assert_each_named(&cases);
}

#[test]
fn a_bad_mac_is_named_with_its_line_and_a_good_one_is_kept_in_networkds_form() {
    let error = problem("[network]\naddress = \"10.0.0.5/24\"\nmac = \"52:54:00:12:34\"\n");
    assert_eq!(
        (error.line, error.key.as_deref()),
        (Some(3), Some("network.mac"))
    );
    assert!(error.message.contains("e.g. 52:54:00:12:34:56"), "{error}");

    let config =
        parse("[network]\nmac = \"52-54-00-AB-cd-EF\"\naddress = \"10.0.0.5/24\"\n").unwrap();
    let mac = config.network.unwrap().mac.unwrap();
    assert_eq!(mac.to_string(), "52:54:00:ab:cd:ef");
}

#[test]
fn an_empty_config_means_the_defaults() {
    let config = parse("").unwrap();
    assert_eq!(config.after, AfterInstall::Poweroff);
    assert_eq!(config.disk.policy.prefer, SizePreference::Smallest);
    assert_eq!(config.boot.label, "Edge Microvisor Toolkit");
    assert!(!config.configures_system());
}

#[test]
fn relative_paths_are_taken_from_the_config_directory() {
    let mut config = parse(
        "[image]\nfile = \"os.raw.gz\"\nbmap = \"/abs/os.raw.bmap\"\n\
         [cloud_init]\nuser_data_file = \"user-data.yaml\"\n",
    )
    .unwrap();
    config.resolve_relative_paths(Path::new("/media/stick"));
    assert_eq!(
        config.image.file,
        Some(PathBuf::from("/media/stick/os.raw.gz"))
    );
    assert_eq!(config.image.bmap, Some(PathBuf::from("/abs/os.raw.bmap")));
    assert_eq!(
        config.cloud_init.unwrap().user_data_file,
        Some(PathBuf::from("/media/stick/user-data.yaml"))
    );
}

#[test]
fn user_data_needs_a_cloud_init_header() {
    assert!(check_user_data("#cloud-config\nruncmd: []\n").is_ok());
    assert!(check_user_data("#!/bin/sh\ntrue\n").is_ok());
    let reason = check_user_data("runcmd: []\n").unwrap_err();
    assert!(reason.contains("#cloud-config"), "{reason}");
}

/// The `[layout]` rules that hold on any disk are refused at parse time (so `bootkit-build`
/// refuses them too), each naming the key and line that breaks it.
#[test]
fn a_broken_layout_is_named_with_its_key_and_line() {
    let cases = [
        (
            "[layout]\ngrow = 3\n[[layout.add]]\nname = \"data\"\n",
            2,
            "layout.grow",
            "only one can have the free space; give `data` a size_mib",
        ),
        (
            "[[layout.add]]\nname = \"a\"\n[[layout.add]]\nname = \"b\"\nsize_mib = 1\n",
            1,
            "layout.add[0].size_mib",
            "`a` has no size_mib",
        ),
        (
            "[[layout.add]]\nname = \"a\"\nsize_mib = 0\n",
            3,
            "layout.add[0].size_mib",
            "`a` has size_mib = 0",
        ),
        (
            &format!(
                "[[layout.add]]\nname = \"{}\"\nsize_mib = 1\n",
                "x".repeat(37)
            ),
            2,
            "layout.add[0].name",
            "must be 1 to 36 characters",
        ),
        (
            "[[layout.add]]\nname = \"a\"\ntype_guid = \"linux\"\n",
            3,
            "layout.add[0].type_guid",
            "\"linux\" is not a partition type GUID",
        ),
        (
            "[[layout.add]]\nname = \"a\"\ntype_guid = \"00000000-0000-0000-0000-000000000000\"\n",
            3,
            "layout.add[0].type_guid",
            "is not a partition type GUID",
        ),
    ];
    assert_each_named(&cases);
}

#[test]
fn an_added_partition_without_a_type_is_linux_filesystem_data() {
    let config = parse(
        "[layout]\ngrow = 3\n[[layout.add]]\nname = \"rootfs_b\"\nsize_mib = 4\n\
         [[layout.add]]\nname = \"esp_b\"\nsize_mib = 1\n\
         type_guid = \"c12a7328-f81f-11d2-ba4b-00a0c93ec93b\"\n",
    )
    .unwrap();
    let [rootfs_b, esp_b] = &config.layout.add[..] else {
        panic!("two partitions expected: {:?}", config.layout.add);
    };
    assert_eq!(
        rootfs_b.partition_type(),
        PartitionType::LINUX_FILESYSTEM.parse().unwrap()
    );
    // GPT stores the first three fields little-endian.
    assert_eq!(
        esp_b.partition_type().gpt_bytes()[..4],
        [0x28, 0x73, 0x2a, 0xc1]
    );
}
