//! The engine: one loaded GGUF model shared by every NPC.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;

use crate::backend::backend;
use crate::chat::{Chat, ChatOptions, SavedChat};
use crate::error::{ChatError, ModelError, SaveError};
use crate::gguf;
use crate::persona::Persona;

/// File name of the default model, SmolLM2-135M-Instruct quantized to Q4_1.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Environment variable naming the GGUF model to use instead of the default.
pub const MODEL_ENV: &str = "KILN_NPC_MODEL";

/// Kiln's cache folder, where `kiln fetch-models` puts the model: `$KILN_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`.
pub fn kiln_cache_dir() -> PathBuf {
    std::env::var_os("KILN_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("kiln")))
        .or_else(|| std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/kiln")))
        .unwrap_or_else(|| PathBuf::from(".kiln-cache"))
}

/// The places the default model is looked for, in order:
/// 1. `$KILN_NPC_MODEL`;
/// 2. the game's assets, `<root>/assets/models/SmolLM2-135M-Instruct.Q4_1.gguf`, with `<root>`
///    found as Bevy's `AssetPlugin` finds it (`$BEVY_ASSET_ROOT`, else the run-time
///    `$CARGO_MANIFEST_DIR` that `cargo run` sets, else the executable's folder) — where a game
///    ships the model;
/// 3. Kiln's cache ([`kiln_cache_dir`]`/models/`), where `kiln fetch-models` puts it.
///
/// Nothing is taken from where this crate was compiled.
pub fn model_search_paths() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(p) = std::env::var_os(MODEL_ENV).filter(|p| !p.is_empty()) {
        paths.push(PathBuf::from(p));
    }
    let root = std::env::var_os("BEVY_ASSET_ROOT")
        .or_else(|| std::env::var_os("CARGO_MANIFEST_DIR"))
        .map(PathBuf::from)
        .or_else(|| {
            std::env::current_exe()
                .ok()?
                .parent()
                .map(Path::to_path_buf)
        });
    if let Some(root) = root {
        paths.push(root.join("assets/models").join(DEFAULT_MODEL_FILE));
    }
    paths.push(kiln_cache_dir().join("models").join(DEFAULT_MODEL_FILE));
    paths
}

/// The first of [`model_search_paths`] that is a file, or [`ModelError::NoDefaultModel`] naming
/// every place it looked.
pub fn find_model() -> Result<PathBuf, ModelError> {
    let searched = model_search_paths();
    searched
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or(ModelError::NoDefaultModel { searched })
}

/// The default model's path: [`find_model`]'s answer, else the cache path (where
/// `kiln fetch-models` would put it). Prefer [`find_model`] where the error can be shown.
pub fn default_model_path() -> PathBuf {
    find_model().unwrap_or_else(|_| kiln_cache_dir().join("models").join(DEFAULT_MODEL_FILE))
}

/// How the engine runs the model. Every setting has a default that works on a small CPU.
///
/// ```
/// let config = kiln_npc::EngineConfig::default().with_threads(2).with_context_size(1024);
/// assert_eq!(config.threads(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    threads: NonZeroU32,
    context_size: NonZeroU32,
    batch_size: NonZeroU32,
    gpu_layers: u32,
    slots: NonZeroU32,
}

/// The most NPCs whose conversations one engine keeps in its context at once.
pub const MAX_SLOTS: u32 = 64;

impl Default for EngineConfig {
    /// One thread (it holds its speed when the game keeps the other cores busy; `cargo xtask
    /// bench npc` measures it), 2048 tokens of context per NPC, 4 NPCs held in the context at
    /// once, batches of 64 tokens (as fast as larger ones for small models, and the longest a
    /// cancel or a drop waits), no GPU offload.
    fn default() -> Self {
        Self {
            threads: NonZeroU32::MIN,
            context_size: NonZeroU32::new(2048).expect("non-zero"),
            batch_size: NonZeroU32::new(64).expect("non-zero"),
            gpu_layers: 0,
            slots: NonZeroU32::new(4).expect("non-zero"),
        }
    }
}

