//! The reply grammar: a GBNF grammar generated from a reply's shape (a persona's) and the turn's
//! [`Choices`], so every reply is
//! `{"speaker": "<name>", "action": "…", "say": "…", "emotion": "…"}` with the persona's own
//! name, emotions and actions; an action that takes an argument writes it after the spoken words
//! (`"action": "give_item", "say": "Take it.", "item": "horseshoe", "emotion": …`), so the value
//! follows what the NPC just said, and only the values the game offered this turn can be written
//! — an action with nothing to offer cannot be chosen. (Measured on SmolLM2-135M: with the value
//! right after the action, or as `"give_item: horseshoe"`, Bram named the horseshoe he was asked
//! for in 0–10% of seeds.) The fixed `speaker` field
//! puts the NPC's name right before its words, which keeps small models in character.
//!
//! `say` is one to `max_sentences` sentences, each 1 to [`MAX_SENTENCE_CHARS`] characters that end
//! in `.`, `!` or `?`, separated by one space. It never holds `"`, `\`, control characters (C0,
//! DEL, C1) or bidirectional overrides, so the reply is valid JSON without escapes, shows as what
//! it says, and the length of every reply is bounded.

use super::{Choices, ReplyShape};

/// The most characters one sentence of `say` may have (its final punctuation included).
pub const MAX_SENTENCE_CHARS: usize = 120;

/// Characters that may never appear inside `say` (or a choice value): the quote and backslash
/// (so the reply is JSON without escapes), control characters (C0, DEL and C1) and the
/// bidirectional overrides and isolates, which could make a line display differently from what
/// it says.
pub(crate) fn forbidden(c: char) -> bool {
    c == '"'
        || c == '\\'
        || c.is_control()
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

fn is_end(c: char) -> bool {
    matches!(c, '.' | '!' | '?')
}

/// The actions a reply of this shape may name with these choices: the plain ones, and those
/// whose argument list offers at least one value.
pub fn available_actions<'a>(shape: &ReplyShape<'a>, choices: &Choices) -> Vec<&'a String> {
    shape
        .actions
        .iter()
        .filter(|a| {
            shape
                .action_args
                .get(*a)
                .is_none_or(|list| !choices.get(list).is_empty())
        })
        .collect()
}

/// The GBNF grammar for replies of this shape, with this turn's choices.
pub fn gbnf(shape: &ReplyShape<'_>, choices: &Choices) -> String {
    // A GBNF string literal of `s` (its quotes escaped).
    let lit = |s: &str| format!("\"{}\"", s.replace('"', "\\\""));
    let alternatives =
        |names: &[String]| names.iter().map(|n| lit(n)).collect::<Vec<_>>().join(" | ");
    // Plain actions share one tail; an action with an argument has its own, which writes the
    // argument after the spoken words (so the value follows what the NPC just said).
    let available = available_actions(shape, choices);
    let plain: Vec<String> = available
        .iter()
        .filter(|a| !shape.action_args.contains_key(**a))
        .map(|a| (*a).clone())
        .collect();
    let mut branches = vec![format!("( {} ) plain-tail", alternatives(&plain))];
    let mut rules = String::new();
    for (i, a) in available
        .iter()
        .filter(|a| shape.action_args.contains_key(**a))
        .enumerate()
    {
        let list = &shape.action_args[*a];
        branches.push(format!("{} arg-tail-{i}", lit(a)));
        rules.push_str(&format!(
            "arg-tail-{i} ::= \"\\\", \\\"say\\\": \\\"\" say \"\\\", \\\"{list}\\\": \\\"\" ( {} ) \"\\\", \\\"emotion\\\": \\\"\" emotion \"\\\"}}\"\n",
            alternatives(choices.get(list))
        ));
    }
    let actions = branches.join(" | ");
    let extra = shape.max_sentences.saturating_sub(1);
    let say = if extra == 0 {
        "sentence".to_string()
    } else {
        format!("sentence (\" \" sentence){{0,{extra}}}")
    };
    format!(
        r#"root ::= "{{\"speaker\": \"{name}\", \"action\": \"" ( {actions} )
plain-tail ::= "\", \"say\": \"" say "\", \"emotion\": \"" emotion "\"}}"
{rules}say ::= {say}
sentence ::= first body{{0,{body}}} end
first ::= [^ "\\.!?\x00-\x1F\x7F-\x9F\u202A-\u202E\u2066-\u2069]
body ::= [^"\\.!?\x00-\x1F\x7F-\x9F\u202A-\u202E\u2066-\u2069]
end ::= [.!?]
emotion ::= {emotions}
"#,
        name = shape.name,
        body = MAX_SENTENCE_CHARS - 2,
        emotions = alternatives(shape.emotions),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn say_rules() {
        assert!(check_say("Hello there.", 2).is_ok());
        // C1 controls and bidirectional overrides are refused, as the grammar refuses them.
        assert!(check_say("Hello\u{85}there.", 2).is_err());
        assert!(check_say("Hello \u{202E}ereht.", 2).is_err());
        assert!(check_say("Hello \u{2067}there.", 2).is_err());
        assert!(check_say("Caf\u{e9} au lait.", 2).is_ok());
        let shape = ReplyShape {
            name: "Bram",
            emotions: &["calm".into()],
            actions: &["none".into()],
            action_args: &Default::default(),
            max_sentences: 2,
        };
        assert!(gbnf(&shape, &Choices::new()).contains(r"\x7F-\x9F\u202A-\u202E\u2066-\u2069"));
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
}
