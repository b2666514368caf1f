//! The KV cache: which tokens it holds, and evaluating the history in one canonical shape.

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

impl Worker<'_> {
    /// Evaluates what the cache lacks of the remembered history (the persona, restored turns, the
    /// close of the last reply) until `stop` says so. A failure is only logged: the next question
    /// evaluates whatever is still missing, and reports errors then.
    pub(super) fn catch_up(&mut self, stop: &dyn Fn() -> bool) {
        let history = self.schedule(self.first_remembered, None);
        match self.sync(&history, false, stop) {
            Ok(_) | Err(ChatError::Cancelled) => {}
            Err(e) => tracing::warn!(
                persona = self.persona.name(),
                "evaluating the conversation so far failed: {e}"
            ),
        }
    }

    /// The canonical evaluation of the persona, the turns from `first` on, and (when given) a
    /// new player line: the persona as one batch; per turn, the player's words and the opening
    /// of the NPC's turn as one batch, the reply one token at a time (its last token is never
    /// evaluated during generation), then the reply's last token and the closing of the NPC's
    /// turn as one batch, which the worker evaluates while the player reads the reply.
    pub(super) fn schedule(&self, first: usize, new_words: Option<&[LlamaToken]>) -> Vec<Segment> {
        let batch = |tokens: Vec<LlamaToken>| Segment {
            tokens,
            shape: Shape::Batch,
        };
        let player_turn = |words: &[LlamaToken]| {
            let mut t = words.to_vec();
            t.extend_from_slice(&self.player_end);
            batch(t)
        };
        let mut segments = vec![batch(self.persona_tokens.clone())];
        for turn in &self.turns[first..] {
            segments.push(player_turn(&turn.words));
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
        if let Some(words) = new_words {
            segments.push(player_turn(words));
        }
        segments.retain(|s| !s.tokens.is_empty());
        segments
    }

    /// Makes the KV cache hold exactly the scheduled tokens, evaluating only what it does not
    /// hold yet, in the canonical shape. With `need_logits`, the last token is always evaluated
    /// (its logits are needed) and its batch index is returned. `stop` is polled between
    /// batches; when it says stop, the result is `Err(ChatError::Cancelled)`.
    pub(super) fn sync(
        &mut self,
        segments: &[Segment],
        need_logits: bool,
        stop: &dyn Fn() -> bool,
    ) -> Result<(usize, Option<i32>), ChatError> {
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
            let removed = self
                .ctx
                .clear_kv_cache_seq(Some(0), Some(common as u32), None)
                .map_err(decode_err)?;
            if removed {
                self.cached.truncate(common);
            } else {
                // Models whose cache cannot be cut part-way (recurrent ones) start over.
                self.ctx.clear_kv_cache();
                self.cached.clear();
                return self.sync(segments, need_logits, stop);
            }
        }
        let mut batch = LlamaBatch::new(self.n_batch, 1);
        let mut last = None;
        for pair in calls.windows(2).filter(|w| w[0] >= common) {
            if stop() {
                return Err(ChatError::Cancelled);
            }
            let chunk = &target[pair[0]..pair[1]];
            batch.clear();
            for (i, tok) in chunk.iter().enumerate() {
                let pos = (pair[0] + i) as i32;
                let logits = need_logits && pair[0] + i + 1 == target.len();
                batch.add(*tok, pos, &[0], logits).map_err(decode_err)?;
            }
            self.ctx.decode(&mut batch).map_err(decode_err)?;
            self.cached.extend_from_slice(chunk);
            last = Some(chunk.len() as i32 - 1);
        }
        Ok((common, if need_logits { last } else { None }))
    }
}
