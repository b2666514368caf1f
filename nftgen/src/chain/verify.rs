//! Verification: does the chain's record, re-run on local weights, give exactly this image?

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{ChainClient, ChainError, ChainRecord};
use crate::{
    ArtBackend, ArtModel, Backend, ContentHash, Control, CreatorAddress, ModelHash, TokenId, png_io,
};

/// The outcome of verifying a token, from the best to the worst news. Each variant says what
/// matched and what did not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The image's hash is the one on chain, the local weights are the recorded model, and
    /// re-running the recipe gave the same pixels bit for bit.
    Authentic,
    /// Image, model and recipe match — re-running the recipe gives these pixels — but its
    /// pipeline (`kiln-pipeline/1`) does not paint the creator into the picture: anyone could
    /// have minted this recipe naming themselves, so the token does not prove who made it.
    CreatorNotBound {
        /// The creator the token names.
        creator: CreatorAddress,
    },
    /// The image's pixels are not the ones the chain committed to.
    ImageAltered {
        /// The content hash on chain.
        expected: ContentHash,
        /// The image's.
        actual: ContentHash,
    },
    /// No image to check: none given and none in the content store.
    ImageMissing {
        /// The content hash on chain.
        expected: ContentHash,
    },
    /// The image matches the chain, but the recorded model's weights are not here.
    ModelMissing {
        /// The recorded model id.
        model: String,
        /// The recorded weights hash.
        expected: ModelHash,
        /// Where they were looked for, and why they could not be used.
        detail: String,
    },
    /// The image matches the chain, but the local weights are another model.
    ModelDifferent {
        /// The recorded weights hash.
        expected: ModelHash,
        /// The local weights' hash.
        local: ModelHash,
    },
    /// Image and model match, but re-running the recipe here gave other pixels (or failed): the
    /// claim is unproven on this machine (another backend may round differently).
    NotReproducible {
        /// The content hash on chain.
        expected: ContentHash,
        /// What the re-run gave, if it ran.
        actual: Option<ContentHash>,
        /// Why, when the re-run failed.
        detail: Option<String>,
    },
    /// The token exists, but its record on chain is not a Kiln recipe this engine can read
    /// (junk bytes, a missing event, a content hash not committed to it): nothing can be
    /// checked, and the token proves nothing.
    RecordInvalid {
        /// What is wrong with it.
        detail: String,
    },
    /// Image and model match, but the recipe was not re-run: it costs more than the limit
    /// (anyone can mint a recipe that would run for hours). Raise the limit to run it.
    CostOverLimit {
        /// What the recipe costs, in pixel-steps (width × height × steps).
        cost: u64,
        /// The limit it is over.
        limit: u64,
    },
    /// No such token on this chain's contract.
    TokenUnknown,
}

/// The default limit of a re-run, in pixel-steps (width × height × steps): a 512×512 picture
/// at 50 steps. Kiln's sprites cost a few ten thousand.
pub const DEFAULT_MAX_COST: u64 = 512 * 512 * 50;

/// What re-running `record` costs, in pixel-steps (width × height × steps).
pub fn recipe_cost(record: &crate::GenerationRecord) -> u64 {
    (record.width as u64)
        .saturating_mul(record.height as u64)
        .saturating_mul(record.steps.max(1) as u64)
}

