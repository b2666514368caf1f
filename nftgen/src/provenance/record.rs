//! The provenance record of a generated image, its canonical encodings and hashes.
//!
//! A [`GenerationRecord`] holds everything needed to reproduce an image bit for bit. It has two
//! canonical encodings, both specified in `nftgen/RECIPE.md`:
//! - canonical bytes ([`GenerationRecord::canonical_bytes`]), whose keccak256 is the
//!   [`RecipeHash`] and which go on chain;
//! - canonical JSON ([`GenerationRecord::canonical_json`]), embedded in PNG files.
//!
//! [`ContentHash`] is keccak256 over the width, height and RGBA8 pixels.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha3::{Digest, Keccak256};

use crate::error::RecordError;

/// Version of the record format this engine writes and reads.
pub const RECORD_FORMAT: u32 = 1;

/// Name and version of the sampling pipeline every record of this engine uses: batch layout,
/// noise stream, timestep spacing, schedulers and pixel conversion as `RECIPE.md` specifies them.
pub const PIPELINE: &str = "kiln-pipeline/1";

/// This engine's name and version, recorded in every record.
pub const ENGINE_VERSION: &str = concat!("kiln-nftgen ", env!("CARGO_PKG_VERSION"));

/// Every engine string a Kiln release has written into a record, oldest first. The engine does
/// not change the pixels, so a re-run accepts only these: a recipe whose engine field was edited
/// to mint the same picture again under another token id is refused. A release that changes
/// [`ENGINE_VERSION`] adds it here (a test checks that it is listed).
pub const RECORDED_ENGINES: &[&str] = &["kiln-nftgen 0.1.0"];

/// Whether recipes of `pipeline` paint their creator into the picture (the creator is an input
/// of the noise), so that a recipe re-attributed to someone else paints another picture. Only
/// such recipes prove who made them; the provenance contract mints no others.
pub fn pipeline_binds_creator(pipeline: &str) -> bool {
    pipeline == crate::model::sprite_q::PIPELINE_2
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Text from a stranger (a PNG's record, a chain record) made safe to print on a terminal:
/// control characters (escape sequences, carriage returns, bells) and the bidirectional
/// overrides that reorder a line are shown as `\u{…}` escapes; everything else is kept.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_hex<const N: usize>(what: &'static str, s: &str) -> Result<[u8; N], RecordError> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    if digits.len() != N * 2 {
        return Err(RecordError::Hex {
            what,
            detail: format!("expected {} hex digits, got {}", N * 2, digits.len()),
        });
    }
    // `u8::from_str_radix` alone would take a sign: `+a` parses as 10.
    if let Some(bad) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(RecordError::Hex {
            what,
            detail: format!("{} is not a hex digit", bad.escape_default()),
        });
    }
    let mut out = [0u8; N];
    for (i, chunk) in digits.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(chunk).unwrap_or("");
        out[i] = u8::from_str_radix(pair, 16).map_err(|_| RecordError::Hex {
            what,
            detail: format!("`{pair}` is not a hex byte"),
        })?;
    }
    Ok(out)
}

macro_rules! hash_newtype {
    ($(#[$doc:meta])* $name:ident, $len:expr, $prefix:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, hex(&self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl FromStr for $name {
            type Err = RecordError;
            fn from_str(s: &str) -> Result<Self, RecordError> {
                parse_hex::<$len>($what, s).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hash_newtype!(
    /// SHA-256 of a model's weights (see `RECIPE.md` for what is hashed), written as 64 hex digits
    /// like `sha256sum` prints them.
    ModelHash, 32, "", "model sha256"
);
hash_newtype!(
    /// keccak256 of a record's canonical bytes, written `0x…`.
    RecipeHash, 32, "0x", "recipe hash"
);
hash_newtype!(
    /// keccak256 of an image's width, height and RGBA8 pixels, written `0x…`.
    ContentHash, 32, "0x", "content hash"
);
hash_newtype!(
    /// An EVM address (20 bytes) naming the creator of a recipe, written `0x…`.
    CreatorAddress, 20, "0x", "creator address"
);

hash_newtype!(
    /// A provenance token's id: the keccak256 of its recipe's canonical bytes, written `0x…`
    /// (64 hex digits; as a `uint256` on chain).
    TokenId, 32, "0x", "token id"
);
hash_newtype!(
    /// A transaction hash, written `0x…`.
    TxHash, 32, "0x", "transaction hash"
);

impl From<RecipeHash> for TokenId {
    fn from(h: RecipeHash) -> Self {
        Self(h.0)
    }
}

impl ModelHash {
    /// SHA-256 of a model file's bytes (`RECIPE.md` §6).
    pub fn of_file_bytes(bytes: &[u8]) -> Self {
        use sha2::Digest;
        Self(sha2::Sha256::digest(bytes).into())
    }
}

impl ContentHash {
    /// keccak256(width as u32 big-endian ‖ height as u32 big-endian ‖ RGBA8 pixels, rows top to
    /// bottom).
    pub fn of_rgba8(width: u32, height: u32, rgba: &[u8]) -> Self {
        let mut h = Keccak256::new();
        h.update(width.to_be_bytes());
        h.update(height.to_be_bytes());
        h.update(rgba);
        Self(h.finalize().into())
    }
}

/// Which denoising scheduler a recipe uses (all specified in `RECIPE.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SchedulerKind {
    /// Deterministic DDIM (η = 0).
    Ddim,
    /// Euler in σ space (deterministic).
    Euler,
    /// Euler ancestral: fresh noise from the recipe's stream at every step.
    #[serde(rename = "euler_a")]
    EulerAncestral,
}

impl SchedulerKind {
    /// The name used in records and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ddim => "ddim",
            Self::Euler => "euler",
            Self::EulerAncestral => "euler_a",
        }
    }

    fn a1111_name(self) -> &'static str {
        match self {
            Self::Ddim => "DDIM",
            Self::Euler => "Euler",
            Self::EulerAncestral => "Euler a",
        }
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SchedulerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ddim" => Ok(Self::Ddim),
            "euler" => Ok(Self::Euler),
            "euler_a" | "euler-a" | "euler_ancestral" => Ok(Self::EulerAncestral),
            other => Err(format!(
                "unknown scheduler `{other}` (expected ddim, euler or euler_a)"
            )),
        }
    }
}

