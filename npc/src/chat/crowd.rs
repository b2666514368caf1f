//! The crowd: one worker thread and one llama.cpp context serve every NPC of an [`Engine`].
//!
//! Each NPC holds a sequence of the context, and every sequence has its own KV stream
//! (`kv_unified = false`). Each loop the worker
//! 1. takes up commands (a player line, a reset, a snapshot, a new or closed chat);
//! 2. advances every NPC that is replying by one token, all in one decode;
//! 3. runs one decode call of one NPC's prompt (its new line, or the history it has to catch up
//!    on), alone in its batch, in the canonical shape of [`super::kv`].
//!
//! Why a reply does not depend on who else talks: a sequence's own tokens are always evaluated in
//! the same shapes (prompt chunks alone, reply tokens one per decode), and with a KV stream per
//! sequence llama.cpp's CPU kernels give a sequence's logits the same bits alone, beside other
//! talking sequences, and beside a late joiner's prompt (measured: `tests/crowd.rs`, and
//! `shared/DESIGN.md`'s facts). A unified KV cache does not keep that promise.
//!
//! The context is made when the first chat opens and freed when the last one closes.
//!
//! There are [`EngineConfig::slots`] sequences. When more NPCs need one than there are, the NPC
//! that has waited longest since it last spoke gives its sequence up and evaluates its history
//! again when it next speaks: slower, but the same reply.

use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, Sender};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;

use crate::backend::backend;
use crate::engine::{EngineConfig, EngineInner};
use crate::error::ChatError;
use crate::persona::Persona;

use super::generate::{Reply, Step};
use super::kv::Plan;
use super::worker::{Flags, Worker, decode_err};
use super::{ChatEvent, ChatOptions, Command, RequestId, SavedChat};

/// What a [`super::Chat`] handle sends to the crowd.
pub(crate) enum Msg {
    Open(Box<Open>),
    Command(u64, Command),
    /// Forget a chat; the worker answers on the channel once it has (and once the context is
    /// freed, when that was the last chat).
    Close(u64, Sender<()>),
    Shutdown,
}

pub(crate) struct Open {
    pub(crate) key: u64,
    pub(crate) persona: Persona,
    pub(crate) options: ChatOptions,
    pub(crate) saved: Option<SavedChat>,
    pub(crate) events: Sender<ChatEvent>,
    pub(crate) flags: Flags,
    pub(crate) ready: Sender<Result<(), ChatError>>,
}

/// The crowd's thread, shared by the engine's clones and its chats; the last one to go stops it.
pub(crate) struct CrowdHandle {
    pub(crate) messages: Sender<Msg>,
    shutdown: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub(crate) next_key: std::sync::atomic::AtomicU64,
}

impl Drop for CrowdHandle {
    /// Stops the worker and waits for it: at most one decode call (a token of every talking NPC,
    /// or one prompt chunk of `batch_size` tokens). A thread still inside llama.cpp while the
    /// process exits can crash it.
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        let _ = self.messages.send(Msg::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl CrowdHandle {
    pub(crate) fn start(inner: Arc<EngineInner>) -> std::io::Result<CrowdHandle> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let shutdown = Arc::new(AtomicBool::new(false));
        let stop = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name("kiln-npc:crowd".into())
            .spawn(move || run(&inner, &rx, &stop))?;
        Ok(CrowdHandle {
            messages: tx,
            shutdown,
            thread: Some(thread),
            next_key: std::sync::atomic::AtomicU64::new(1),
        })
    }
}

enum Activity {
    Idle,
    /// Evaluating the history while the player reads (a new line waits for it: it needs those
    /// tokens first).
    CatchUp(Plan),
    /// Evaluating a new line's prompt.
    Prompt(Reply, Plan),
    /// Generating; the token is the next to evaluate.
    Generate(Reply, LlamaToken),
}

struct Member<'m> {
    worker: Worker<'m>,
    events: Sender<ChatEvent>,
    flags: Flags,
    queue: VecDeque<Command>,
    activity: Activity,
    /// When it last used its sequence (a loop counter), for giving sequences up.
    last_used: u64,
    /// A reply just ended: evaluate its close while the player reads.
    pending_catch_up: bool,
}

