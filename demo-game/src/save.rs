//! The save game: inventory, conversations and the gallery, in `<data dir>/save.json`.
//!
//! Written atomically (a temporary file renamed over the old one) after every change; a save
//! that cannot be read is kept aside as `save.json.unreadable-<seconds>` and the game starts
//! afresh, so nothing is overwritten that could still be recovered by hand.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bevy::prelude::*;
use bevy_kiln::SavedChat;
use serde::{Deserialize, Serialize};

/// The save file's name inside the data directory.
pub const SAVE_FILE: &str = "save.json";

/// One line of a conversation, as shown in the dialogue box.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// Who spoke ("You" or the NPC's name).
    pub who: String,
    /// What they said.
    pub text: String,
    /// The NPC's emotion (empty for the player).
    #[serde(default)]
    pub emotion: String,
    /// The NPC's action (empty for the player).
    #[serde(default)]
    pub action: String,
}

/// A minted token in the gallery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GalleryEntry {
    /// `0x…` token id.
    pub token_id: String,
    /// The description it was painted from.
    pub prompt: String,
    /// The painted PNG (with its record embedded).
    pub image: PathBuf,
    /// The minting transaction.
    pub tx: String,
    /// The last verification verdict (`authentic`, `image_altered`, …) or `unverified`.
    pub verdict: String,
}

/// Everything that survives a restart.
#[derive(Resource, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SaveGame {
    /// Items the NPCs gave the player, in order.
    pub inventory: Vec<String>,
    /// Lines spoken with each NPC (by persona name), oldest first.
    pub transcripts: BTreeMap<String, Vec<Line>>,
    /// Each NPC's conversation memory (by persona name), as the model remembers it.
    pub memories: BTreeMap<String, SavedChat>,
    /// Minted art.
    pub gallery: Vec<GalleryEntry>,
    /// Pictures the altar has painted (each gets its own seed, so painting the same
    /// description again gives a new picture).
    #[serde(default)]
    pub paintings: u64,
    /// Where this save lives (not saved).
    #[serde(skip)]
    pub path: PathBuf,
}

/// Lines kept per NPC in a transcript; older ones are dropped (the model's own memory is the
/// NPC's `SavedChat`, capped by kiln-npc).
pub const MAX_TRANSCRIPT_LINES: usize = 200;

impl SaveGame {
    /// Adds a line to `npc`'s transcript, dropping the oldest past [`MAX_TRANSCRIPT_LINES`].
    pub fn note_line(&mut self, npc: &str, line: Line) {
        let lines = self.transcripts.entry(npc.to_string()).or_default();
        lines.push(line);
        let excess = lines.len().saturating_sub(MAX_TRANSCRIPT_LINES);
        lines.drain(..excess);
    }

    /// Reads `<data_dir>/save.json`; a missing file is a new game, an unreadable one is kept
    /// aside (with a warning) and a new game begins.
    pub fn load_or_default(data_dir: &Path) -> Self {
        let path = data_dir.join(SAVE_FILE);
        let fresh = SaveGame {
            path: path.clone(),
            ..default()
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return fresh,
            Err(e) => {
                warn!(
                    "cannot read the save {}: {e}; starting a new game",
                    path.display()
                );
                return fresh;
            }
        };
        match serde_json::from_slice::<SaveGame>(&bytes) {
            Ok(mut save) => {
                save.path = path;
                save
            }
            Err(e) => {
                let seconds = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default();
                let aside = path.with_extension(format!("json.unreadable-{seconds}"));
                match std::fs::rename(&path, &aside) {
                    Ok(()) => warn!(
                        "the save {} is unreadable ({e}); kept as {} and a new game begins",
                        path.display(),
                        aside.display()
                    ),
                    Err(re) => warn!(
                        "the save {} is unreadable ({e}) and could not be moved aside ({re}); \
                         a new game begins and will not overwrite it until it can",
                        path.display()
                    ),
                }
                fresh
            }
        }
    }

    /// Writes the save atomically; failures are logged (the game goes on, the old save stays).
    pub fn store(&self) {
        if let Err(e) = self.try_store() {
            warn!("cannot write the save {}: {e}", self.path.display());
        }
    }

    fn try_store(&self) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        kiln_nftgen::store::write_atomic(&self.path, &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcripts_keep_the_newest_lines() {
        let mut save = SaveGame::default();
        for i in 0..MAX_TRANSCRIPT_LINES + 5 {
            save.note_line(
                "Bram",
                Line {
                    who: "You".into(),
                    text: format!("line {i}"),
                    emotion: String::new(),
                    action: String::new(),
                },
            );
        }
        let lines = &save.transcripts["Bram"];
        assert_eq!(lines.len(), MAX_TRANSCRIPT_LINES);
        assert_eq!(lines[0].text, "line 5");
    }

    #[test]
    fn a_save_round_trips_and_a_broken_one_is_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let mut save = SaveGame::load_or_default(dir.path());
        assert_eq!(
            save,
            SaveGame {
                path: dir.path().join(SAVE_FILE),
                ..default()
            }
        );
        save.inventory.push("iron nail".into());
        save.transcripts
            .entry("Bram".into())
            .or_default()
            .push(Line {
                who: "You".into(),
                text: "Hello".into(),
                emotion: String::new(),
                action: String::new(),
            });
        save.gallery.push(GalleryEntry {
            token_id: "0x01".into(),
            prompt: "a red sword".into(),
            image: dir.path().join("a.png"),
            tx: "0x02".into(),
            verdict: "authentic".into(),
        });
        save.store();
        assert_eq!(SaveGame::load_or_default(dir.path()), save);

        std::fs::write(dir.path().join(SAVE_FILE), b"{ half a save").unwrap();
        let again = SaveGame::load_or_default(dir.path());
        assert!(again.inventory.is_empty() && again.gallery.is_empty());
        let kept: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("save.json.unreadable-"))
            .collect();
        assert_eq!(kept.len(), 1, "the broken save is kept aside");
        let bytes = std::fs::read(dir.path().join(&kept[0])).unwrap();
        assert_eq!(bytes, b"{ half a save");
        assert!(!dir.path().join(SAVE_FILE).exists());
    }
}
