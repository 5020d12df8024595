//! Registration and matching: what an operator may register, which registration a booting
//! node gets, and OEP's CSV import.

mod common;

use common::TestDb;
use common::fleet::{PROFILE, create_profile};
use provisioner::store::{Identity, ProfileSpec, RegistrationSpec, Store, StoreError};

const SERIAL: &str = "SN-1001";
const UUID: &str = "4c4c4544-0042-3510-8051-b7c04f4e5931";
const NODE_MAC: &str = "52:54:00:aa:bb:01";

fn by(
    serial: Option<&str>,
    uuid: Option<&str>,
    mac: Option<&str>,
    profile: &str,
) -> RegistrationSpec {
    RegistrationSpec {
        serial: serial.map(Into::into),
        uuid: uuid.map(Into::into),
        mac: mac.map(Into::into),
        profile: profile.into(),
        ..Default::default()
    }
}

/// A second profile, "other", next to the default "edge".
fn two_profiles(store: &Store, dir: &std::path::Path) {
    create_profile(store, dir);
    let edge = store.get_profile(PROFILE).unwrap();
    store
        .create_profile(&ProfileSpec {
            name: "other".into(),
            kernel: edge.kernel,
            initramfs: edge.initramfs,
            template: edge.template_id,
            os_image: "https://images.example/other.img".into(),
            ..Default::default()
        })
        .unwrap();
}

#[test]
fn a_profile_names_the_field_that_is_wrong_and_stores_nothing() {
    let db = TestDb::new();
    let store = db.open();
    create_profile(&store, db.dir.path());
    let edge = store.get_profile(PROFILE).unwrap();
    let valid = ProfileSpec {
        name: "p2".into(),
        kernel: edge.kernel.clone(),
        initramfs: edge.initramfs.clone(),
        template: "three-actions".into(),
        os_image: "http://images.example/os.img".into(),
        ..Default::default()
    };
    let missing = common::fleet::artifacts_dir(db.dir.path())
        .join("no-such-kernel")
        .display()
        .to_string();
    let cases = [
        (
            ProfileSpec {
                name: "a b".into(),
                ..valid.clone()
            },
            "name:",
        ),
        (
            ProfileSpec {
                kernel: missing.clone(),
                ..valid.clone()
            },
            "kernel: cannot read",
        ),
        (
            ProfileSpec {
                initramfs: "".into(),
                ..valid.clone()
            },
            "initramfs: empty",
        ),
        (
            ProfileSpec {
                template: "nope".into(),
                ..valid.clone()
            },
            "template: no template",
        ),
        (
            ProfileSpec {
                os_image: missing.clone(),
                ..valid.clone()
            },
            "os_image: cannot read",
        ),
        (
            ProfileSpec {
                os_image_sha256: Some("abc".into()),
                ..valid.clone()
            },
            "os_image_sha256:",
        ),
    ];
    for (spec, expected) in cases {
        let error = store.create_profile(&spec).unwrap_err();
        assert!(matches!(error, StoreError::Invalid(_)), "{error:?}");
        assert!(
            error.to_string().starts_with(expected),
            "{error} should start with {expected}"
        );
    }
    assert!(
        store
            .create_profile(&ProfileSpec {
                name: PROFILE.into(),
                ..valid.clone()
            })
            .unwrap_err()
            .to_string()
            .contains("already exists")
    );
    assert_eq!(store.list_profiles().unwrap().len(), 1);
    // The template is found by name and stored by id.
    let created = store.create_profile(&valid).unwrap();
    assert_eq!(created.template_id, edge.template_id);
}

#[test]
fn at_most_one_profile_is_the_default_and_a_used_profile_cannot_be_deleted() {
    let db = TestDb::new();
    let store = db.open();
    two_profiles(&store, db.dir.path());
    assert_eq!(store.default_profile().unwrap().unwrap().name, PROFILE);
    store.set_default_profile(Some("other")).unwrap();
    let defaults: Vec<_> = store
        .list_profiles()
        .unwrap()
        .into_iter()
        .filter(|p| p.is_default)
        .map(|p| p.name)
        .collect();
    assert_eq!(defaults, ["other"]);
    store.set_default_profile(None).unwrap();
    assert_eq!(store.default_profile().unwrap(), None);

    let registered = store
        .register(&by(Some(SERIAL), None, None, "other"))
        .unwrap();
    let error = store.delete_profile("other").unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert!(
        error.to_string().contains(&registered.registration.id),
        "{error}"
    );
    store
        .delete_registration(&registered.registration.id)
        .unwrap();
    store.delete_profile("other").unwrap();
}