impl Member<'_> {
    fn busy(&self) -> bool {
        matches!(self.activity, Activity::Prompt(..) | Activity::Generate(..))
    }
    fn has_work(&self) -> bool {
        !matches!(self.activity, Activity::Idle) || !self.queue.is_empty() || self.pending_catch_up
    }
    fn end(&mut self, id: RequestId, result: Result<ChatEvent, ChatError>) {
        let event = match result {
            Ok(e) => e,
            Err(ChatError::Cancelled) => ChatEvent::Cancelled { request: id },
            Err(error) => ChatEvent::Failed { request: id, error },
        };
        let _ = self.events.send(event);
        self.activity = Activity::Idle;
    }
}

struct Crowd<'m> {
    inner: &'m EngineInner,
    ctx: Option<LlamaContext<'m>>,
    members: BTreeMap<u64, Member<'m>>,
    batch: LlamaBatch<'m>,
    clock: u64,
    /// The member whose prompt ran last (prompts take turns).
    last_prompt: u64,
}

/// Tokens one decode may hold: a prompt chunk, or a token of every sequence.
fn n_batch(cfg: &EngineConfig) -> u32 {
    cfg.batch_size().max(cfg.slots())
}

fn config_ctx_params(cfg: &EngineConfig) -> LlamaContextParams {
    let slots = cfg.slots();
    let threads = cfg.threads() as i32;
    let n_batch = n_batch(cfg);
    LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(cfg.context_size() * slots))
        .with_n_batch(n_batch)
        .with_n_ubatch(n_batch)
        .with_n_seq_max(slots)
        .with_kv_unified(false)
        .with_n_threads(threads)
        .with_n_threads_batch(threads)
}

