//! The reply grammar: a GBNF grammar generated from a persona, so every reply is
//! `{"speaker": "<name>", "say": "…", "emotion": "…", "action": "…"}` with the persona's own
//! name, emotions and actions. The fixed `speaker` field puts the NPC's name right before its
//! words, which keeps small models in character.
//!
//! `say` is one to `max_sentences` sentences, each 1 to [`MAX_SENTENCE_CHARS`] characters that end
//! in `.`, `!` or `?`, separated by one space. It never holds `"`, `\` or control characters, so the
//! reply is valid JSON without escapes and the length of every reply is bounded.

use crate::persona::Persona;

/// The most characters one sentence of `say` may have (its final punctuation included).
pub const MAX_SENTENCE_CHARS: usize = 120;

/// Characters that may never appear inside `say`.
fn forbidden(c: char) -> bool {
    c == '"' || c == '\\' || c.is_control()
}

fn is_end(c: char) -> bool {
    matches!(c, '.' | '!' | '?')
}

/// The GBNF grammar for this persona's replies.
pub fn gbnf(persona: &Persona) -> String {
    let alternatives = |names: &[String]| {
        names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let extra = persona.max_sentences().saturating_sub(1);
    let say = if extra == 0 {
        "sentence".to_string()
    } else {
        format!("sentence (\" \" sentence){{0,{extra}}}")
    };
    format!(
        r#"root ::= "{{\"speaker\": \"{name}\", \"action\": \"" action "\", \"say\": \"" say "\", \"emotion\": \"" emotion "\"}}"
say ::= {say}
sentence ::= first body{{0,{body}}} end
first ::= [^ "\\.!?\x00-\x1F]
body ::= [^"\\.!?\x00-\x1F]
end ::= [.!?]
emotion ::= {emotions}
action ::= {actions}
"#,
        name = persona.name(),
        body = MAX_SENTENCE_CHARS - 2,
        emotions = alternatives(persona.emotions()),
        actions = alternatives(persona.actions()),
    )
}

/// Checks that `say` is text the grammar can produce; the error says why not.
pub fn check_say(say: &str, max_sentences: u8) -> Result<(), String> {
    if say.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some(c) = say.chars().find(|c| forbidden(*c)) {
        return Err(format!("contains {c:?}, which replies cannot hold"));
    }
    let mut sentences = 0usize;
    let mut rest = say;
    loop {
        let Some(end) = rest.find(is_end) else {
            return Err("must end each sentence with '.', '!' or '?'".into());
        };
        let sentence = &rest[..=end];
        if end == 0 {
            return Err("has a sentence with no words before its '.', '!' or '?'".into());
        }
        if sentence.starts_with(' ') {
            return Err("sentences are separated by exactly one space".into());
        }
        if sentence.chars().count() > MAX_SENTENCE_CHARS {
            return Err(format!(
                "has a sentence longer than {MAX_SENTENCE_CHARS} characters"
            ));
        }
        sentences += 1;
        rest = &rest[end + 1..];
        if rest.is_empty() {
            break;
        }
        rest = rest
            .strip_prefix(' ')
            .ok_or("sentences are separated by exactly one space")?;
    }
    if sentences > usize::from(max_sentences) {
        return Err(format!(
            "has {sentences} sentences; this persona allows at most {max_sentences}"
        ));
    }
    Ok(())
}

/// A reply parsed from the model's JSON and checked against the persona.
pub(crate) fn parse_reply(
    raw: &str,
    persona: &Persona,
) -> Result<(String, String, String), String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        speaker: String,
        say: String,
        emotion: String,
        action: String,
    }
    let r: Raw = serde_json::from_str(raw).map_err(|e| e.to_string())?;
    if r.speaker != persona.name() {
        return Err(format!("speaker {:?} is not the persona", r.speaker));
    }
    check_say(&r.say, persona.max_sentences())?;
    if !persona.allows_emotion(&r.emotion) {
        return Err(format!("emotion {:?} is not the persona's", r.emotion));
    }
    if !persona.allows_action(&r.action) {
        return Err(format!("action {:?} is not the persona's", r.action));
    }
    Ok((r.say, r.emotion, r.action))
}

/// Extracts the `say` text written so far from a partial reply, for streaming.
pub(crate) fn partial_say(partial: &str) -> &str {
    match partial.find(SAY_KEY) {
        Some(at) => partial[at + SAY_KEY.len()..]
            .split('"')
            .next()
            .unwrap_or(""),
        None => "",
    }
}

/// The text that opens the spoken words in a reply.
pub(crate) const SAY_KEY: &str = "\"say\": \"";

/// Whether the spoken words of a partial reply are complete (their closing quote was written).
pub(crate) fn say_closed(partial: &str) -> bool {
    partial
        .find(SAY_KEY)
        .is_some_and(|at| partial[at + SAY_KEY.len()..].contains('"'))
}

/// Follows a reply as it is written, token by token, to tell which tokens lie inside its spoken
/// words: those after the token that completes the `"say": "` key, before the one that closes them.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SpokenSpan {
    /// Index of the first token inside the spoken words.
    pub start: Option<usize>,
    /// Whether the closing quote has been written.
    pub closed: bool,
}

impl SpokenSpan {
    /// Records that the first `tokens` tokens make up the (partial) reply `text`.
    pub(crate) fn update(&mut self, text: &str, tokens: usize) {
        if self.start.is_none() && text.contains(SAY_KEY) {
            self.start = Some(tokens);
        }
        self.closed = self.start.is_some() && say_closed(text);
    }

    /// Where the spoken words began, while they are still being written.
    pub(crate) fn open_from(&self) -> Option<usize> {
        self.start.filter(|_| !self.closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn say_rules() {
        assert!(check_say("Hello there.", 2).is_ok());
        assert!(check_say("Hello there. Who are you?", 2).is_ok());
        assert!(check_say("One. Two. Three.", 2).is_err());
        assert!(check_say("No ending", 2).is_err());
        assert!(check_say("Hi. !", 2).is_err());
        assert!(check_say("Bad \"quote\".", 2).is_err());
        assert!(check_say("Two  spaces. Here.", 2).is_ok());
        assert!(check_say("Gap.  Here.", 2).is_err());
        assert!(check_say(&format!("{}.", "a".repeat(MAX_SENTENCE_CHARS)), 2).is_err());
        assert!(check_say(&format!("{}.", "a".repeat(MAX_SENTENCE_CHARS - 1)), 2).is_ok());
    }

    #[test]
    fn spoken_span_follows_the_say_field() {
        let pieces = [
            "{\"speaker\": \"Bram\", \"say",
            "\": \"",
            "Hi",
            " there",
            ".\",",
            " \"emotion",
        ];
        let mut span = SpokenSpan::default();
        let mut text = String::new();
        let mut open = Vec::new();
        for (i, p) in pieces.iter().enumerate() {
            text.push_str(p);
            span.update(&text, i + 1);
            open.push(span.open_from());
        }
        assert_eq!(
            span.start,
            Some(2),
            "the words start after the token that ends the key"
        );
        assert!(span.closed);
        assert_eq!(open, [None, Some(2), Some(2), Some(2), None, None]);
    }

    #[test]
    fn partial_say_streams_only_speech() {
        assert_eq!(partial_say("{\"sa"), "");
        assert_eq!(partial_say("{\"speaker\": \"Bram\", \"sa"), "");
        assert_eq!(partial_say("{\"speaker\": \"Bram\", \"say\": \"Hel"), "Hel");
        assert_eq!(
            partial_say("{\"speaker\": \"Bram\", \"say\": \"Hi.\", \"emo"),
            "Hi."
        );
    }
}