impl Verdict {
    /// True only for [`Verdict::Authentic`].
    pub fn is_authentic(&self) -> bool {
        matches!(self, Self::Authentic)
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Self::Authentic => {
                "authentic: image, model and recipe match the chain; re-running the recipe gives the same pixels".into()
            }
            Self::CreatorNotBound { creator } => format!(
                "creator not bound: the recipe paints this image, but its pipeline does not paint the creator into it, so anyone could have minted it naming themselves; the token names {creator}"
            ),
            Self::ImageAltered { expected, actual } => {
                format!("image altered: its pixels hash to {actual}, the chain committed to {expected}")
            }
            Self::ImageMissing { expected } => {
                format!("image missing: no file given and none with content hash {expected} in the store")
            }
            Self::ModelMissing { model, expected, detail } => {
                format!(
                    "model missing: {} (sha256 {expected}) is not available here: {}",
                    crate::printable(model),
                    crate::printable(detail)
                )
            }
            Self::ModelDifferent { expected, local } => {
                format!("model different: the recipe names weights {expected}, the local weights are {local}")
            }
            Self::NotReproducible { expected, actual, detail } => match (actual, detail) {
                (Some(a), _) => format!(
                    "recipe not reproducible here: re-running it gave {a}, the chain committed to {expected}"
                ),
                (None, Some(d)) => format!("recipe not reproducible here: {d}"),
                (None, None) => "recipe not reproducible here".into(),
            },
            Self::RecordInvalid { detail } => {
                format!("record invalid: the token exists but its on-chain record is not a readable Kiln recipe: {detail}")
            }
            Self::CostOverLimit { cost, limit } => format!(
                "not re-run: the recipe costs {cost} pixel-steps, over the limit of {limit} (raise it to run it)"
            ),
            Self::TokenUnknown => "token unknown: no such token on this contract".into(),
        }
    }
}

/// How the record embedded in a checked file compares with the chain's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "file_record", content = "fields", rename_all = "snake_case")]
pub enum FileRecord {
    /// No file was checked (the stored image was used).
    NotChecked,
    /// The file's record is the chain's.
    Matches,
    /// The file's record differs in these fields; the chain's record is the one verified.
    Differs(Vec<String>),
}

/// A verification report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    /// The token.
    pub token_id: TokenId,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// One line for people.
    pub summary: String,
    /// The chain's record (absent for an unknown token).
    pub chain: Option<ChainRecord>,
    /// The image checked.
    pub image: Option<PathBuf>,
    /// The checked file's embedded record compared with the chain's.
    #[serde(flatten)]
    pub file_record: FileRecord,
    /// The recipe's pipeline (absent for an unknown token).
    pub pipeline: Option<String>,
    /// The backend the recipe was re-run on (absent when it was not re-run). Every backend
    /// paints the same bits for `kiln-pipeline/2`.
    pub rerun_on: Option<Backend>,
    /// What was checked and matched, in order: `image` (pixels hash to the committed content
    /// hash), `model` (local weights are the recorded model), `recipe` (re-running it gave the
    /// same pixels, bit for bit).
    pub matched: Vec<&'static str>,
}

/// What bit-exactness a pipeline promises, for verdict lines.
pub fn pipeline_note(pipeline: &str) -> &'static str {
    if pipeline == crate::PIPELINE_2 {
        "integer pipeline: the same pixels on every machine"
    } else if pipeline == crate::PIPELINE {
        "f32 pipeline: bit-exact among CPUs whose kernels round alike"
    } else {
        "pipeline unknown to this engine"
    }
}

/// Verifies `token`: reads its record from the chain, checks the image (the file `image`, or
/// the content store's copy) against the committed content hash, checks that the weights at
/// `model` are the recorded model, re-runs the recipe and compares the pixels bit for bit.
pub fn verify(
    chain: &ChainClient,
    token: TokenId,
    image: Option<&Path>,
    model: &Path,
) -> Result<Verification, ChainError> {
    verify_with_limit(chain, token, image, model, DEFAULT_MAX_COST)
}

/// [`verify`], re-running the recipe only when it costs at most `max_cost` pixel-steps
/// ([`recipe_cost`]); a dearer one gets [`Verdict::CostOverLimit`].
pub fn verify_with_limit(
    chain: &ChainClient,
    token: TokenId,
    image: Option<&Path>,
    model: &Path,
    max_cost: u64,
) -> Result<Verification, ChainError> {
    let options = VerifyOptions {
        max_cost,
        ..VerifyOptions::default()
    };
    verify_with(chain, token, image, model, &options)
}

/// How a verification re-runs recipes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Re-run recipes costing at most this many pixel-steps ([`recipe_cost`]).
    pub max_cost: u64,
    /// Where `kiln-pipeline/2` recipes are re-run. A GPU that was asked for and does not open
    /// is an error ([`ChainError::Gpu`]), not a verdict.
    pub backend: ArtBackend,
}

impl Default for VerifyOptions {
    /// [`DEFAULT_MAX_COST`], on the CPU.
    fn default() -> Self {
        Self {
            max_cost: DEFAULT_MAX_COST,
            backend: ArtBackend::Cpu,
        }
    }
}

