//! The structured reply: its shape (who speaks, the emotions and actions it may name, how many
//! sentences), the grammar that admits only such replies, and reading them back.

use std::collections::BTreeMap;

pub mod grammar;
pub(crate) mod parse;

/// What a reply may hold: the speaker's name, the emotions and actions it may name, and at most
/// how many sentences it says. A persona gives its own ([`crate::Persona::reply_shape`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyShape<'a> {
    /// The speaker's name, written in every reply.
    pub name: &'a str,
    /// The emotions a reply may name.
    pub emotions: &'a [String],
    /// The actions a reply may name.
    pub actions: &'a [String],
    /// For an action that takes an argument, the choice list it comes from (`give_item` →
    /// `item`).
    pub action_args: &'a BTreeMap<String, String>,
    /// The most sentences `say` may hold.
    pub max_sentences: u8,
}

/// The longest choice value, in characters.
pub const MAX_CHOICE_CHARS: usize = 48;
/// The most values one choice list may offer.
pub const MAX_CHOICES: usize = 64;

/// What the game allows an NPC's action arguments to be for one turn: named lists of values
/// (the NPC's inventory as `item`, the places it knows as `place`), read from live game state.
/// The reply grammar is built from them, so a reply can only name a value the game offered: an
/// item the NPC does not own cannot be said. An action whose list is missing or empty cannot be
/// chosen that turn.
///
/// ```
/// let choices = kiln_npc::Choices::new()
///     .with("item", ["horseshoe", "iron nails"])?
///     .with("place", ["the forge"])?;
/// assert_eq!(choices.get("item"), ["horseshoe", "iron nails"]);
/// assert!(kiln_npc::Choices::new().with("item", ["a \"quoted\" thing"]).is_err());
/// # Ok::<(), kiln_npc::ChatError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Choices {
    lists: BTreeMap<String, Vec<String>>,
}

impl Choices {
    /// No choices: actions that take an argument cannot be chosen.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds (or replaces) the list `name`. Values are short names a player could read (1 to
    /// [`MAX_CHOICE_CHARS`] characters, no quotes, backslashes or control characters), at most
    /// [`MAX_CHOICES`] of them, each once.
    pub fn with<S: Into<String>>(
        mut self,
        name: &str,
        values: impl IntoIterator<Item = S>,
    ) -> Result<Self, crate::ChatError> {
        let bad = |reason: String| crate::ChatError::BadInput {
            reason: format!("choice list {name:?}: {reason}"),
        };
        let values: Vec<String> = values.into_iter().map(Into::into).collect();
        if values.len() > MAX_CHOICES {
            return Err(bad(format!("more than {MAX_CHOICES} values")));
        }
        for (i, v) in values.iter().enumerate() {
            check_choice(v).map_err(|r| bad(format!("{v:?} {r}")))?;
            if values[..i].contains(v) {
                return Err(bad(format!("{v:?} is listed twice")));
            }
        }
        self.lists.insert(name.to_string(), values);
        Ok(self)
    }
    /// The values of list `name` (empty when there is none).
    pub fn get(&self, name: &str) -> &[String] {
        self.lists.get(name).map_or(&[], Vec::as_slice)
    }
    /// Whether no list offers anything.
    pub fn is_empty(&self) -> bool {
        self.lists.values().all(Vec::is_empty)
    }
    /// The note the model reads with the player's line, listing what it may name this turn
    /// (only the lists the shape's actions use, in name order); empty when there is none.
    pub(crate) fn note(&self, shape: &ReplyShape<'_>) -> String {
        let used: std::collections::BTreeSet<&String> = shape.action_args.values().collect();
        let parts: Vec<String> = used
            .into_iter()
            .filter(|l| !self.get(l).is_empty())
            .map(|l| format!("(Your {l} list: {}.)", self.get(l).join(", ")))
            .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!("\n{}", parts.join(" "))
        }
    }
}

/// Checks a choice value: 1 to [`MAX_CHOICE_CHARS`] characters, no quotes, backslashes, control
/// characters or bidirectional overrides, no leading or trailing space.
pub fn check_choice(v: &str) -> Result<(), String> {
    if v.is_empty() || v.chars().count() > MAX_CHOICE_CHARS {
        return Err(format!("must be 1 to {MAX_CHOICE_CHARS} characters"));
    }
    if v.trim() != v {
        return Err("must not start or end with a space".into());
    }
    if v.chars().any(grammar::forbidden) {
        return Err("must not hold quotes, backslashes or control characters".into());
    }
    Ok(())
}

/// The arguments as the reply writes them after its words: `, "item": "horseshoe"`.
pub(crate) fn render_args(args: &BTreeMap<String, String>) -> String {
    args.iter()
        .map(|(k, v)| format!(", \"{k}\": \"{v}\""))
        .collect()
}
