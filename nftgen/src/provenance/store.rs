//! Content store: generated PNGs and their token metadata on disk, addressed by content.
//!
//! ```text
//! <store>/<content-hash>.png    the image, with its record embedded (png_io)
//! <store>/<content-hash>.json   ERC-721 / ERC-7007 metadata JSON for it
//! <store>/tokens/<token-id>.json  the same metadata under the token's id (what `tokenURI` names)
//! ```
//!
//! Every file is written to a temporary name and renamed, so a crash leaves either the old file
//! or the new one. Each file also has an IPFS CIDv1 ([`cid_v1`]) so `ipfs://` URIs can name it:
//! the PNG's CID is the metadata's `image`.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{ContentHash, GeneratedArt, GenerationRecord, TokenId, png_io};

/// Largest file [`cid_v1`] names: IPFS stores a file up to its default chunk size (256 KiB) as
/// one raw block, whose CID is computed here without any IPFS software.
pub const CID_MAX_BYTES: usize = 256 * 1024;

/// Storing or reading content failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file or directory could not be read or written.
    #[error("content store: {path}: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The image could not be encoded.
    #[error("content store: {0}")]
    Png(#[from] crate::PngError),
}

/// The CIDv1 (base32, raw codec, sha2-256) of `bytes`: what `ipfs add --cid-version=1
/// --raw-leaves` prints for a file of these bytes. `None` above [`CID_MAX_BYTES`], where IPFS
/// splits the file into a DAG of blocks.
pub fn cid_v1(bytes: &[u8]) -> Option<String> {
    if bytes.len() > CID_MAX_BYTES {
        return None;
    }
    // version 1, codec raw (0x55), multihash sha2-256 (0x12) of 32 bytes (0x20), digest.
    let mut cid = vec![0x01, 0x55, 0x12, 0x20];
    cid.extend_from_slice(&Sha256::digest(bytes));
    Some(format!("b{}", base32_lower(&cid)))
}

/// RFC 4648 base32, lower case, no padding (multibase `b`).
fn base32_lower(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// One `attributes` entry of ERC-721 metadata.
#[derive(Debug, Clone, Serialize)]
struct Attribute {
    trait_type: &'static str,
    value: serde_json::Value,
}

/// Token metadata: ERC-721 metadata JSON with attributes, plus ERC-7007's fields as the ERC's
/// metadata schema defines them.
#[derive(Debug, Clone, Serialize)]
struct Metadata<'a> {
    name: String,
    description: String,
    image: String,
    attributes: Vec<Attribute>,
    /// ERC-7007: the prompt the content was generated from.
    prompt: &'a str,
    /// ERC-7007: the kind of content (`image`).
    aigc_type: &'static str,
    /// ERC-7007: a URI of the content itself (the PNG, as `image` names it).
    aigc_data: String,
    /// ERC-7007: how a claim is checked. "fraud" (opML): anyone re-runs the recipe and compares.
    proof_type: &'static str,
    /// The content hash of the pixels the token pins (also an attribute).
    kiln_content_hash: ContentHash,
    /// The complete record, so the metadata alone is enough to reproduce the image.
    kiln_record: &'a GenerationRecord,
    /// The canonical recipe bytes (0x-hex) whose keccak256 is the token id.
    kiln_recipe: String,
}

/// The metadata JSON of `art`, whose PNG has IPFS CID `png_cid` (when it has one).
pub fn metadata_json(art: &GeneratedArt, png_cid: Option<&str>) -> String {
    let r = &art.record;
    let attr = |trait_type, value: serde_json::Value| Attribute { trait_type, value };
    let mut attributes = vec![
        attr("model", r.model.id.clone().into()),
        attr("model sha256", r.model.sha256.to_string().into()),
        attr("seed", r.seed.to_string().into()),
        attr("scheduler", r.scheduler.as_str().into()),
        attr("steps", r.steps.into()),
        attr("guidance", f64::from(r.guidance).into()),
        attr("size", format!("{}x{}", r.width, r.height).into()),
        attr("content hash", art.content_hash.to_string().into()),
    ];
    if !r.negative_prompt.is_empty() {
        attributes.push(attr("negative prompt", r.negative_prompt.clone().into()));
    }
    if let Some(c) = r.creator {
        attributes.push(attr("creator", c.to_string().into()));
    }
    let token = TokenId::from(art.recipe_hash);
    let short = &token.to_string()[..10];
    let image = png_cid.map_or_else(
        || format!("{}.png", art.content_hash),
        |c| format!("ipfs://{c}"),
    );
    let meta = Metadata {
        name: format!("Kiln {short}"),
        description: format!(
            "\"{}\", painted by {} (seed {}, {} {} steps). Re-run the recipe to verify: `nftgen verify {token}`.",
            r.prompt,
            r.model.id,
            r.seed,
            r.steps,
            r.scheduler.as_str()
        ),
        aigc_data: image.clone(),
        image,
        attributes,
        prompt: &r.prompt,
        aigc_type: "image",
        proof_type: "fraud",
        kiln_content_hash: art.content_hash,
        kiln_record: r,
        kiln_recipe: format!("0x{}", crate::provenance::record::hex(&r.canonical_bytes())),
    };
    serde_json::to_string_pretty(&meta).expect("metadata serialises")
}