#[test]
fn placeholders_and_empty_identities_are_refused_as_registrations() {
    let db = TestDb::new();
    let store = db.open();
    create_profile(&store, db.dir.path());
    let error = store
        .register(&by(Some("To Be Filled By O.E.M."), None, None, PROFILE))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "serial: serial \"To Be Filled By O.E.M.\" is an OEM placeholder, not a serial; register this node by UUID or MAC"
    );
    for serial in [
        "Default string",
        "System Serial Number",
        "0",
        "None",
        "N/A",
        "00000000",
    ] {
        let error = store
            .register(&by(Some(serial), None, None, PROFILE))
            .unwrap_err();
        assert!(
            error.to_string().contains("OEM placeholder"),
            "{serial}: {error}"
        );
    }
    let zeros = store
        .register(&by(
            None,
            Some("00000000-0000-0000-0000-000000000000"),
            None,
            PROFILE,
        ))
        .unwrap_err();
    assert!(zeros.to_string().starts_with("uuid:"), "{zeros}");
    let nothing = store.register(&by(None, None, None, PROFILE)).unwrap_err();
    assert!(
        nothing
            .to_string()
            .contains("at least one of serial, UUID and MAC"),
        "{nothing}"
    );
    let unknown_profile = store
        .register(&by(Some(SERIAL), None, None, "nope"))
        .unwrap_err();
    assert!(
        unknown_profile
            .to_string()
            .starts_with("profile: no profile named"),
        "{unknown_profile}"
    );
    assert!(store.list_registrations().unwrap().is_empty());

    // Placeholders a node reports are dropped, so they never match anything.
    let identity = Identity::new(
        Some("Default string"),
        Some("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"),
        &["52-54-00-AA-BB-01"],
    );
    assert_eq!(
        identity,
        Identity {
            serial: None,
            uuid: None,
            macs: vec![NODE_MAC.into()]
        }
    );
}

#[test]
fn one_identity_is_registered_once_and_macs_and_uuids_are_normalized() {
    let db = TestDb::new();
    let store = db.open();
    create_profile(&store, db.dir.path());
    let first = store
        .register(&by(
            None,
            Some(&UUID.to_uppercase()),
            Some("52-54-00-AA-BB-01"),
            PROFILE,
        ))
        .unwrap()
        .registration;
    assert_eq!(first.uuid.as_deref(), Some(UUID));
    assert_eq!(first.mac.as_deref(), Some(NODE_MAC));
    let error = store
        .register(&by(Some(SERIAL), None, Some(NODE_MAC), PROFILE))
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert!(
        error.to_string().starts_with(&format!(
            "MAC {NODE_MAC} is already registered as {}",
            first.id
        )),
        "{error}"
    );
    assert_eq!(store.list_registrations().unwrap(), [first]);
}

#[test]
fn the_most_specific_registration_wins() {
    let db = TestDb::new();
    let store = db.open();
    two_profiles(&store, db.dir.path());
    let both = store
        .register(&by(Some(SERIAL), Some(UUID), None, "other"))
        .unwrap()
        .registration;
    let mac_only = store
        .register(&by(None, None, Some(NODE_MAC), PROFILE))
        .unwrap()
        .registration;

    let everything = Identity::new(Some(SERIAL), Some(UUID), &[NODE_MAC]);
    let matched = store.match_identity(&everything).unwrap();
    assert_eq!(matched.registration.as_ref(), Some(&both));
    assert_eq!(matched.profile.name, "other");

    let mac_and_uuid = Identity::new(None, Some(UUID), &[NODE_MAC]);
    let error = store.match_identity(&mac_and_uuid).unwrap_err();
    assert!(
        matches!(error, StoreError::Conflict(_)),
        "a tie is a conflict: {error:?}"
    );

    let just_the_mac = Identity::new(
        Some("Default string"),
        None,
        &["00:11:22:33:44:55", NODE_MAC],
    );
    assert_eq!(
        store.match_identity(&just_the_mac).unwrap().registration,
        Some(mac_only)
    );
}

