//! Saved conversations: what a chat remembers, as data a game can store and load.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::SaveError;

use super::{ChatOptions, NpcReply};

/// The saved-conversation format version this build writes and reads.
pub const SAVE_FORMAT: u32 = 1;

/// One remembered exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedTurn {
    /// What the player said.
    pub player: String,
    /// What the NPC answered.
    pub reply: NpcReply,
    /// The reply exactly as the model wrote it.
    pub raw: String,
    /// Token ids of the player's words (valid for the model named by [`SavedChat::model`]), so
    /// a restored chat continues bit for bit as the original would; re-tokenised when the model
    /// differs or they are missing.
    #[serde(default)]
    pub words: Vec<i32>,
    /// Token ids of the reply as generated (same rule as `words`).
    #[serde(default)]
    pub generated: Vec<i32>,
}

/// A conversation as saved to disk (serde JSON): the turns, and the settings that produced them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedChat {
    /// Format version, [`SAVE_FORMAT`].
    pub format: u32,
    /// The persona's name.
    pub persona: String,
    /// Fingerprint of the model that produced the turns.
    pub model: String,
    /// The chat's settings.
    pub options: ChatOptions,
    /// Every turn, oldest first (also those the model has forgotten).
    pub turns: Vec<SavedTurn>,
    /// Index of the oldest turn the model still remembers.
    pub first_remembered: usize,
}

impl SavedChat {
    /// Writes the conversation as JSON, atomically: a crash mid-write leaves the old file intact.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), SaveError> {
        let path = path.as_ref();
        let io = |source| SaveError::Io {
            path: path.to_path_buf(),
            source,
        };
        let json = serde_json::to_vec_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Reads a conversation written by [`SavedChat::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, SaveError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| SaveError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let saved: SavedChat = serde_json::from_slice(&bytes).map_err(|e| SaveError::Format {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if saved.format > SAVE_FORMAT {
            return Err(SaveError::Version {
                found: saved.format,
                supported: SAVE_FORMAT,
            });
        }
        if saved.first_remembered > saved.turns.len() {
            return Err(SaveError::Format {
                path: path.to_path_buf(),
                message: "first_remembered is past the last turn".into(),
            });
        }
        Ok(saved)
    }
}