/// Which compute backend produced an image. For `kiln-pipeline/2` every backend paints the same
/// bits; for the f32 pipelines only the CPU path is bit-exact by specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Backend {
    /// Candle's CPU backend (the reference, bit-exact path).
    Cpu,
    /// Candle's CUDA backend.
    Cuda,
    /// Candle's Metal backend.
    Metal,
    /// Kiln's integer WGSL kernels through wgpu (`kiln-pipeline/2` only; bit-exact).
    Wgpu,
}

impl Backend {
    /// Lower-case name as recorded.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
            Self::Metal => "metal",
            Self::Wgpu => "wgpu",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The model a recipe ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    /// Human-readable model id (e.g. `kiln-sprite-v1`, or a Stable Diffusion directory name).
    pub id: String,
    /// SHA-256 of the weights.
    pub sha256: ModelHash,
}

/// Everything needed to reproduce one image bit for bit, plus who made it.
///
/// Field order here is the canonical JSON order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationRecord {
    /// Record format version ([`RECORD_FORMAT`]).
    pub format: u32,
    /// Model id and weights hash.
    pub model: ModelRef,
    /// The prompt.
    pub prompt: String,
    /// The negative prompt (empty when none).
    pub negative_prompt: String,
    /// Seed of the noise stream.
    pub seed: u64,
    /// Scheduler.
    pub scheduler: SchedulerKind,
    /// Denoising steps.
    pub steps: u32,
    /// Classifier-free guidance scale.
    pub guidance: f32,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Sampling pipeline version ([`PIPELINE`]).
    pub pipeline: String,
    /// Engine name and version ([`ENGINE_VERSION`]).
    pub engine: String,
    /// Backend that produced the image.
    pub backend: Backend,
    /// Creator's address, when the recipe is attributed (set before minting).
    pub creator: Option<CreatorAddress>,
}

const MAGIC: &[u8; 4] = b"KILN";