impl EngineConfig {
    /// Threads the engine's worker uses for every NPC, generating and evaluating prompts (0 is
    /// read as 1).
    #[must_use]
    pub fn with_threads(mut self, threads: u32) -> Self {
        self.threads = NonZeroU32::new(threads).unwrap_or(NonZeroU32::MIN);
        self
    }
    /// Tokens of context per NPC: persona, remembered turns and the reply in progress (at least
    /// 64; llama.cpp rounds a KV stream up to a multiple of 256).
    #[must_use]
    pub fn with_context_size(mut self, tokens: u32) -> Self {
        self.context_size = NonZeroU32::new(tokens.max(64)).expect("non-zero");
        self
    }
    /// Tokens evaluated per llama.cpp batch; smaller saves memory and makes cancelling quicker
    /// (at least 8). Replies are reproducible for a given batch size: llama.cpp's kernels may
    /// round differently for other batch shapes.
    #[must_use]
    pub fn with_batch_size(mut self, tokens: u32) -> Self {
        self.batch_size = NonZeroU32::new(tokens.max(8)).expect("non-zero");
        self
    }
    /// NPCs whose conversations the context holds at once, each in its own KV stream (1 to
    /// [`MAX_SLOTS`]). More NPCs may talk: when one needs a stream and none is free, the NPC
    /// quiet for longest gives its up and evaluates its history again when it next speaks
    /// (slower, the same reply). Memory grows with `slots × context_size`.
    #[must_use]
    pub fn with_slots(mut self, slots: u32) -> Self {
        self.slots = NonZeroU32::new(slots.clamp(1, MAX_SLOTS)).expect("non-zero");
        self
    }
    /// NPCs held in the context at once.
    pub fn slots(&self) -> u32 {
        self.slots.get()
    }
    /// Layers to offload to a GPU, when llama.cpp was built with one (default 0).
    #[must_use]
    pub fn with_gpu_layers(mut self, layers: u32) -> Self {
        self.gpu_layers = layers;
        self
    }
    /// Threads of the engine's worker.
    pub fn threads(&self) -> u32 {
        self.threads.get()
    }
    /// Tokens of context per NPC.
    pub fn context_size(&self) -> u32 {
        self.context_size.get()
    }
    /// Tokens per batch.
    pub fn batch_size(&self) -> u32 {
        self.batch_size.get()
    }
    /// GPU layers.
    pub fn gpu_layers(&self) -> u32 {
        self.gpu_layers
    }
}

/// A short identity of a model file: the SHA-256 of its GGUF header (metadata and tensor table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModelFingerprint(pub [u8; 32]);

impl std::fmt::Display for ModelFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

pub(crate) struct EngineInner {
    pub(crate) model: LlamaModel,
    pub(crate) path: PathBuf,
    pub(crate) config: EngineConfig,
    pub(crate) name: Option<String>,
    pub(crate) has_chat_template: bool,
    pub(crate) fingerprint: ModelFingerprint,
    pub(crate) live_chats: AtomicUsize,
    pub(crate) work: std::sync::Mutex<WorkStats>,
}

/// What an engine's worker has done since it started: a profile of the crowd.
///
/// ```no_run
/// # let engine: kiln_npc::Engine = todo!();
/// let w = engine.work();
/// println!(
///     "{:.1} NPCs per generation decode, {:.0}% of its time sampling",
///     w.generated_tokens as f64 / w.generation_decodes.max(1) as f64,
///     100.0 * w.sampling_time.as_secs_f64()
///         / (w.sampling_time + w.generation_decode_time).as_secs_f64()
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkStats {
    /// Decodes that advanced replying NPCs by one token each.
    pub generation_decodes: u64,
    /// Reply tokens those decodes evaluated (one per replying NPC per decode).
    pub generated_tokens: u64,
    /// Time spent in those decodes.
    pub generation_decode_time: std::time::Duration,
    /// Time spent choosing reply tokens under the grammar (after each decode).
    pub sampling_time: std::time::Duration,
    /// Decodes of prompt chunks (new lines, catch-ups, restored history).
    pub prompt_decodes: u64,
    /// Tokens those decodes evaluated.
    pub prompt_tokens: u64,
    /// Time spent in those decodes.
    pub prompt_decode_time: std::time::Duration,
    /// Persona tokens an NPC took from another NPC's stream with the same persona instead of
    /// evaluating them.
    pub shared_prefix_tokens: u64,
}

