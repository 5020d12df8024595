//! Fuzzes the provisioner's TFTP packet handling (`bootkit_tftp`): the request parser, the
//! option negotiation and OACK it leads to, the file lookup confined to the root, and the
//! parser of what a client sends during a transfer. Arbitrary bytes must give a request or a
//! "malformed" answer, never a panic, and a negotiated transfer stays inside the limits.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use bootkit_tftp::fuzzing::{negotiate, oack, open_beneath, parse_reply, parse_request};
use bootkit_tftp::{MAX_BLKSIZE, MAX_WINDOWSIZE};
use libfuzzer_sys::fuzz_target;

/// A TFTP root with one file, as the server serves iPXE from.
fn root() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        // One fixed directory that every run shares (and rewrites the same way), so runs
        // leave nothing behind but it.
        let root = std::env::temp_dir().join("bootkit-fuzz-tftp");
        std::fs::create_dir_all(root.join("efi")).expect("create the TFTP root");
        std::fs::write(root.join("ipxe.efi"), b"MZ").expect("write a file to serve");
        root
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = parse_request(data) {
        let negotiated = negotiate(&request.options, 2);
        assert!((8..=MAX_BLKSIZE).contains(&negotiated.blksize));
        assert!((1..=MAX_WINDOWSIZE).contains(&negotiated.windowsize));
        let _ = oack(&negotiated.acknowledged);
        if !request.write {
            // The root holds one file and no links: whatever name opens, it is that file.
            if let Ok((_file, size)) = open_beneath(root(), &request.filename) {
                assert_eq!(size, 2, "{:?} opened something else", request.filename);
            }
        }
    }
    let _ = parse_reply(data);
});
