//! Where the image comes from: `--image` names a local file, a block device (an NBD device
//! the init attached, a partition) or an http(s) URL.

use std::fmt;
use std::io::{self, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

mod file;
pub mod http;

use http::{HttpError, HttpOptions};

/// A parsed `--image` (or `IMG_URL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// A regular file.
    File(PathBuf),
    /// A block device (an image already on a disk or USB stick).
    BlockDevice(PathBuf),
    /// An http:// or https:// URL.
    Url(String),
}

/// Why the image source cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The path does not exist.
    #[error("the image {0} does not exist; give a file, a block device or an http(s) URL")]
    NotFound(PathBuf),
    /// The path is neither a file nor a block device.
    #[error("the image {0} is not a file or a block device")]
    NotAFile(PathBuf),
    /// The path cannot be opened.
    #[error("cannot open the image {path}")]
    Open {
        /// The path as given.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A URL with a scheme other than http or https; carries it.
    #[error("{0:?} is not a URL the installer can fetch: only http:// and https:// are")]
    UnsupportedScheme(String),
    /// Fetching the URL failed.
    #[error(transparent)]
    Http(#[from] HttpError),
}

/// An opened image stream.
pub struct Source {
    /// The image's bytes, as the source gives them (possibly compressed).
    pub reader: Box<dyn Read + Send>,
    /// Bytes the source will give, when known (a file's size, a Content-Length).
    pub length: Option<u64>,
}

impl SourceSpec {
    /// `http://` and `https://` are URLs (`file://` is a path); anything else must exist.
    pub fn parse(text: &str) -> Result<SourceSpec, SourceError> {
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Ok(SourceSpec::Url(text.to_string()));
        }
        let path_text = text.strip_prefix("file://").unwrap_or(text);
        if path_text.contains("://") {
            return Err(SourceError::UnsupportedScheme(text.to_string()));
        }
        let path = PathBuf::from(path_text);
        let metadata = std::fs::metadata(&path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => SourceError::NotFound(path.clone()),
            _ => SourceError::Open {
                path: path.clone(),
                source,
            },
        })?;
        let kind = metadata.file_type();
        if kind.is_block_device() {
            Ok(SourceSpec::BlockDevice(path))
        } else if kind.is_file() {
            Ok(SourceSpec::File(path))
        } else {
            Err(SourceError::NotAFile(path))
        }
    }

    /// The image's file name (for its line in a sha256sum file), when it has one.
    pub fn file_name(&self) -> Option<String> {
        let name = match self {
            SourceSpec::File(path) | SourceSpec::BlockDevice(path) => {
                path.file_name()?.to_string_lossy().into_owned()
            }
            SourceSpec::Url(url) => {
                let path = url.split(['?', '#']).next()?;
                path.rsplit('/').next()?.to_string()
            }
        };
        (!name.is_empty()).then_some(name)
    }

    /// The local path, for a file or a device.
    pub fn path(&self) -> Option<&Path> {
        match self {
            SourceSpec::File(path) | SourceSpec::BlockDevice(path) => Some(path),
            SourceSpec::Url(_) => None,
        }
    }

    /// `file`, `block device` or `URL`, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSpec::File(_) => "file",
            SourceSpec::BlockDevice(_) => "block device",
            SourceSpec::Url(_) => "URL",
        }
    }

    /// Open the stream; `http` says how URLs are fetched.
    pub fn open(&self, http: &HttpOptions) -> Result<Source, SourceError> {
        match self {
            SourceSpec::File(path) | SourceSpec::BlockDevice(path) => file::open(path),
            SourceSpec::Url(url) => {
                let reader = http::open(url, http)?;
                Ok(Source {
                    length: reader.content_length(),
                    reader: Box::new(reader),
                })
            }
        }
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::File(path) | SourceSpec::BlockDevice(path) => path.display().fmt(f),
            SourceSpec::Url(url) => f.write_str(url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_files_and_devices_are_told_apart() {
        assert_eq!(
            SourceSpec::parse("HTTPS://example.test/os.raw.gz?x=1").unwrap(),
            SourceSpec::Url("HTTPS://example.test/os.raw.gz?x=1".into())
        );
        let file = tempfile::NamedTempFile::new().unwrap();
        let url = format!("file://{}", file.path().display());
        assert_eq!(
            SourceSpec::parse(&url).unwrap(),
            SourceSpec::File(file.path().to_path_buf())
        );
        assert!(matches!(
            SourceSpec::parse("/dev/null").unwrap_err(),
            SourceError::NotAFile(_)
        ));
        assert!(matches!(
            SourceSpec::parse("/nonexistent/os.raw").unwrap_err(),
            SourceError::NotFound(_)
        ));
        assert!(matches!(
            SourceSpec::parse("ftp://host/os.raw").unwrap_err(),
            SourceError::UnsupportedScheme(_)
        ));
    }

    #[test]
    fn the_file_name_is_the_last_path_segment() {
        let url = SourceSpec::Url("http://host/images/os.raw.gz?token=1".into());
        assert_eq!(url.file_name().as_deref(), Some("os.raw.gz"));
        let path = SourceSpec::File("/data/os.raw.zst".into());
        assert_eq!(path.file_name().as_deref(), Some("os.raw.zst"));
    }

    #[test]
    fn a_file_source_knows_its_length() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), b"image bytes").unwrap();
        let source = SourceSpec::File(file.path().to_path_buf())
            .open(&HttpOptions::default())
            .unwrap();
        assert_eq!(source.length, Some(11));
    }
}
