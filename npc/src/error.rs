//! Typed errors. Every message names the file, field or limit involved so a user can act on it.

use std::path::PathBuf;

/// A GGUF model file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// No file at the given path.
    #[error("model file {path} does not exist (`kiln fetch-models` fetches the default model)")]
    NotFound {
        /// The path that was tried.
        path: PathBuf,
    },
    /// No model was given and the default one is in none of the places it is looked for.
    #[error(
        "no NPC model: looked for SmolLM2-135M-Instruct.Q4_1.gguf at {}; run `kiln fetch-models` \
         (or set $KILN_NPC_MODEL)",
        .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NoDefaultModel {
        /// The places that were looked at, in order.
        searched: Vec<PathBuf>,
    },
    /// The file exists but could not be read.
    #[error("model file {path} cannot be read: {source}")]
    Io {
        /// The model file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The file has no bytes at all.
    #[error("model file {path} is empty (0 bytes)")]
    Empty {
        /// The model file.
        path: PathBuf,
    },
    /// The file does not start with the GGUF magic.
    #[error("model file {path} is not a GGUF file: it starts with {found}, not \"GGUF\"")]
    NotGguf {
        /// The model file.
        path: PathBuf,
        /// The first bytes found, printable.
        found: String,
    },
    /// The GGUF version is one llama.cpp does not read.
    #[error("model file {path} is GGUF version {version}; only versions 2 and 3 are supported")]
    UnsupportedVersion {
        /// The model file.
        path: PathBuf,
        /// The version number found in the header.
        version: u32,
    },
    /// The file ends before the data its header promises.
    #[error(
        "model file {path} is truncated: {what} needs {needed} bytes but the file has {actual} (re-download it)"
    )]
    Truncated {
        /// The model file.
        path: PathBuf,
        /// What part of the file was cut off.
        what: String,
        /// Bytes the file must have at least.
        needed: u64,
        /// Bytes the file has.
        actual: u64,
    },
    /// The GGUF header is not well formed.
    #[error("model file {path} has a malformed GGUF header at byte {offset}: {reason}")]
    Malformed {
        /// The model file.
        path: PathBuf,
        /// Byte offset of the bad field.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// The header looked fine but llama.cpp refused the model.
    #[error(
        "llama.cpp could not load model file {path}{}",
        detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
    )]
    LoadFailed {
        /// The model file.
        path: PathBuf,
        /// The last error llama.cpp logged, when there was one.
        detail: Option<String>,
    },
    /// The model's file name was not valid UTF-8 (llama.cpp takes C strings).
    #[error("model path {path} is not valid UTF-8")]
    BadPath {
        /// The model file.
        path: PathBuf,
    },
}

/// A persona file is missing, not TOML, or breaks a rule.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersonaError {
    /// The file could not be read.
    #[error("persona file {path} cannot be read: {source}")]
    Io {
        /// The persona file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has unknown or mistyped fields.
    #[error("persona file {path} is not a valid persona: {message}")]
    Parse {
        /// The persona file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A field has a value the engine cannot use.
    #[error("persona file {path}: field `{field}` {reason}")]
    Invalid {
        /// The persona file.
        path: PathBuf,
        /// The field, e.g. `actions[2]` or `examples[0].emotion`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A conversation could not go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// The player's line cannot be used.
    #[error("player line rejected: {reason}")]
    BadInput {
        /// Why.
        reason: String,
    },
    /// The context window cannot hold the persona and one reply.
    #[error(
        "the context window ({n_ctx} tokens) is too small: the persona and one turn need {needed}; raise `context_size`"
    )]
    ContextTooSmall {
        /// Tokens needed.
        needed: usize,
        /// Tokens available.
        n_ctx: u32,
    },
    /// llama.cpp failed to create an inference context.
    #[error("could not create an inference context: {reason}")]
    Context {
        /// llama.cpp's reason.
        reason: String,
    },
    /// llama.cpp failed while evaluating tokens.
    #[error("llama.cpp failed to evaluate the prompt: {reason}")]
    Decode {
        /// llama.cpp's reason.
        reason: String,
    },
    /// The model's chat template (and the fallback) could not render the conversation.
    #[error("chat template error: {reason}")]
    Template {
        /// What went wrong.
        reason: String,
    },
    /// The persona's text spells one of the model's control tokens (ChatML's `<|im_end|>`, say):
    /// it could close the system prompt and write turns of its own, so the chat does not open.
    #[error(
        "persona `{persona}`: its {field} spells one of the model's control tokens (such as `<|im_end|>`); remove it"
    )]
    PersonaText {
        /// The persona's name.
        persona: String,
        /// Which text: `system prompt` (name, role, backstory, style, knowledge, hints) or
        /// `example N`.
        field: String,
    },
    /// The grammar built from the persona was rejected by llama.cpp.
    #[error("the reply grammar for persona `{persona}` was rejected by llama.cpp")]
    Grammar {
        /// The persona's name.
        persona: String,
    },
    /// The model produced text the grammar should have made impossible.
    #[error("the model's reply could not be parsed: {reason} (raw: {raw})")]
    Unparseable {
        /// Why parsing failed.
        reason: String,
        /// What the model produced.
        raw: String,
    },
    /// The request was cancelled (by [`crate::Chat::cancel`], a reset, or dropping the chat).
    #[error("the request was cancelled")]
    Cancelled,
    /// The chat's worker thread has stopped (it panicked or was shut down).
    #[error("the chat worker thread is gone")]
    WorkerGone,
}

/// A saved conversation could not be written or read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaveError {
    /// Reading or writing the file failed.
    #[error("conversation file {path}: {source}")]
    Io {
        /// The conversation file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a saved conversation.
    #[error("conversation file {path} is not a saved Kiln conversation: {message}")]
    Format {
        /// The conversation file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The saved conversation breaks a limit a real one keeps (too many turns, a line too
    /// long, a control character): it was edited or crafted, and is not restored.
    #[error("saved conversation cannot be restored: {reason}")]
    Invalid {
        /// The limit it breaks.
        reason: String,
    },
    /// The saved conversation belongs to another persona.
    #[error("saved conversation is with `{saved}`, not with persona `{given}`")]
    PersonaMismatch {
        /// Persona name in the file.
        saved: String,
        /// Persona name given to `load`.
        given: String,
    },
    /// The saved conversation's format version is newer than this build understands.
    #[error("saved conversation has format version {found}; this build reads version {supported}")]
    Version {
        /// Version in the file.
        found: u32,
        /// Version this build writes.
        supported: u32,
    },
}

/// Any error from this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NpcError {
    /// See [`ModelError`].
    #[error(transparent)]
    Model(#[from] ModelError),
    /// See [`PersonaError`].
    #[error(transparent)]
    Persona(#[from] PersonaError),
    /// See [`ChatError`].
    #[error(transparent)]
    Chat(#[from] ChatError),
    /// See [`SaveError`].
    #[error(transparent)]
    Save(#[from] SaveError),
}