impl GenerationRecord {
    /// The canonical byte encoding (format 1), as specified in `RECIPE.md`:
    /// `"KILN"`, format (u8), creator (20 bytes, zero when none), model id, model sha256
    /// (32 bytes), prompt, negative prompt, seed (u64), scheduler, steps (u32), guidance
    /// (binary32 bits as u32), width (u32), height (u32), pipeline, engine, backend. Integers are
    /// big-endian; strings are a u32 byte length followed by UTF-8.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        fn put_str(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        let mut out = Vec::with_capacity(160 + self.prompt.len() + self.negative_prompt.len());
        out.extend_from_slice(MAGIC);
        out.push(self.format as u8);
        out.extend_from_slice(&self.creator.map(|c| c.0).unwrap_or([0; 20]));
        put_str(&mut out, &self.model.id);
        out.extend_from_slice(&self.model.sha256.0);
        put_str(&mut out, &self.prompt);
        put_str(&mut out, &self.negative_prompt);
        out.extend_from_slice(&self.seed.to_be_bytes());
        put_str(&mut out, self.scheduler.as_str());
        out.extend_from_slice(&self.steps.to_be_bytes());
        out.extend_from_slice(&self.guidance.to_bits().to_be_bytes());
        out.extend_from_slice(&self.width.to_be_bytes());
        out.extend_from_slice(&self.height.to_be_bytes());
        put_str(&mut out, &self.pipeline);
        put_str(&mut out, &self.engine);
        put_str(&mut out, self.backend.as_str());
        out
    }

    /// Decodes [`canonical_bytes`](Self::canonical_bytes); trailing bytes are an error.
    pub fn from_canonical_bytes(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut r = ByteReader { bytes, pos: 0 };
        if r.take(4)? != MAGIC {
            return Err(RecordError::Bytes {
                offset: 0,
                detail: "missing \"KILN\" magic".into(),
            });
        }
        let format = r.take(1)?[0] as u32;
        if format != RECORD_FORMAT {
            return Err(RecordError::Version {
                found: format,
                supported: RECORD_FORMAT,
            });
        }
        let creator: [u8; 20] = r.take(20)?.try_into().expect("20 bytes");
        let creator = (creator != [0; 20]).then_some(CreatorAddress(creator));
        let id = r.string()?;
        let sha256 = ModelHash(r.take(32)?.try_into().expect("32 bytes"));
        let prompt = r.string()?;
        let negative_prompt = r.string()?;
        let seed = u64::from_be_bytes(r.take(8)?.try_into().expect("8 bytes"));
        let at = r.pos;
        let scheduler = r
            .string()?
            .parse()
            .map_err(|detail| RecordError::Bytes { offset: at, detail })?;
        let steps = r.u32()?;
        let guidance = f32::from_bits(r.u32()?);
        let width = r.u32()?;
        let height = r.u32()?;
        let pipeline = r.string()?;
        let engine = r.string()?;
        let at = r.pos;
        let backend = match r.string()?.as_str() {
            "cpu" => Backend::Cpu,
            "cuda" => Backend::Cuda,
            "metal" => Backend::Metal,
            "wgpu" => Backend::Wgpu,
            other => {
                return Err(RecordError::Bytes {
                    offset: at,
                    detail: format!("unknown backend `{other}`"),
                });
            }
        };
        if r.pos != bytes.len() {
            return Err(RecordError::Bytes {
                offset: r.pos,
                detail: format!("{} trailing bytes", bytes.len() - r.pos),
            });
        }
        Ok(Self {
            format,
            model: ModelRef { id, sha256 },
            prompt,
            negative_prompt,
            seed,
            scheduler,
            steps,
            guidance,
            width,
            height,
            pipeline,
            engine,
            backend,
            creator,
        })
    }

    /// keccak256 of the canonical bytes.
    pub fn recipe_hash(&self) -> RecipeHash {
        RecipeHash(Keccak256::digest(self.canonical_bytes()).into())
    }

    /// Canonical JSON: the fields in declaration order, no whitespace, hashes as hex strings.
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(self).expect("a record always serializes")
    }

    /// Parses a record from JSON and checks its format version.
    pub fn from_json(json: &str) -> Result<Self, RecordError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| RecordError::Json(e.to_string()))?;
        if let Some(found) = value.get("format").and_then(|v| v.as_u64())
            && found != RECORD_FORMAT as u64
        {
            return Err(RecordError::Version {
                found: found.min(u32::MAX as u64) as u32,
                supported: RECORD_FORMAT,
            });
        }
        serde_json::from_value(value).map_err(|e| RecordError::Json(e.to_string()))
    }

    /// The AUTOMATIC1111-style `parameters` text other tools display:
    /// prompt, `Negative prompt:` line, then `Steps, Sampler, CFG scale, Seed, Size, Model hash,
    /// Model, Version`.
    pub fn a1111_parameters(&self) -> String {
        let mut s = self.prompt.clone();
        if !self.negative_prompt.is_empty() {
            s.push_str("\nNegative prompt: ");
            s.push_str(&self.negative_prompt);
        }
        let model_hash = self.model.sha256.to_string();
        s.push_str(&format!(
            "\nSteps: {}, Sampler: {}, CFG scale: {}, Seed: {}, Size: {}x{}, Model hash: {}, Model: {}, Version: {}",
            self.steps,
            self.scheduler.a1111_name(),
            self.guidance,
            self.seed,
            self.width,
            self.height,
            &model_hash[..10],
            self.model.id,
            self.engine,
        ));
        s
    }
}

