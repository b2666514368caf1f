//! A small reader of GGUF headers, run before llama.cpp sees a file, so that a missing, empty,
//! truncated or foreign file gets an error that says exactly what is wrong and where.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::ModelError;

/// What the header says about a model file.
#[derive(Debug, Clone)]
pub(crate) struct GgufSummary {
    /// `general.architecture`, when present.
    pub architecture: Option<String>,
    /// `general.name`, when present.
    pub name: Option<String>,
    /// Whether `tokenizer.chat_template` is present.
    pub has_chat_template: bool,
    /// Number of tensors.
    pub tensor_count: u64,
    /// SHA-256 of the header bytes (metadata and tensor table): identifies the model cheaply.
    pub header_sha256: [u8; 32],
}

/// Hard limits that keep a hostile header from allocating without bound.
const MAX_COUNT: u64 = 1 << 24;
const MAX_STRING: u64 = 1 << 26;

struct Reader<'a> {
    inner: BufReader<File>,
    path: &'a Path,
    pos: u64,
    len: u64,
    hasher: Sha256,
}

impl Reader<'_> {
    fn truncated(&self, what: &str, needed: u64) -> ModelError {
        ModelError::Truncated {
            path: self.path.to_path_buf(),
            what: what.to_string(),
            needed,
            actual: self.len,
        }
    }

    fn malformed(&self, offset: u64, reason: impl Into<String>) -> ModelError {
        ModelError::Malformed {
            path: self.path.to_path_buf(),
            offset,
            reason: reason.into(),
        }
    }

    fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>, ModelError> {
        if self.pos + n > self.len {
            return Err(self.truncated(what, self.pos + n));
        }
        let mut buf = vec![0u8; n as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|source| ModelError::Io {
                path: self.path.to_path_buf(),
                source,
            })?;
        self.hasher.update(&buf);
        self.pos += n;
        Ok(buf)
    }

    fn u32(&mut self, what: &str) -> Result<u32, ModelError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, ModelError> {
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&b);
        Ok(u64::from_le_bytes(a))
    }

    fn string(&mut self, what: &str) -> Result<String, ModelError> {
        let at = self.pos;
        let n = self.u64(what)?;
        if n > MAX_STRING {
            return Err(self.malformed(at, format!("{what} claims {n} bytes")));
        }
        let b = self.bytes(n, what)?;
        String::from_utf8(b).map_err(|_| self.malformed(at, format!("{what} is not UTF-8")))
    }

    /// Reads (and mostly discards) one metadata value of type `ty`; returns it when it is a
    /// string or an unsigned integer, the only kinds the summary needs.
    fn value(&mut self, ty: u32, key: &str) -> Result<Value, ModelError> {
        let at = self.pos;
        let fixed = |ty: u32| -> Option<u64> {
            match ty {
                0 | 1 | 7 => Some(1),
                2 | 3 => Some(2),
                4..=6 => Some(4),
                10..=12 => Some(8),
                _ => None,
            }
        };
        match ty {
            4 => Ok(Value::Uint(u64::from(self.u32(key)?))),
            10 => Ok(Value::Uint(self.u64(key)?)),
            8 => Ok(Value::Str(self.string(key)?)),
            9 => {
                let elem = self.u32(key)?;
                let n = self.u64(key)?;
                if n > MAX_COUNT * 4 {
                    return Err(self.malformed(at, format!("array `{key}` claims {n} elements")));
                }
                if let Some(size) = fixed(elem) {
                    self.bytes(n * size, key)?;
                } else if elem == 8 {
                    for _ in 0..n {
                        self.string(key)?;
                    }
                } else {
                    return Err(
                        self.malformed(at, format!("array `{key}` has element type {elem}"))
                    );
                }
                Ok(Value::Other)
            }
            t => match fixed(t) {
                Some(size) => {
                    self.bytes(size, key)?;
                    Ok(Value::Other)
                }
                // The type field is the four bytes just read.
                None => Err(self.malformed(
                    at.saturating_sub(4),
                    format!("key `{key}` has unknown value type {t}"),
                )),
            },
        }
    }
}

enum Value {
    Uint(u64),
    Str(String),
    Other,
}

/// Bytes per block and elements per block of ggml tensor types, for the types GGUF files commonly
/// hold. Unknown types are skipped by the size check (llama.cpp still checks them).
fn type_block(ty: u32) -> Option<(u64, u64)> {
    Some(match ty {
        0 => (4, 1),      // F32
        1 => (2, 1),      // F16
        2 => (18, 32),    // Q4_0
        3 => (20, 32),    // Q4_1
        6 => (22, 32),    // Q5_0
        7 => (24, 32),    // Q5_1
        8 => (34, 32),    // Q8_0
        9 => (36, 32),    // Q8_1
        10 => (84, 256),  // Q2_K
        11 => (110, 256), // Q3_K
        12 => (144, 256), // Q4_K
        13 => (176, 256), // Q5_K
        14 => (210, 256), // Q6_K
        15 => (292, 256), // Q8_K
        24 => (1, 1),     // I8
        25 => (2, 1),     // I16
        26 => (4, 1),     // I32
        27 => (8, 1),     // I64
        28 => (8, 1),     // F64
        30 => (2, 1),     // BF16
        _ => return None,
    })
}

