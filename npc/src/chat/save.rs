//! Saved conversations: what a chat remembers, as data a game can store and load.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::SaveError;

use super::{ChatOptions, NpcReply};

/// The most turns a saved conversation may hold.
pub const MAX_SAVED_TURNS: usize = 4096;
/// The most bytes of a saved reply's raw text (a reply is at most a few hundred characters).
const MAX_RAW_BYTES: usize = 8192;
/// The most bytes of a turn's choices note (lists of at most 64 values of 48 characters).
const MAX_NOTE_BYTES: usize = 16 * 1024;
/// The most token ids saved for one player line or one reply.
const MAX_SAVED_TOKENS: usize = 4096;

/// The most bytes of a saved conversation file: far above the largest conversation Kiln keeps
/// ([`MAX_SAVED_TURNS`] turns of a few kilobytes), so a crafted file cannot make a load read
/// gigabytes.
pub const MAX_SAVE_BYTES: u64 = 64 << 20;

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
    /// What the game offered for the turn's action arguments, as the model read it after the
    /// player's line ([`crate::Choices`]); empty when nothing was offered.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
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
        let bytes =
            crate::files::read_capped(path, MAX_SAVE_BYTES).map_err(|source| SaveError::Io {
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
        saved.check().map_err(|message| SaveError::Format {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(saved)
    }

    /// Checks the limits every conversation Kiln saves keeps, so a crafted one cannot make a
    /// chat hold more than a real one would: at most [`MAX_SAVED_TURNS`] turns,
    /// `first_remembered` within them, player lines as [`crate::Chat::ask`] takes them (at most
    /// [`crate::MAX_PLAYER_CHARS`] characters, no NUL), replies of at most a few kilobytes
    /// without control characters, and a bounded number of token ids per turn. (The token ids
    /// themselves are checked against the model when the chat is restored.)
    pub fn check(&self) -> Result<(), String> {
        if self.turns.len() > MAX_SAVED_TURNS {
            return Err(format!(
                "{} turns; at most {MAX_SAVED_TURNS} are kept",
                self.turns.len()
            ));
        }
        if self.first_remembered > self.turns.len() {
            return Err("first_remembered is past the last turn".into());
        }
        for (i, t) in self.turns.iter().enumerate() {
            let bad =
                if t.player.chars().count() > crate::MAX_PLAYER_CHARS || t.player.contains('\0') {
                    Some("its player line is longer than a player may say or holds a NUL")
                } else if t.raw.len() > MAX_RAW_BYTES || t.raw.chars().any(char::is_control) {
                    Some("its reply is longer than a reply can be or holds a control character")
                } else if t.note.len() > MAX_NOTE_BYTES
                    || t.note.chars().any(|c| c.is_control() && c != '\n')
                {
                    Some("its choices note is longer than one can be or holds a control character")
                } else if t.words.len() > MAX_SAVED_TOKENS || t.generated.len() > MAX_SAVED_TOKENS {
                    Some("it holds more token ids than a turn can have")
                } else {
                    None
                };
            if let Some(why) = bad {
                return Err(format!("turn {i}: {why}"));
            }
        }
        Ok(())
    }
}
