//! Splits a model's chat template into the fixed pieces around each turn, so a conversation can
//! grow token by token: the persona prefix, then for every turn the player's words, the text that
//! closes a player turn and opens the NPC's, the reply, and the text that closes the NPC's turn
//! and opens the next player turn.
//!
//! The pieces come from rendering the model's own template once with sentinel messages. A model
//! without a template, or with one llama.cpp cannot render turn by turn, falls back to ChatML.

use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};

use crate::error::ChatError;
use crate::persona::Persona;

/// The pieces of a rendered conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TurnTemplate {
    /// System prompt, few-shot turns, and the opening of the first player turn.
    pub prefix: String,
    /// Closes a player turn and opens the NPC's.
    pub player_end: String,
    /// Closes the NPC's turn and opens the next player turn.
    pub npc_end: String,
    /// Which template was used, for logs.
    pub source: &'static str,
}

const SENTINELS: [&str; 5] = [
    "KILNSENTINELA",
    "KILNSENTINELB",
    "KILNSENTINELC",
    "KILNSENTINELD",
    "KILNSENTINELE",
];

fn msg(role: &str, content: &str) -> Result<LlamaChatMessage, String> {
    LlamaChatMessage::new(role.into(), content.into()).map_err(|e| e.to_string())
}

fn split(
    model: &LlamaModel,
    tmpl: &LlamaChatTemplate,
    persona: &Persona,
) -> Result<(String, String, String), String> {
    let mut messages = vec![msg("system", &persona.system_prompt())?];
    for ex in persona.examples() {
        messages.push(msg("user", &ex.player)?);
        messages.push(msg(
            "assistant",
            &persona.render_reply(&ex.say, &ex.emotion, &ex.action, &ex.args),
        )?);
    }
    for (i, s) in SENTINELS.iter().enumerate() {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        messages.push(msg(role, s)?);
    }
    let text = model
        .apply_chat_template(tmpl, &messages, true)
        .map_err(|e| format!("llama.cpp cannot apply it ({e})"))?;
    let mut parts = Vec::with_capacity(6);
    let mut rest = text.as_str();
    for s in SENTINELS {
        let (before, after) = rest
            .split_once(s)
            .ok_or("it drops or rewrites message content")?;
        parts.push(before.to_string());
        rest = after;
    }
    parts.push(rest.to_string());
    // parts: prefix, A..B (player end), B..C (npc end), C..D, D..E, after E.
    if parts[1] != parts[3] || parts[1] != parts[5] || parts[2] != parts[4] {
        return Err("it renders turns differently depending on their position".into());
    }
    Ok((parts[0].clone(), parts[1].clone(), parts[2].clone()))
}

/// Builds the turn pieces for `persona` from the model's template, or from ChatML.
pub(crate) fn derive(model: &LlamaModel, persona: &Persona) -> Result<TurnTemplate, ChatError> {
    if let Ok(tmpl) = model.chat_template(None) {
        match split(model, &tmpl, persona) {
            Ok((prefix, player_end, npc_end)) => {
                return Ok(TurnTemplate {
                    prefix,
                    player_end,
                    npc_end,
                    source: "model",
                });
            }
            Err(reason) => {
                tracing::warn!("the model's chat template cannot be used ({reason}); using ChatML");
            }
        }
    } else {
        tracing::info!("the model has no chat template; using ChatML");
    }
    let chatml = LlamaChatTemplate::new("chatml").map_err(|e| ChatError::Template {
        reason: e.to_string(),
    })?;
    let (prefix, player_end, npc_end) =
        split(model, &chatml, persona).map_err(|reason| ChatError::Template { reason })?;
    Ok(TurnTemplate {
        prefix,
        player_end,
        npc_end,
        source: "chatml",
    })
}