/// What [`ContentStore::put`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredArt {
    /// The PNG file.
    pub png: PathBuf,
    /// The PNG's IPFS CIDv1, if small enough to have one here.
    pub png_cid: Option<String>,
    /// The metadata file.
    pub metadata: PathBuf,
    /// The metadata's IPFS CIDv1.
    pub metadata_cid: Option<String>,
}

/// Images and metadata on disk, by content hash (and metadata also by token id).
#[derive(Debug, Clone)]
pub struct ContentStore {
    dir: PathBuf,
}

impl ContentStore {
    /// Opens (creating if needed) a store in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).map_err(|source| StoreError::Io {
            path: tokens,
            source,
        })?;
        Ok(Self { dir })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Directory of the per-token metadata (`tokenURI` = this directory + token id + ".json").
    pub fn tokens_dir(&self) -> PathBuf {
        self.dir.join("tokens")
    }

    /// Where the PNG of `content` is (or would be) stored.
    pub fn png_path(&self, content: ContentHash) -> PathBuf {
        self.dir.join(format!("{content}.png"))
    }

    /// The stored PNG of `content`, if present.
    pub fn find_png(&self, content: ContentHash) -> Option<PathBuf> {
        Some(self.png_path(content)).filter(|p| p.is_file())
    }

    /// Where the metadata of `token` is (or would be) stored.
    pub fn token_metadata_path(&self, token: TokenId) -> PathBuf {
        self.tokens_dir().join(format!("{token}.json"))
    }

    /// Stores `art`'s PNG (record embedded) and metadata under its content hash (unless an
    /// image with this content hash is stored already) and its metadata under its token id.
    pub fn put(&self, art: &GeneratedArt) -> Result<StoredArt, StoreError> {
        let png_path = self.png_path(art.content_hash);
        let meta_path = self.dir.join(format!("{}.json", art.content_hash));
        // The image is stored once per content hash, by the first token that claims it: a
        // second recipe claiming the same pixels (someone re-attributing them, say) gets its
        // token metadata but never replaces the stored image and its record.
        let kept = png_io::read(&png_path)
            .ok()
            .filter(|p| p.content_hash == art.content_hash)
            .and_then(|_| std::fs::read(&png_path).ok());
        let png = match kept {
            Some(bytes) => bytes,
            None => {
                let png = png_io::encode(art)?;
                store_file(&png_path, &png)?;
                png
            }
        };
        let png_cid = cid_v1(&png);
        let metadata = metadata_json(art, png_cid.as_deref());
        let metadata_cid = cid_v1(metadata.as_bytes());
        if !meta_path.exists() {
            store_file(&meta_path, metadata.as_bytes())?;
        }
        store_file(
            &self.token_metadata_path(TokenId::from(art.recipe_hash)),
            metadata.as_bytes(),
        )?;
        Ok(StoredArt {
            png: png_path,
            png_cid,
            metadata: meta_path,
            metadata_cid,
        })
    }
}

/// The one durable write of Kiln's files (journal, content store, PNGs, models, checkpoints):
/// `bytes` go to a temporary file beside `path`, which is flushed to the disk, renamed over
/// `path`, and the directory flushed too — after a crash or a power cut the file is either the
/// old one or the new one, whole. On an error the temporary file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace_with(path, |tmp| std::fs::write(tmp, bytes))
}

/// [`write_atomic`] for writers that need a path: `write(tmp)` fills a temporary file beside
/// `path`, which is then flushed, renamed over `path`, and its directory flushed.
pub fn replace_with(
    path: &Path,
    write: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        write(&tmp)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable only once the directory is.
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// [`write_atomic`] with the store's error.
fn store_file(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_atomic(path, bytes).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_whole_files_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("entry.json");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        // A writer that fails leaves the old file and no temporary behind.
        let failed = replace_with(&path, |tmp| {
            std::fs::write(tmp, b"half")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["entry.json"]);
        assert!(write_atomic(&dir.path().join("missing/x.json"), b"x").is_err());
    }

    #[test]
    fn base32_matches_rfc4648_vectors() {
        // RFC 4648 §10, lower case, padding removed.
        for (input, want) in [
            ("", ""),
            ("f", "my"),
            ("fo", "mzxq"),
            ("foo", "mzxw6"),
            ("foob", "mzxw6yq"),
            ("fooba", "mzxw6ytb"),
            ("foobar", "mzxw6ytboi"),
        ] {
            assert_eq!(base32_lower(input.as_bytes()), want, "{input:?}");
        }
    }

    #[test]
    fn cid_of_known_content() {
        // `ipfs add --cid-version=1 --raw-leaves` of the 12 bytes "hello world\n" (the CID the
        // IPFS docs use for that file).
        assert_eq!(
            cid_v1(b"hello world\n").as_deref(),
            Some("bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4")
        );
        assert!(cid_v1(&vec![0; CID_MAX_BYTES]).is_some());
        assert!(cid_v1(&vec![0; CID_MAX_BYTES + 1]).is_none());
    }
}
