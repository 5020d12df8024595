//! A local image: a file, or a block device holding the raw image (an NBD device the init
//! attached, a partition).

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::Path;

use super::{Source, SourceError};

pub fn open(path: &Path) -> Result<Source, SourceError> {
    let error = |source| SourceError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(error)?;
    // A block device's metadata says 0 bytes; its end says how large it is.
    let length = file.seek(SeekFrom::End(0)).map_err(error)?;
    file.seek(SeekFrom::Start(0)).map_err(error)?;
    Ok(Source {
        reader: Box::new(file),
        length: Some(length),
    })
}