/// A GGUF chat model loaded once and shared by many NPCs. Cheap to clone.
///
/// ```no_run
/// use kiln_npc::{Engine, EngineConfig, Persona, ChatOptions};
/// let engine = Engine::load("SmolLM2-135M-Instruct.Q4_1.gguf", EngineConfig::default())?;
/// let persona = Persona::load("assets/npcs/blacksmith.toml")?;
/// let chat = engine.chat(persona, ChatOptions::default().with_seed(7))?;
/// let reply = chat.ask_blocking("What is your name?")?;
/// println!("{} ({}, action {})", reply.say, reply.emotion, reply.action);
/// # Ok::<(), kiln_npc::NpcError>(())
/// ```
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
    pub(crate) crowd: Arc<crate::chat::crowd::CrowdHandle>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("path", &self.inner.path)
            .field("name", &self.inner.name)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Checks and loads a GGUF model. A missing, empty, truncated or non-GGUF file gives a
    /// [`ModelError`] that says what is wrong; llama.cpp never sees such a file.
    pub fn load(path: impl AsRef<Path>, config: EngineConfig) -> Result<Engine, ModelError> {
        let path = path.as_ref();
        let summary = gguf::inspect(path)?;
        if path.to_str().is_none() {
            return Err(ModelError::BadPath {
                path: path.to_path_buf(),
            });
        }
        let backend = backend();
        let params = LlamaModelParams::default().with_n_gpu_layers(config.gpu_layers);
        crate::backend::clear_errors();
        let started = std::time::Instant::now();
        let model = LlamaModel::load_from_file(backend, path, &params).map_err(|_| {
            ModelError::LoadFailed {
                path: path.to_path_buf(),
                detail: crate::backend::take_errors(),
            }
        })?;
        tracing::info!(
            model = %path.display(),
            name = summary.name.as_deref().unwrap_or("?"),
            architecture = summary.architecture.as_deref().unwrap_or("?"),
            tensors = summary.tensor_count,
            chat_template = summary.has_chat_template,
            ms = started.elapsed().as_millis() as u64,
            "loaded model"
        );
        let inner = Arc::new(EngineInner {
            model,
            path: path.to_path_buf(),
            config,
            name: summary.name,
            has_chat_template: summary.has_chat_template,
            fingerprint: ModelFingerprint(summary.header_sha256),
            live_chats: AtomicUsize::new(0),
            work: std::sync::Mutex::new(WorkStats::default()),
        });
        let crowd = crate::chat::crowd::CrowdHandle::start(inner.clone()).map_err(|e| {
            ModelError::LoadFailed {
                path: path.to_path_buf(),
                detail: Some(format!("cannot start the NPC worker thread: {e}")),
            }
        })?;
        Ok(Engine {
            inner,
            crowd: Arc::new(crowd),
        })
    }

    /// Starts a conversation with `persona`, served by the engine's worker with every other NPC.
    pub fn chat(&self, persona: Persona, options: ChatOptions) -> Result<Chat, ChatError> {
        Chat::spawn(self, persona, options, None)
    }

    /// Restores a saved conversation: the chat remembers every turn and continues as the
    /// original would have.
    pub fn restore_chat(
        &self,
        persona: Persona,
        saved: SavedChat,
    ) -> Result<Chat, crate::NpcError> {
        if saved.persona != persona.name() {
            return Err(SaveError::PersonaMismatch {
                saved: saved.persona,
                given: persona.name().to_string(),
            }
            .into());
        }
        saved
            .check()
            .map_err(|reason| SaveError::Invalid { reason })?;
        let options = saved.options.clone();
        Ok(Chat::spawn(self, persona, options, Some(saved))?)
    }

    /// The model file.
    pub fn model_path(&self) -> &Path {
        &self.inner.path
    }
    /// The model's `general.name`, when it has one.
    pub fn model_name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }
    /// Whether the model carries its own chat template (otherwise a ChatML fallback is used).
    pub fn has_chat_template(&self) -> bool {
        self.inner.has_chat_template
    }
    /// The model's fingerprint.
    pub fn fingerprint(&self) -> ModelFingerprint {
        self.inner.fingerprint
    }
    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }
    /// What the engine's worker has done so far (decodes, tokens, time), to see where a crowd's
    /// time goes.
    pub fn work(&self) -> WorkStats {
        self.inner
            .work
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    /// How many chats are open now (a dropped chat is forgotten at the worker's next loop).
    pub fn live_chats(&self) -> usize {
        self.inner.live_chats.load(Ordering::SeqCst)
    }
}