fn run(inner: &EngineInner, rx: &Receiver<Msg>, shutdown: &AtomicBool) {
    let mut crowd = Crowd {
        inner,
        ctx: None,
        members: BTreeMap::new(),
        batch: LlamaBatch::new(n_batch(&inner.config) as usize, 1),
        clock: 0,
        last_prompt: 0,
    };
    loop {
        if shutdown.load(Ordering::Relaxed) {
            break;
        }
        let busy = crowd.members.values().any(Member::has_work);
        if !busy {
            match rx.recv() {
                Ok(m) => {
                    if !crowd.handle(m) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        let mut open = true;
        while let Ok(m) = rx.try_recv() {
            if !crowd.handle(m) {
                open = false;
                break;
            }
        }
        if !open || shutdown.load(Ordering::Relaxed) {
            break;
        }
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| crowd.step()));
        if step.is_err() {
            tracing::error!("the NPC worker panicked; the replies in progress failed");
            crowd.recover();
        }
    }
    tracing::debug!("NPC crowd worker stopped");
    inner.live_chats.store(0, Ordering::SeqCst);
}

impl<'m> Crowd<'m> {
    /// Takes one message; false to stop.
    fn handle(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Open(open) => {
                let ready = open.ready.clone();
                let opened = self.open(*open);
                if opened.is_err() {
                    // A first chat that could not open leaves no context behind either.
                    self.free_context_if_unused();
                }
                let _ = ready.send(opened);
            }
            Msg::Command(key, cmd) => {
                if let Some(m) = self.members.get_mut(&key) {
                    m.queue.push_back(cmd);
                }
            }
            Msg::Close(key, done) => {
                if let Some(m) = self.members.remove(&key) {
                    self.release(m.worker.seq);
                    self.inner.live_chats.fetch_sub(1, Ordering::SeqCst);
                }
                self.free_context_if_unused();
                let _ = done.send(());
            }
            Msg::Shutdown => return false,
        }
        true
    }

    /// With no chat left, frees the context (its KV streams), as a chat's own context was freed
    /// with it before: a process may then exit without a llama.cpp context alive, which
    /// llama.cpp's exit-time clean-up does not survive.
    fn free_context_if_unused(&mut self) {
        if self.members.is_empty() && self.ctx.take().is_some() {
            tracing::debug!("NPC crowd context freed: no chat is open");
        }
    }

    fn context(&mut self) -> Result<&mut LlamaContext<'m>, ChatError> {
        if self.ctx.is_none() {
            // llama.cpp may write to the model while it creates a context: never two at once.
            static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let _creating = CREATING.lock().unwrap_or_else(|e| e.into_inner());
            crate::backend::clear_errors();
            let ctx = self
                .inner
                .model
                .new_context(backend(), config_ctx_params(&self.inner.config))
                .map_err(|e| ChatError::Context {
                    reason: crate::backend::take_errors().unwrap_or_else(|| e.to_string()),
                })?;
            tracing::debug!(
                slots = self.inner.config.slots(),
                stream = ctx.n_ctx() / self.inner.config.slots(),
                "NPC crowd context ready"
            );
            self.ctx = Some(ctx);
        }
        Ok(self.ctx.as_mut().expect("just made"))
    }

    fn open(&mut self, open: Open) -> Result<(), ChatError> {
        let Open {
            key,
            persona,
            options,
            saved,
            events,
            flags,
            ready: _,
        } = open;
        let stream = self.context()?.n_ctx() / self.inner.config.slots();
        let asked = options
            .context_size
            .unwrap_or(self.inner.config.context_size());
        // A chat (or a save) may ask for more than a stream holds: it gets the stream.
        let n_ctx = asked.min(stream);
        if n_ctx < asked {
            tracing::debug!(
                persona = persona.name(),
                asked,
                stream,
                "the chat's context is limited to the engine's per-NPC stream"
            );
        }
        let n_batch = self.inner.config.batch_size().min(n_ctx);
        let worker = Worker::new(
            &self.inner.model,
            self.inner.fingerprint.to_string(),
            persona,
            options,
            saved,
            n_ctx,
            n_batch,
        )?;
        let warm = worker.options.warm_up;
        self.members.insert(
            key,
            Member {
                worker,
                events,
                flags,
                queue: VecDeque::new(),
                activity: Activity::Idle,
                last_used: self.clock,
                pending_catch_up: false,
            },
        );
        self.inner.live_chats.fetch_add(1, Ordering::SeqCst);
        // Warm up: evaluate the persona and any restored history before the first line (taking
        // the stream of the NPC quiet for longest when none is free: the new one is likely the
        // next to speak).
        if warm && self.acquire(key) {
            self.start_catch_up(key);
        }
        Ok(())
    }

    /// Empties a sequence's stream (the member that held it has let it go).
    fn release(&mut self, seq: Option<i32>) {
        if let (Some(seq), Some(ctx)) = (seq, self.ctx.as_mut()) {
            let _ = ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
        }
    }

    /// A sequence no member holds.
    fn free_seq(&self) -> Option<i32> {
        (0..self.inner.config.slots() as i32)
            .find(|s| !self.members.values().any(|m| m.worker.seq == Some(*s)))
    }

    /// Gives member `key` a sequence: its own, a free one, or the one of the member that has
    /// been quiet longest. False when every sequence is in use by a replying NPC.
    fn acquire(&mut self, key: u64) -> bool {
        let clock = self.clock;
        let Some(m) = self.members.get_mut(&key) else {
            return false;
        };
        m.last_used = clock;
        if m.worker.seq.is_some() {
            return true;
        }
        let seq = match self.free_seq() {
            Some(s) => s,
            None => {
                let victim = self
                    .members
                    .iter()
                    .filter(|(k, m)| **k != key && m.worker.seq.is_some() && !m.busy())
                    .min_by_key(|(k, m)| (m.last_used, **k))
                    .map(|(k, _)| *k);
                let Some(victim) = victim else {
                    return false;
                };
                let v = self.members.get_mut(&victim).expect("listed");
                let seq = v.worker.seq.take().expect("holds one");
                v.worker.cached.clear();
                if matches!(v.activity, Activity::CatchUp(_)) {
                    v.activity = Activity::Idle;
                }
                tracing::debug!(
                    persona = v.worker.persona.name(),
                    "gave up its KV stream to another NPC"
                );
                self.release(Some(seq));
                seq
            }
        };
        self.members.get_mut(&key).expect("exists").worker.seq = Some(seq);
        true
    }

    /// An NPC whose stream is empty takes its persona from the stream of another NPC that holds
    /// the same persona prompt (the same tokens, evaluated in the same canonical chunks), so a
    /// persona several NPCs share is evaluated once: the stream is copied and cut after the
    /// persona. The copied entries are the very bits an evaluation would have written.
    fn share_prefix(&mut self, key: u64) {
        let Some(ctx) = self.ctx.as_mut() else { return };
        let Some(m) = self.members.get(&key) else {
            return;
        };
        let (Some(dst), true) = (m.worker.seq, m.worker.cached.is_empty()) else {
            return;
        };
        let persona = &m.worker.persona_tokens;
        let src = self
            .members
            .iter()
            .filter(|(k, o)| **k != key && o.worker.n_batch == m.worker.n_batch)
            .find(|(_, o)| o.worker.cached.starts_with(persona))
            .and_then(|(_, o)| o.worker.seq);
        let Some(src) = src else { return };
        let n = persona.len();
        let copied = ctx.copy_kv_cache_seq(src, dst, None, None).is_ok()
            && ctx
                .clear_kv_cache_seq(Some(dst as u32), Some(n as u32), None)
                .unwrap_or(false);
        let m = self.members.get_mut(&key).expect("listed");
        if copied {
            m.worker.cached = m.worker.persona_tokens.clone();
            let mut w = self.inner.work.lock().unwrap_or_else(|e| e.into_inner());
            w.shared_prefix_tokens += n as u64;
        } else {
            let _ = ctx.clear_kv_cache_seq(Some(dst as u32), None, None);
        }
    }

    fn start_catch_up(&mut self, key: u64) {
        self.share_prefix(key);
        let Some(ctx) = self.ctx.as_mut() else { return };
        let Some(m) = self.members.get_mut(&key) else {
            return;
        };
        match m.worker.catch_up_plan(ctx) {
            Ok(plan) if !plan.done() => m.activity = Activity::CatchUp(plan),
            Ok(_) => m.activity = Activity::Idle,
            Err(e) => {
                tracing::warn!(
                    persona = m.worker.persona.name(),
                    "evaluating the conversation so far failed: {e}"
                );
                m.activity = Activity::Idle;
            }
        }
    }

    /// One round of work (see the module's description).
    fn step(&mut self) {
        self.clock += 1;
        let mut closing = Vec::new();
        for (k, m) in &mut self.members {
            if m.pending_catch_up && matches!(m.activity, Activity::Idle) {
                m.pending_catch_up = false;
                if m.worker.seq.is_some() {
                    closing.push(*k);
                }
            }
        }
        for key in closing {
            self.start_catch_up(key);
        }
        self.take_commands();
        self.drop_cancelled();
        self.generate();
        self.prompt_chunk();
    }

    /// Starts the next command of each member that is free to take one.
    fn take_commands(&mut self) {
        let keys: Vec<u64> = self.members.keys().copied().collect();
        for key in keys {
            loop {
                let m = self.members.get_mut(&key).expect("listed");
                // A catch-up evaluates what the next prompt needs anyway: let it finish first.
                if !matches!(m.activity, Activity::Idle) {
                    break;
                }
                let Some(cmd) = m.queue.pop_front() else {
                    break;
                };
                match cmd {
                    Command::Ask { id, text, choices } => {
                        if m.flags.cancelled(id) {
                            let _ = m.events.send(ChatEvent::Cancelled { request: id });
                            continue;
                        }
                        if !self.acquire(key) {
                            // Every sequence is replying: wait for one.
                            let m = self.members.get_mut(&key).expect("listed");
                            m.queue.push_front(Command::Ask { id, text, choices });
                            break;
                        }
                        self.begin(key, id, &text, choices);
                    }
                    Command::Reset(seed) => {
                        m.activity = Activity::Idle;
                        m.worker.turns.clear();
                        m.worker.first_remembered = 0;
                        if let Some(seed) = seed {
                            m.worker.options.seed = seed;
                        }
                    }
                    Command::Snapshot(reply) => {
                        let _ = reply.send(m.worker.snapshot());
                    }
                }
            }
        }
    }

    fn begin(&mut self, key: u64, id: RequestId, text: &str, choices: crate::reply::Choices) {
        self.share_prefix(key);
        let ctx = self.ctx.as_mut().expect("a member holds a sequence");
        let m = self.members.get_mut(&key).expect("listed");
        let started = m
            .worker
            .begin(id, text, choices)
            .and_then(|(reply, schedule)| Ok((reply, m.worker.plan(ctx, &schedule, true)?)));
        match started {
            Ok((reply, plan)) => m.activity = Activity::Prompt(reply, plan),
            Err(e) => m.end(id, Err(e)),
        }
    }

    fn drop_cancelled(&mut self) {
        for m in self.members.values_mut() {
            let id = match &m.activity {
                Activity::Prompt(r, _) | Activity::Generate(r, _) => r.id,
                _ => continue,
            };
            if m.flags.cancelled(id) {
                m.end(id, Err(ChatError::Cancelled));
            }
        }
    }

    /// Every replying NPC's next token, in one decode.
    fn generate(&mut self) {
        let talking: Vec<u64> = self
            .members
            .iter()
            .filter(|(_, m)| matches!(m.activity, Activity::Generate(..)))
            .map(|(k, _)| *k)
            .collect();
        if talking.is_empty() {
            return;
        }
        let Some(ctx) = self.ctx.as_mut() else { return };
        self.batch.clear();
        let mut added = Ok(());
        for key in &talking {
            let m = &self.members[key];
            if let (Activity::Generate(_, tok), Some(seq)) = (&m.activity, m.worker.seq) {
                let pos = m.worker.cached.len() as i32;
                added = added.and(self.batch.add(*tok, pos, &[seq], true));
            }
        }
        let started = std::time::Instant::now();
        let decoded = added
            .map_err(|e| e.to_string())
            .and_then(|()| ctx.decode(&mut self.batch).map_err(|e| e.to_string()));
        let decoded_at = std::time::Instant::now();
        for (i, key) in talking.iter().enumerate() {
            let m = self.members.get_mut(key).expect("listed");
            let Activity::Generate(mut reply, tok) =
                std::mem::replace(&mut m.activity, Activity::Idle)
            else {
                continue;
            };
            let id = reply.id;
            if let Err(e) = &decoded {
                m.end(id, Err(decode_err(e)));
                continue;
            }
            m.worker.cached.push(tok);
            m.last_used = self.clock;
            let logits = ctx.get_logits_ith(i as i32);
            let step = m.worker.sample(&mut reply, logits, &m.events);
            Self::sampled(m, step, reply);
        }
        let mut w = self.inner.work.lock().unwrap_or_else(|e| e.into_inner());
        w.generation_decodes += 1;
        w.generated_tokens += talking.len() as u64;
        w.generation_decode_time += decoded_at - started;
        w.sampling_time += decoded_at.elapsed();
    }

    /// One decode call of one prompt: a new line's first (they take turns), else a catch-up.
    fn prompt_chunk(&mut self) {
        let pick = |want_prompt: bool, after: u64, members: &BTreeMap<u64, Member<'m>>| {
            let wanted = |m: &Member<'_>| match m.activity {
                Activity::Prompt(..) => want_prompt,
                Activity::CatchUp(_) => !want_prompt,
                _ => false,
            };
            members
                .range(after + 1..)
                .chain(members.range(..=after))
                .find(|(_, m)| wanted(m))
                .map(|(k, _)| *k)
        };
        let Some(key) = pick(true, self.last_prompt, &self.members)
            .or_else(|| pick(false, self.last_prompt, &self.members))
        else {
            return;
        };
        self.last_prompt = key;
        let Some(ctx) = self.ctx.as_mut() else { return };
        let m = self.members.get_mut(&key).expect("picked");
        m.last_used = self.clock;
        let (started, before) = (std::time::Instant::now(), m.worker.cached.len());
        match std::mem::replace(&mut m.activity, Activity::Idle) {
            Activity::CatchUp(mut plan) => {
                match m.worker.advance(ctx, &mut self.batch, &mut plan) {
                    Ok(_) if plan.done() => {}
                    Ok(_) => m.activity = Activity::CatchUp(plan),
                    Err(e) => tracing::warn!(
                        persona = m.worker.persona.name(),
                        "evaluating the conversation so far failed: {e}"
                    ),
                }
            }
            Activity::Prompt(mut reply, mut plan) => {
                let id = reply.id;
                match m.worker.advance(ctx, &mut self.batch, &mut plan) {
                    Err(e) => m.end(id, Err(e)),
                    Ok(None) if !plan.done() => m.activity = Activity::Prompt(reply, plan),
                    Ok(None) => m.end(id, Err(decode_err("no logits"))),
                    Ok(Some(idx)) => {
                        m.worker.prompt_done(&mut reply, plan.reused);
                        let logits = ctx.get_logits_ith(idx);
                        let step = m.worker.sample(&mut reply, logits, &m.events);
                        Self::sampled(m, step, reply);
                    }
                }
            }
            other => m.activity = other,
        }
        let evaluated = m.worker.cached.len().saturating_sub(before) as u64;
        let mut w = self.inner.work.lock().unwrap_or_else(|e| e.into_inner());
        w.prompt_decodes += 1;
        w.prompt_tokens += evaluated;
        w.prompt_decode_time += started.elapsed();
    }

    /// Acts on a sampled token: the reply goes on, ends (and the turn's close is evaluated
    /// while the player reads), or fails.
    fn sampled(m: &mut Member<'m>, step: Result<Step, ChatError>, reply: Reply) {
        let id = reply.id;
        match step {
            Ok(Step::Next(tok)) => m.activity = Activity::Generate(reply, tok),
            Ok(Step::Done(done)) => {
                let (npc_reply, stats) = *done;
                m.end(
                    id,
                    Ok(ChatEvent::Reply {
                        request: id,
                        reply: npc_reply,
                        stats,
                    }),
                );
                m.pending_catch_up = true;
            }
            Err(e) => m.end(id, Err(e)),
        }
    }

    /// After a panic: every reply in progress fails, and the streams of those NPCs are emptied
    /// (they are evaluated again when next needed).
    fn recover(&mut self) {
        let keys: Vec<u64> = self.members.keys().copied().collect();
        for key in keys {
            let m = self.members.get_mut(&key).expect("listed");
            let id = match &m.activity {
                Activity::Prompt(r, _) | Activity::Generate(r, _) => Some(r.id),
                _ => None,
            };
            m.activity = Activity::Idle;
            if let Some(id) = id {
                m.end(id, Err(ChatError::WorkerGone));
            }
            let seq = m.worker.seq.take();
            m.worker.cached.clear();
            self.release(seq);
        }
    }
}
