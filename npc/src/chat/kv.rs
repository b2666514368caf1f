//! The KV cache: which tokens it holds, and evaluating the history in one canonical shape.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;

use crate::error::ChatError;

use super::worker::{Worker, decode_err};

/// How a run of tokens is evaluated.
///
/// llama.cpp's CPU kernels can round differently for different batch shapes, so the same tokens
/// evaluated in one batch or one by one may give different logits in the last bits. To make a
/// restored or trimmed conversation continue exactly as a live one would, the history is always
/// evaluated in one canonical shape: the persona and each player turn as batches (split every
/// `n_batch` tokens), and reply tokens one by one, as they were during generation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Shape {
    Batch,
    OneByOne,
}

pub(super) struct Segment {
    pub(super) tokens: Vec<LlamaToken>,
    pub(super) shape: Shape,
}

/// The decode calls that bring a KV stream to a scheduled history, run one call at a time so
/// that the crowd can advance other NPCs between them.
pub(super) struct Plan {
    target: Vec<LlamaToken>,
    /// Start of each remaining decode call; the last entry is the end.
    calls: Vec<usize>,
    next: usize,
    need_logits: bool,
    /// Tokens the stream already held.
    pub(super) reused: usize,
}

impl Plan {
    /// Whether every call has run.
    pub(super) fn done(&self) -> bool {
        self.next + 1 >= self.calls.len()
    }
}

impl<'m> Worker<'m> {
    /// The catch-up plan: what the stream lacks of the remembered history (the persona,
    /// restored turns, the close of the last reply), evaluated while the player reads.
    pub(super) fn catch_up_plan(&mut self, ctx: &mut LlamaContext<'m>) -> Result<Plan, ChatError> {
        let history = self.schedule(self.first_remembered, None);
        self.plan(ctx, &history, false)
    }

    /// The canonical evaluation of the persona, the turns from `first` on, and (when given) a
    /// new player line (its words and its choices note): the persona as one batch; per turn, the
    /// player's words, the choices note (tokenized on its own) and the opening
    /// of the NPC's turn as one batch, the reply one token at a time (its last token is never
    /// evaluated during generation), then the reply's last token and the closing of the NPC's
    /// turn as one batch, which the worker evaluates while the player reads the reply.
    pub(super) fn schedule(
        &self,
        first: usize,
        new_line: Option<(&[LlamaToken], &[LlamaToken])>,
    ) -> Vec<Segment> {
        let batch = |tokens: Vec<LlamaToken>| Segment {
            tokens,
            shape: Shape::Batch,
        };
        let player_turn = |words: &[LlamaToken], note: &[LlamaToken]| {
            let mut t = words.to_vec();
            t.extend_from_slice(note);
            t.extend_from_slice(&self.player_end);
            batch(t)
        };
        let mut segments = vec![batch(self.persona_tokens.clone())];
        for turn in &self.turns[first..] {
            segments.push(player_turn(&turn.words, &turn.note_tokens));
            let (last, rest) = turn
                .generated
                .split_last()
                .map_or((None, &[][..]), |(l, r)| (Some(*l), r));
            segments.push(Segment {
                tokens: rest.to_vec(),
                shape: Shape::OneByOne,
            });
            let mut close: Vec<LlamaToken> = last.into_iter().collect();
            close.extend_from_slice(&self.npc_end);
            segments.push(batch(close));
        }
        if let Some((words, note)) = new_line {
            segments.push(player_turn(words, note));
        }
        segments.retain(|s| !s.tokens.is_empty());
        segments
    }

    /// Plans to make this NPC's KV stream hold exactly the scheduled tokens, evaluating only
    /// what it does not hold yet, in the canonical shape, and cuts from the stream what the
    /// schedule no longer has. With `need_logits`, the last token is always evaluated (its
    /// logits are needed).
    pub(super) fn plan(
        &mut self,
        ctx: &mut LlamaContext<'m>,
        segments: &[Segment],
        need_logits: bool,
    ) -> Result<Plan, ChatError> {
        let seq = self.seq.ok_or_else(|| decode_err("no KV stream"))?;
        // Where each canonical decode call starts.
        let mut calls = Vec::new();
        let mut target = Vec::new();
        for seg in segments {
            let start = target.len();
            match seg.shape {
                Shape::Batch => calls.extend(
                    (0..seg.tokens.len())
                        .step_by(self.n_batch)
                        .map(|i| start + i),
                ),
                Shape::OneByOne => calls.extend((0..seg.tokens.len()).map(|i| start + i)),
            }
            target.extend_from_slice(&seg.tokens);
        }
        calls.push(target.len());
        let mut common = self
            .cached
            .iter()
            .zip(&target)
            .take_while(|(a, b)| a == b)
            .count();
        if need_logits {
            common = common.min(target.len().saturating_sub(1));
        }
        // Restart at the decode call that covers the first token not in the cache.
        common = calls
            .iter()
            .copied()
            .filter(|c| *c <= common)
            .max()
            .unwrap_or(0);
        if common < self.cached.len() {
            let removed = ctx
                .clear_kv_cache_seq(Some(seq as u32), Some(common as u32), None)
                .map_err(decode_err)?;
            if removed {
                self.cached.truncate(common);
            } else {
                // Models whose cache cannot be cut part-way (recurrent ones) start over.
                ctx.clear_kv_cache_seq(Some(seq as u32), None, None)
                    .map_err(decode_err)?;
                self.cached.clear();
                return self.plan(ctx, segments, need_logits);
            }
        }
        let calls: Vec<usize> = calls.into_iter().filter(|&c| c >= common).collect();
        Ok(Plan {
            target,
            calls,
            next: 0,
            need_logits,
            reused: common,
        })
    }

    /// Runs the plan's next decode call, alone in its batch (the canonical shape). Returns the
    /// batch index of the last token's logits once the last call has run with `need_logits`.
    pub(super) fn advance(
        &mut self,
        ctx: &mut LlamaContext<'m>,
        batch: &mut LlamaBatch<'_>,
        plan: &mut Plan,
    ) -> Result<Option<i32>, ChatError> {
        let seq = self.seq.ok_or_else(|| decode_err("no KV stream"))?;
        if plan.done() {
            return Ok(None);
        }
        let (from, to) = (plan.calls[plan.next], plan.calls[plan.next + 1]);
        let chunk = &plan.target[from..to];
        batch.clear();
        for (i, tok) in chunk.iter().enumerate() {
            let pos = (from + i) as i32;
            let logits = plan.need_logits && from + i + 1 == plan.target.len();
            batch.add(*tok, pos, &[seq], logits).map_err(decode_err)?;
        }
        ctx.decode(batch).map_err(decode_err)?;
        self.cached.extend_from_slice(chunk);
        plan.next += 1;
        Ok((plan.done() && plan.need_logits).then(|| chunk.len() as i32 - 1))
    }
}