impl VerifyOptions {
    /// These options re-running recipes on `backend`.
    pub fn on(mut self, backend: ArtBackend) -> Self {
        self.backend = backend;
        self
    }

    /// These options with the cost limit `max_cost`.
    pub fn max_cost(mut self, max_cost: u64) -> Self {
        self.max_cost = max_cost;
        self
    }
}

/// [`verify`] with [`VerifyOptions`].
pub fn verify_with(
    chain: &ChainClient,
    token: TokenId,
    image: Option<&Path>,
    model: &Path,
    options: &VerifyOptions,
) -> Result<Verification, ChainError> {
    let max_cost = options.max_cost;
    let record = match chain.record(token) {
        // A record anyone could have minted is a verdict, not a failure of the verifier.
        Err(ChainError::BadRecord { detail, .. }) => {
            let v = Verdict::RecordInvalid { detail };
            return Ok(report(token, v, None, image, FileRecord::NotChecked));
        }
        other => other?,
    };
    let Some(record) = record else {
        return Ok(report(
            token,
            Verdict::TokenUnknown,
            None,
            image,
            FileRecord::NotChecked,
        ));
    };
    let expected = record.content_hash;
    let path = match image {
        Some(p) => Some(p.to_path_buf()),
        None => chain.store().find_png(expected),
    };
    let Some(path) = path else {
        let v = Verdict::ImageMissing { expected };
        return Ok(report(token, v, Some(record), None, FileRecord::NotChecked));
    };
    let png = png_io::read(&path).map_err(|e| ChainError::io(&path, e))?;
    let file_record = match image {
        Some(_) => compare_records(&png.record, &record.record),
        None => FileRecord::NotChecked,
    };
    let image = Some(path.as_path());
    if png.content_hash != expected {
        let v = Verdict::ImageAltered {
            expected,
            actual: png.content_hash,
        };
        return Ok(report(token, v, Some(record), image, file_record));
    }
    let recorded = &record.record.model;
    let loaded = load_recorded_model(model, recorded.sha256);
    let mut model = match loaded {
        Ok(m) => m,
        Err(detail) => {
            let v = Verdict::ModelMissing {
                model: recorded.id.clone(),
                expected: recorded.sha256,
                detail,
            };
            return Ok(report(token, v, Some(record), image, file_record));
        }
    };
    if model.hash() != recorded.sha256 {
        let v = Verdict::ModelDifferent {
            expected: recorded.sha256,
            local: model.hash(),
        };
        return Ok(report(token, v, Some(record), image, file_record));
    }
    let cost = recipe_cost(&record.record);
    if cost > max_cost {
        let v = Verdict::CostOverLimit {
            cost,
            limit: max_cost,
        };
        return Ok(report(token, v, Some(record), image, file_record));
    }
    let rerun_on = model.select_backend(options.backend)?;
    let verdict = match model.regenerate(&record.record, &mut |_| Control::Continue) {
        Ok(art) if art.content_hash == expected => {
            if crate::pipeline_binds_creator(&record.record.pipeline) {
                Verdict::Authentic
            } else {
                Verdict::CreatorNotBound {
                    creator: record.creator,
                }
            }
        }
        Ok(art) => Verdict::NotReproducible {
            expected,
            actual: Some(art.content_hash),
            detail: None,
        },
        Err(e) => Verdict::NotReproducible {
            expected,
            actual: None,
            detail: Some(e.to_string()),
        },
    };
    let mut v = report(token, verdict, Some(record), image, file_record);
    v.rerun_on = Some(rerun_on);
    Ok(v)
}

/// Verifies the token a PNG file claims: the one its embedded record names, else the first
/// minted with its pixels' content hash. The file's pixels are what is checked; if its embedded
/// record disagrees with the chain's, the chain's wins and the report lists the differing fields
/// (a token of another creator found by the pixels shows `creator` among them, and a
/// `kiln-pipeline/1` token is never more than [`Verdict::CreatorNotBound`]).
pub fn verify_file(
    chain: &ChainClient,
    file: &Path,
    model: &Path,
) -> Result<Verification, ChainError> {
    verify_file_with_limit(chain, file, model, DEFAULT_MAX_COST)
}

