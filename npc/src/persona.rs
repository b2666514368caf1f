//! Personas: who an NPC is, what it may feel and what it may do, loaded from TOML and validated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::PersonaError;
use crate::reply::{ReplyShape, grammar};

/// The most sentences a persona may allow per reply.
pub const MAX_SENTENCES_LIMIT: u8 = 4;

/// The most bytes of a persona file (the shipped ones are about 2 KB).
pub const MAX_PERSONA_BYTES: u64 = 1 << 20;

/// One example exchange that shows the model how this NPC answers (few-shot prompting).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    /// What the player says.
    pub player: String,
    /// What the NPC says back.
    pub say: String,
    /// The NPC's emotion: one of the persona's `emotions`.
    pub emotion: String,
    /// The NPC's action: one of the persona's `actions`.
    pub action: String,
    /// The action's argument, for an action that takes one (`action_args`): its value, e.g.
    /// `args = { item = "horseshoe" }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
}

/// The persona file as written; [`Persona`] is the validated form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonaFile {
    name: String,
    role: String,
    backstory: String,
    speech_style: String,
    #[serde(default)]
    knowledge: Vec<String>,
    greeting: String,
    emotions: Vec<String>,
    actions: Vec<String>,
    #[serde(default)]
    action_hints: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    action_args: BTreeMap<String, String>,
    #[serde(default)]
    fallback_lines: Vec<String>,
    #[serde(default = "default_max_sentences")]
    max_sentences: u8,
    #[serde(default)]
    examples: Vec<Example>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    appearance: Option<String>,
}

fn default_max_sentences() -> u8 {
    2
}

/// A validated NPC persona.
///
/// Personas are TOML files (see `assets/npcs/` for the shipped ones):
///
/// ```
/// let persona = kiln_npc::Persona::from_toml_str(r#"
///     name = "Bram"
///     role = "the blacksmith of Emberfall"
///     backstory = "Bram has worked the village forge for thirty years."
///     speech_style = "gruff and short"
///     knowledge = ["Iron ore comes from the north mine."]
///     greeting = "Need something forged?"
///     emotions = ["neutral", "happy", "angry"]
///     actions = ["none", "open_shop"]
///     [action_hints]
///     open_shop = "the player wants to buy or sell"
/// "#, "bram.toml")?;
/// assert_eq!(persona.name(), "Bram");
/// assert!(persona.allows_action("open_shop"));
/// assert!(!persona.allows_action("attack"));
/// # Ok::<(), kiln_npc::PersonaError>(())
/// ```
///
/// Rules, each reported with the file and field when broken: `name`, `role`, `greeting` are
/// non-empty; `emotions` and `actions` are non-empty lists of distinct lower-case identifiers
/// (`[a-z][a-z0-9_]*`, at most 32 characters) and `actions` contains `none`; `action_hints` only
/// name listed actions; `action_args` maps a listed action other than `none` to the name of the
/// game's choice list its argument comes from (`give_item = "item"`: the reply names one of the
/// items the game offers for that turn, see [`crate::Choices`]); `max_sentences` is 1 to 4; every
/// example uses listed emotions and actions, gives exactly the argument its action takes, and a
/// `say` the reply grammar could produce; the optional `appearance` (a prompt for the NPC's art)
/// is one line of at most 120 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PersonaFile", into = "PersonaFile")]
pub struct Persona {
    file: PersonaFile,
}

impl TryFrom<PersonaFile> for Persona {
    type Error = String;
    fn try_from(file: PersonaFile) -> Result<Self, String> {
        validate(&file).map_err(|(field, reason)| format!("field `{field}` {reason}"))?;
        Ok(Persona { file })
    }
}