/// Checks that `path` is a complete GGUF file and summarises its header.
pub(crate) fn inspect(path: &Path) -> Result<GgufSummary, ModelError> {
    let p: PathBuf = path.to_path_buf();
    let meta = std::fs::metadata(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ModelError::NotFound { path: p.clone() },
        _ => ModelError::Io {
            path: p.clone(),
            source,
        },
    })?;
    if meta.is_dir() {
        return Err(ModelError::Io {
            path: p,
            source: std::io::Error::other("is a directory, not a file"),
        });
    }
    let len = meta.len();
    if len == 0 {
        return Err(ModelError::Empty { path: p });
    }
    let file = File::open(path).map_err(|source| ModelError::Io {
        path: p.clone(),
        source,
    })?;
    let mut r = Reader {
        inner: BufReader::with_capacity(1 << 16, file),
        path,
        pos: 0,
        len,
        hasher: Sha256::new(),
    };

    let head = r.bytes(len.min(4), "the GGUF magic")?;
    if head.as_slice() != b"GGUF" {
        let found = head
            .iter()
            .map(|b| {
                if b.is_ascii_graphic() {
                    (*b as char).to_string()
                } else {
                    format!("\\x{b:02x}")
                }
            })
            .collect::<String>();
        return Err(ModelError::NotGguf {
            path: p,
            found: format!("\"{found}\""),
        });
    }
    let version = r.u32("the GGUF version")?;
    if !(2..=3).contains(&version) {
        return Err(ModelError::UnsupportedVersion { path: p, version });
    }
    let tensor_count = r.u64("the tensor count")?;
    let kv_count = r.u64("the metadata count")?;
    if tensor_count > MAX_COUNT || kv_count > MAX_COUNT {
        return Err(r.malformed(16, format!("{tensor_count} tensors / {kv_count} keys")));
    }

    let mut alignment = 32u64;
    let mut architecture = None;
    let mut name = None;
    let mut has_chat_template = false;
    for _ in 0..kv_count {
        let key = r.string("a metadata key")?;
        let ty = r.u32(&key)?;
        match (key.as_str(), r.value(ty, &key)?) {
            ("general.alignment", Value::Uint(a)) if a.is_power_of_two() => alignment = a,
            ("general.alignment", _) => {
                return Err(r.malformed(r.pos, "general.alignment is not a power of two"));
            }
            ("general.architecture", Value::Str(s)) => architecture = Some(s),
            ("general.name", Value::Str(s)) => name = Some(s),
            ("tokenizer.chat_template", Value::Str(_)) => has_chat_template = true,
            _ => {}
        }
    }

    let mut data_end = 0u64;
    for _ in 0..tensor_count {
        let name = r.string("a tensor name")?;
        let at = r.pos;
        let n_dims = r.u32(&name)?;
        if n_dims > 8 {
            return Err(r.malformed(at, format!("tensor `{name}` has {n_dims} dimensions")));
        }
        // Every product is checked: a crafted header may claim any dimensions.
        let mut elements = 1u64;
        for _ in 0..n_dims {
            let dim = r.u64(&name)?;
            elements = elements.checked_mul(dim).ok_or_else(|| {
                r.malformed(
                    at,
                    format!("tensor `{name}` claims more elements than exist"),
                )
            })?;
        }
        let ty = r.u32(&name)?;
        let offset = r.u64(&name)?;
        let size = match type_block(ty) {
            Some((bytes, block)) => elements.div_ceil(block).checked_mul(bytes),
            None => Some(0),
        };
        let end = size.and_then(|s| offset.checked_add(s)).ok_or_else(|| {
            r.malformed(at, format!("tensor `{name}` claims more bytes than exist"))
        })?;
        data_end = data_end.max(end);
    }
    let data_start = r
        .pos
        .div_ceil(alignment)
        .checked_mul(alignment)
        .ok_or_else(|| r.malformed(r.pos, "general.alignment is too large"))?;
    let needed = data_start.saturating_add(data_end);
    if needed > len {
        return Err(r.truncated(&format!("tensor data for {tensor_count} tensors"), needed));
    }

    Ok(GgufSummary {
        architecture,
        name,
        has_chat_template,
        tensor_count,
        header_sha256: r.hasher.finalize().into(),
    })
}
