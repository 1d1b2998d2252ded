//! The manifest source: ordinary Kubernetes YAML or JSON, in files and directories, read
//! into typed objects for the store.
//!
//! Each document is decoded on its own, so one bad resource is reported (naming its kind,
//! namespace, name and the field) and skipped while the rest of the file still loads. A file
//! that is not YAML at all is reported as a whole.

mod decode;
mod discover;
mod source;

use std::path::{Path, PathBuf};

use sluice_config::Diagnostic;
use sluice_store::Object;

pub use decode::decode_documents;
pub use discover::manifest_files;
pub use source::{Changes, ManifestSource};

/// Largest manifest file read; anything bigger is rejected rather than exhausting memory.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The objects of one file, or why the file as a whole could not be read.
#[derive(Debug)]
pub struct FileObjects {
    /// The file.
    pub path: PathBuf,
    /// Its objects, in document order.
    pub objects: Vec<Object>,
    /// Problems with single documents (the rest of the file still loaded).
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads and decodes one manifest file.
pub fn read_file(path: &Path) -> Result<FileObjects, Diagnostic> {
    let fail = |reason: String| Diagnostic::file(path.to_owned(), reason);
    let size = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?.len();
    if size > MAX_FILE_BYTES {
        return Err(fail(format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let (objects, diagnostics) = decode_documents(&text, is_json).map_err(fail)?;
    Ok(FileObjects { path: path.to_owned(), objects, diagnostics })
}