impl From<Persona> for PersonaFile {
    fn from(p: Persona) -> Self {
        p.file
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && s.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn check_idents(field: &str, list: &[String]) -> Result<(), (String, String)> {
    if list.is_empty() {
        return Err((field.into(), "must list at least one name".into()));
    }
    for (i, v) in list.iter().enumerate() {
        if !is_ident(v) {
            return Err((
                format!("{field}[{i}]"),
                format!(
                    "is {v:?}: names are lower-case identifiers like `open_shop` (a-z, 0-9, _; at most 32)"
                ),
            ));
        }
        if list[..i].contains(v) {
            return Err((format!("{field}[{i}]"), format!("repeats {v:?}")));
        }
    }
    Ok(())
}

fn check_text(field: &str, text: &str, max: usize) -> Result<(), (String, String)> {
    if text.trim().is_empty() {
        return Err((field.into(), "must not be empty".into()));
    }
    if text.chars().count() > max {
        return Err((field.into(), format!("is longer than {max} characters")));
    }
    Ok(())
}

fn validate(f: &PersonaFile) -> Result<(), (String, String)> {
    check_text("name", &f.name, 40)?;
    if f.name
        .chars()
        .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        return Err((
            "name".into(),
            "must not contain quotes, backslashes or control characters".into(),
        ));
    }
    check_text("role", &f.role, 200)?;
    check_text("backstory", &f.backstory, 2000)?;
    check_text("speech_style", &f.speech_style, 300)?;
    check_text("greeting", &f.greeting, 300)?;
    if let Some(a) = &f.appearance {
        // A prompt for the art model: short, one line.
        check_text("appearance", a, 120)?;
        if a.contains(['\n', '\r']) {
            return Err(("appearance".into(), "must be one line".into()));
        }
    }
    for (i, k) in f.knowledge.iter().enumerate() {
        check_text(&format!("knowledge[{i}]"), k, 300)?;
    }
    for (i, k) in f.fallback_lines.iter().enumerate() {
        check_text(&format!("fallback_lines[{i}]"), k, 300)?;
    }
    check_idents("emotions", &f.emotions)?;
    check_idents("actions", &f.actions)?;
    if !f.actions.iter().any(|a| a == "none") {
        return Err((
            "actions".into(),
            "must include \"none\" (the action for plain talk and refusals)".into(),
        ));
    }
    for key in f.action_hints.keys() {
        if !f.actions.contains(key) {
            return Err((
                format!("action_hints.{key}"),
                "names an action that is not in `actions`".into(),
            ));
        }
    }
    for (action, list) in &f.action_args {
        if !f.actions.contains(action) || action == "none" {
            return Err((
                format!("action_args.{action}"),
                "names an action that is not in `actions` (or `none`, which takes nothing)".into(),
            ));
        }
        if !is_ident(list) || matches!(list.as_str(), "speaker" | "action" | "say" | "emotion") {
            return Err((
                format!("action_args.{action}"),
                format!(
                    "is {list:?}: a choice list is a lower-case identifier like `item`, not a reply field"
                ),
            ));
        }
    }
    if !(1..=MAX_SENTENCES_LIMIT).contains(&f.max_sentences) {
        return Err((
            "max_sentences".into(),
            format!(
                "is {}; it must be 1 to {MAX_SENTENCES_LIMIT}",
                f.max_sentences
            ),
        ));
    }
    for (i, ex) in f.examples.iter().enumerate() {
        check_text(&format!("examples[{i}].player"), &ex.player, 300)?;
        if let Err(reason) = grammar::check_say(&ex.say, f.max_sentences) {
            return Err((format!("examples[{i}].say"), reason));
        }
        if !f.emotions.contains(&ex.emotion) {
            return Err((
                format!("examples[{i}].emotion"),
                format!("is {:?}, which is not in `emotions`", ex.emotion),
            ));
        }
        if !f.actions.contains(&ex.action) {
            return Err((
                format!("examples[{i}].action"),
                format!("is {:?}, which is not in `actions`", ex.action),
            ));
        }
        let wanted: Vec<&String> = f.action_args.get(&ex.action).into_iter().collect();
        let given: Vec<&String> = ex.args.keys().collect();
        if wanted != given {
            return Err((
                format!("examples[{i}].args"),
                format!(
                    "must give exactly the argument(s) {wanted:?} that {:?} takes",
                    ex.action
                ),
            ));
        }
        for (k, v) in &ex.args {
            if let Err(reason) = crate::reply::check_choice(v) {
                return Err((format!("examples[{i}].args.{k}"), reason));
            }
        }
    }
    Ok(())
}

impl Persona {
    /// Parses and validates a persona from TOML text; `origin` names the source in errors.
    pub fn from_toml_str(text: &str, origin: impl Into<PathBuf>) -> Result<Self, PersonaError> {
        let path = origin.into();
        let file: PersonaFile = toml::from_str(text).map_err(|e| PersonaError::Parse {
            path: path.clone(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        validate(&file).map_err(|(field, reason)| PersonaError::Invalid {
            path,
            field,
            reason,
        })?;
        Ok(Persona { file })
    }

    /// Reads and validates a persona file (at most [`MAX_PERSONA_BYTES`], UTF-8).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, PersonaError> {
        let path = path.as_ref();
        let io = |source| PersonaError::Io {
            path: path.to_path_buf(),
            source,
        };
        let bytes = crate::files::read_capped(path, MAX_PERSONA_BYTES).map_err(io)?;
        let text = String::from_utf8(bytes)
            .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        Self::from_toml_str(&text, path)
    }

    /// The NPC's name.
    pub fn name(&self) -> &str {
        &self.file.name
    }
    /// The NPC's role, e.g. "the blacksmith of Emberfall".
    pub fn role(&self) -> &str {
        &self.file.role
    }
    /// How the NPC looks, as a prompt for the art model ("a blacksmith in orange with black
    /// hair"): a game paints the NPC's sprites and portrait from it. Not part of what the
    /// language model reads.
    pub fn appearance(&self) -> Option<&str> {
        self.file.appearance.as_deref()
    }
    /// What the NPC says when the player first approaches (not generated).
    pub fn greeting(&self) -> &str {
        &self.file.greeting
    }
    /// Lines the game can show when the model is unavailable; never empty (falls back to the greeting).
    pub fn fallback_lines(&self) -> Vec<&str> {
        if self.file.fallback_lines.is_empty() {
            vec![self.greeting()]
        } else {
            self.file
                .fallback_lines
                .iter()
                .map(String::as_str)
                .collect()
        }
    }
    /// The emotions a reply may carry.
    pub fn emotions(&self) -> &[String] {
        &self.file.emotions
    }
    /// The actions a reply may name.
    pub fn actions(&self) -> &[String] {
        &self.file.actions
    }
    /// Whether `action` is one of this persona's actions.
    pub fn allows_action(&self, action: &str) -> bool {
        self.file.actions.iter().any(|a| a == action)
    }
    /// Whether `emotion` is one of this persona's emotions.
    pub fn allows_emotion(&self, emotion: &str) -> bool {
        self.file.emotions.iter().any(|a| a == emotion)
    }
    /// The most sentences one reply may have.
    pub fn max_sentences(&self) -> u8 {
        self.file.max_sentences
    }

    /// The choice list an action's argument comes from (`give_item` → `item`), if it takes one.
    pub fn action_arg(&self, action: &str) -> Option<&str> {
        self.file.action_args.get(action).map(String::as_str)
    }

    /// The shape of this persona's replies: its name, emotions, actions (with the choice lists
    /// their arguments come from) and sentence limit.
    pub fn reply_shape(&self) -> ReplyShape<'_> {
        ReplyShape {
            name: self.name(),
            emotions: self.emotions(),
            actions: self.actions(),
            action_args: &self.file.action_args,
            max_sentences: self.max_sentences(),
        }
    }

    /// The few-shot examples.
    pub fn examples(&self) -> &[Example] {
        &self.file.examples
    }

    /// The system prompt: identity, backstory, knowledge, style and the reply format.
    pub fn system_prompt(&self) -> String {
        let f = &self.file;
        let mut s = format!(
            "Your name is {name}. You are {name}, {role}. {backstory}\nYou speak in a {style} way.\n",
            name = f.name,
            role = f.role,
            backstory = f.backstory.trim(),
            style = f.speech_style.trim()
        );
        if !f.knowledge.is_empty() {
            s.push_str("What you know:\n");
            for k in &f.knowledge {
                s.push_str("- ");
                s.push_str(k.trim());
                s.push('\n');
            }
        }
        let sentences = match f.max_sentences {
            1 => "one short sentence".to_string(),
            n => format!("at most {n} short sentences"),
        };
        s.push_str(&format!(
            "Your name is {name}. Always stay in character as {name}; you are not an assistant. \
             Answer the player in {sentences}.\n\
             Reply as JSON: {{\"speaker\": \"{name}\", \"action\": one of {actions}, \"say\": your words, \"emotion\": one of {emotions}}}.\n",
            name = f.name,
            emotions = f.emotions.join(", "),
            actions = f.actions.join(", "),
        ));
        s.push_str("Use action none when you only talk, or when the player asks for something you cannot do.\n");
        for (action, hint) in &f.action_hints {
            s.push_str(&format!("Use action {action} when {}.\n", hint.trim()));
        }
        for (action, list) in &f.action_args {
            s.push_str(&format!(
                "With action {action}, also write \"{list}\": one {list} from your {list} list; you can only {action} what is listed.\n"
            ));
        }
        s
    }

    /// The canonical JSON of one reply, exactly as the grammar makes the model write it.
    pub(crate) fn render_reply(
        &self,
        say: &str,
        emotion: &str,
        action: &str,
        args: &BTreeMap<String, String>,
    ) -> String {
        format!(
            "{{\"speaker\": \"{}\", \"action\": \"{action}\", \"say\": \"{say}\"{}, \"emotion\": \"{emotion}\"}}",
            self.file.name,
            crate::reply::render_args(args),
        )
    }
}