#[test]
fn serial_and_uuid_naming_different_registrations_is_a_conflict_that_says_which() {
    let db = TestDb::new();
    let store = db.open();
    two_profiles(&store, db.dir.path());
    let a = store
        .register(&by(Some(SERIAL), None, None, PROFILE))
        .unwrap()
        .registration;
    let b = store
        .register(&by(None, Some(UUID), None, "other"))
        .unwrap()
        .registration;
    let error = store
        .match_identity(&Identity::new(Some(SERIAL), Some(UUID), &[]))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "serial {SERIAL} is registered as {} (profile edge) but UUID {UUID} is registered as {} (profile other); delete one",
            a.id, b.id
        )
    );
}

#[test]
fn an_unregistered_node_gets_the_default_profile_or_is_refused() {
    let db = TestDb::new();
    let store = db.open();
    create_profile(&store, db.dir.path());
    let stranger = Identity::new(Some("SN-9"), Some(UUID), &[NODE_MAC]);
    let matched = store.match_identity(&stranger).unwrap();
    assert_eq!(
        (matched.registration, matched.profile.name.as_str()),
        (None, PROFILE)
    );

    store.set_default_profile(None).unwrap();
    let error = store.match_identity(&stranger).unwrap_err();
    assert!(
        matches!(error, StoreError::PermissionDenied(_)),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "node with serial SN-9, UUID {UUID}, MAC {NODE_MAC} is not registered and no default profile is set: register it, or set a default profile"
        )
    );
}

#[test]
fn csv_import_reads_oep_files_with_or_without_header() {
    let db = TestDb::new();
    let store = db.open();
    two_profiles(&store, db.dir.path());
    // Site, Secure, RemoteUser and Metadata are OEP's own columns, kept as metadata; any other
    // metadata column is named meta.KEY (a column that is neither is refused, see below).
    let with_header = "serial,uuid,OSPROFILE,Site,Secure,RemoteUser,Metadata,Mac,meta.rack\n\
        SN-1,,edge,\"Lab, building 2\",true,admin,\"{\"\"k\"\":\"\"v\"\"}\",52:54:00:00:10:01,r7\n\
        ,4c4c4544-0042-3510-8051-b7c04f4e5931,other,,,,,,\n";
    let imported = store.import_registrations(with_header).unwrap();
    assert_eq!(imported.len(), 2);
    let first = &imported[0].registration;
    assert_eq!(first.serial.as_deref(), Some("SN-1"));
    assert_eq!(first.uuid, None);
    assert_eq!(first.mac.as_deref(), Some("52:54:00:00:10:01"));
    assert_eq!(first.metadata["site"], "Lab, building 2");
    assert_eq!(first.metadata["metadata"], "{\"k\":\"v\"}");
    assert_eq!(first.metadata["remoteuser"], "admin");
    assert_eq!(first.metadata["rack"], "r7");
    assert_eq!(imported[1].registration.profile, "other");

    let without_header = "SN-2,,edge\nSN-3,,other,site-b\n";
    let imported = store.import_registrations(without_header).unwrap();
    assert_eq!(imported[1].registration.serial.as_deref(), Some("SN-3"));
    assert_eq!(imported[1].registration.metadata["site"], "site-b");
    assert_eq!(store.list_registrations().unwrap().len(), 4);
}

#[test]
fn a_bad_csv_row_names_its_line_and_column_and_nothing_is_stored() {
    let db = TestDb::new();
    let store = db.open();
    create_profile(&store, db.dir.path());
    let cases = [
        (
            "Serial,UUID,OSProfile\nSN-1,,edge\nTo Be Filled By O.E.M.,,edge\n",
            "line 3, column Serial: serial \"To Be Filled By O.E.M.\" is an OEM placeholder",
        ),
        (
            "Serial,UUID,OSProfile\nSN-1,,edge\nSN-2,not-a-uuid,edge\n",
            "line 3, column UUID:",
        ),
        ("SN-1,,edge\nSN-2,,\n", "line 2, column OSProfile: empty"),
        (
            "Serial,OSProfile,MAC\nSN-1,edge,52:54:00:00:10:01\nSN-2,edge,zz\n",
            "line 3, column MAC:",
        ),
        (
            "Serial,OSProfile\nSN-1,edge\nSN-1,edge\n",
            "line 3: serial SN-1 is on line 2 of this file too",
        ),
    ];
    for (csv, expected) in cases {
        let error = store.import_registrations(csv).unwrap_err();
        assert!(
            error.to_string().starts_with(expected),
            "{error} should start with {expected}"
        );
        assert!(
            store.list_registrations().unwrap().is_empty(),
            "nothing of {csv:?} is stored"
        );
    }
}