struct ByteReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(RecordError::Bytes {
                offset: self.pos,
                detail: format!("needs {n} more bytes, {} left", self.bytes.len() - self.pos),
            });
        };
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, RecordError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn string(&mut self) -> Result<String, RecordError> {
        let len = self.u32()? as usize;
        let at = self.pos;
        let raw = self.take(len)?;
        String::from_utf8(raw.to_vec()).map_err(|_| RecordError::Bytes {
            offset: at,
            detail: "string is not UTF-8".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A release that changes the engine string must list it, or its own records would not
    /// re-run.
    #[test]
    fn this_engine_is_a_recorded_engine_and_only_pipeline_2_binds_its_creator() {
        assert!(RECORDED_ENGINES.contains(&ENGINE_VERSION));
        assert!(pipeline_binds_creator(crate::model::sprite_q::PIPELINE_2));
        assert!(!pipeline_binds_creator(PIPELINE));
        assert!(!pipeline_binds_creator("kiln-pipeline/2 "));
    }

    #[test]
    fn strangers_text_prints_without_control_characters() {
        assert_eq!(printable("a red sword"), "a red sword");
        assert_eq!(printable("épée 剣"), "épée 剣");
        let nasty = "x\x1b[2K\rauthentic\u{7}\u{202e}gnp.exe\n";
        let shown = printable(nasty);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown}");
        assert_eq!(
            shown,
            "x\\u{1b}[2K\\u{d}authentic\\u{7}\\u{202e}gnp.exe\\u{a}"
        );
    }

    #[test]
    fn hex_is_strict() {
        let ok = format!("0x{}", "ab".repeat(32));
        assert!(ok.parse::<ContentHash>().is_ok());
        for bad in [
            format!("0x+a{}", "ab".repeat(31)),
            format!("0x{}-1", "ab".repeat(31)),
            format!("0x{}é", "ab".repeat(31)),
            format!("0x {}", "ab".repeat(31)),
        ] {
            assert!(bad.parse::<ContentHash>().is_err(), "{bad}");
        }
    }

    pub(crate) fn sample() -> GenerationRecord {
        GenerationRecord {
            format: RECORD_FORMAT,
            model: ModelRef {
                id: "kiln-sprite-test".into(),
                sha256: ModelHash([7; 32]),
            },
            prompt: "a glowing green potion".into(),
            negative_prompt: "blurry".into(),
            seed: u64::MAX - 3,
            scheduler: SchedulerKind::EulerAncestral,
            steps: 20,
            guidance: 3.5,
            width: 32,
            height: 32,
            pipeline: PIPELINE.into(),
            engine: ENGINE_VERSION.into(),
            backend: Backend::Cpu,
            creator: Some(CreatorAddress([0xab; 20])),
        }
    }

    #[test]
    fn canonical_bytes_round_trip_and_layout() {
        let r = sample();
        let bytes = r.canonical_bytes();
        assert_eq!(&bytes[..4], b"KILN");
        assert_eq!(bytes[4], 1);
        assert_eq!(&bytes[5..25], &[0xab; 20]);
        assert_eq!(GenerationRecord::from_canonical_bytes(&bytes).unwrap(), r);
        let mut none = r.clone();
        none.creator = None;
        let b2 = none.canonical_bytes();
        assert_eq!(&b2[5..25], &[0; 20]);
        assert_eq!(GenerationRecord::from_canonical_bytes(&b2).unwrap(), none);
        // Any change changes the hash.
        let mut other = r.clone();
        other.seed += 1;
        assert_ne!(other.recipe_hash(), r.recipe_hash());
        // Truncation and trailing bytes are typed errors.
        for cut in [3, 10, bytes.len() - 1] {
            assert!(matches!(
                GenerationRecord::from_canonical_bytes(&bytes[..cut]),
                Err(RecordError::Bytes { .. })
            ));
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(GenerationRecord::from_canonical_bytes(&long).is_err());
    }

    #[test]
    fn json_round_trip_is_canonical() {
        let r = sample();
        let json = r.canonical_json();
        assert!(json.starts_with("{\"format\":1,\"model\":{\"id\":\"kiln-sprite-test\""));
        assert!(json.contains("\"scheduler\":\"euler_a\""));
        assert!(json.contains("\"guidance\":3.5"));
        let back = GenerationRecord::from_json(&json).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.canonical_json(), json);
        let newer = json.replacen("\"format\":1", "\"format\":2", 1);
        assert!(matches!(
            GenerationRecord::from_json(&newer),
            Err(RecordError::Version { found: 2, .. })
        ));
    }

    #[test]
    fn keccak_known_answer_and_content_hash() {
        // keccak256("") is the well-known c5d2…a470.
        assert_eq!(
            hex(&Keccak256::digest(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
        let a = ContentHash::of_rgba8(1, 2, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let b = ContentHash::of_rgba8(2, 1, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_ne!(a, b, "width and height are part of the content hash");
        assert_eq!(a.to_string().parse::<ContentHash>().unwrap(), a);
        assert!("0x12".parse::<ContentHash>().is_err());
    }

    #[test]
    fn a1111_parameters_show_prompt_and_seed() {
        let p = sample().a1111_parameters();
        assert!(p.starts_with("a glowing green potion\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 3.5, Seed: 18446744073709551612, Size: 32x32"));
    }
}