/// [`verify_file`] with a cost limit, as [`verify_with_limit`].
pub fn verify_file_with_limit(
    chain: &ChainClient,
    file: &Path,
    model: &Path,
    max_cost: u64,
) -> Result<Verification, ChainError> {
    let options = VerifyOptions {
        max_cost,
        ..VerifyOptions::default()
    };
    verify_file_with(chain, file, model, &options)
}

/// [`verify_file`] with [`VerifyOptions`].
pub fn verify_file_with(
    chain: &ChainClient,
    file: &Path,
    model: &Path,
    options: &VerifyOptions,
) -> Result<Verification, ChainError> {
    let png = png_io::read(file).map_err(|e| ChainError::io(file, e))?;
    let mut record = png.record.clone();
    if record.creator.is_none() {
        record.creator = Some(chain.account());
    }
    let mut token = TokenId::from(record.recipe_hash());
    if !chain.exists(token)?
        && let Some(first) = chain.tokens_with_content(png.content_hash)?.first()
    {
        token = *first;
    }
    verify_with(chain, token, Some(file), model, options)
}

fn compare_records(file: &crate::GenerationRecord, chain: &crate::GenerationRecord) -> FileRecord {
    let a = serde_json::to_value(file).expect("serialises");
    let b = serde_json::to_value(chain).expect("serialises");
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return FileRecord::Differs(vec!["record".into()]);
    };
    let fields: Vec<String> = b
        .iter()
        .filter(|(k, v)| a.get(k.as_str()) != Some(v))
        // An unattributed file was attributed to its minter when minted.
        .filter(|(k, _)| !(k.as_str() == "creator" && file.creator.is_none()))
        .map(|(k, _)| k.clone())
        .collect();
    if fields.is_empty() {
        FileRecord::Matches
    } else {
        FileRecord::Differs(fields)
    }
}

/// Loads `model`. When it is the default model ([`crate::default_model_path`]) and its weights
/// are not the recorded ones, the model Kiln shipped with the recorded hash is used instead
/// ([`crate::shipped_model_paths`]: the f32 kiln-sprite of pipeline/1 and every integer model
/// of pipeline/2), so tokens painted with any shipped model verify with no `--model`; weights
/// the caller chose are never swapped.
fn load_recorded_model(model: &Path, recorded: ModelHash) -> Result<ArtModel, String> {
    let first = if model.exists() || crate::model::shipped::is_embedded(model) {
        ArtModel::load(model).map_err(|e| e.to_string())
    } else {
        Err(format!("nothing at {}", model.display()))
    };
    if matches!(&first, Ok(m) if m.hash() == recorded) || model != crate::default_model_path() {
        return first;
    }
    let shipped = crate::shipped_model_paths()
        .into_iter()
        .find(|p| crate::model::shipped::model_hash_of(p) == Some(recorded));
    match shipped.map(ArtModel::load) {
        Some(Ok(m)) => Ok(m),
        _ => first,
    }
}

fn report(
    token_id: TokenId,
    verdict: Verdict,
    chain: Option<ChainRecord>,
    image: Option<&Path>,
    file_record: FileRecord,
) -> Verification {
    let pipeline = chain.as_ref().map(|c| c.record.pipeline.clone());
    let matched: Vec<&'static str> = match &verdict {
        Verdict::Authentic | Verdict::CreatorNotBound { .. } => vec!["image", "model", "recipe"],
        Verdict::ModelMissing { .. } | Verdict::ModelDifferent { .. } => vec!["image"],
        Verdict::CostOverLimit { .. } => vec!["image", "model"],
        Verdict::NotReproducible { .. } => vec!["image", "model"],
        _ => vec![],
    };
    let summary = match &pipeline {
        Some(p) => format!("{} [{p}: {}]", verdict.describe(), pipeline_note(p)),
        None => verdict.describe(),
    };
    Verification {
        token_id,
        summary,
        verdict,
        chain,
        image: image.map(Path::to_path_buf),
        file_record,
        pipeline,
        rerun_on: None,
        matched,
    }
}
