//! Reading files from strangers (personas, saves) with a size cap.

use std::io::Read;
use std::path::Path;

/// The bytes of the regular file at `path`, refused when it holds more than `max` bytes. A
/// device, FIFO or directory is refused before it is opened for reading (it has no size to
/// check, and opening a FIFO waits for a writer), and the read stops at the cap even if the file
/// grows meanwhile.
pub(crate) fn read_capped(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let not_regular = || std::io::Error::other("not a regular file");
    if !std::fs::metadata(path)?.is_file() {
        return Err(not_regular());
    }
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    let too_large = |len: u64| {
        std::io::Error::other(format!(
            "{len} bytes; Kiln reads such files of at most {max} bytes"
        ))
    };
    if meta.len() > max {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}
