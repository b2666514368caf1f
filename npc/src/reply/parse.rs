//! Reading a reply: the finished JSON checked against its shape, and the spoken words of a reply
//! still being written (for streaming, and for the repeat penalty's span).

use std::collections::BTreeMap;

use super::grammar::check_say;
use super::{Choices, ReplyShape};

/// A reply read back: what it says, its emotion, its action and the action's arguments.
pub(crate) type Parsed = (String, String, String, BTreeMap<String, String>);

/// A reply parsed from the model's JSON and checked against its shape and the turn's choices.
pub(crate) fn parse_reply(
    raw: &str,
    shape: &ReplyShape<'_>,
    choices: &Choices,
) -> Result<Parsed, String> {
    #[derive(serde::Deserialize)]
    struct Raw {
        speaker: String,
        say: String,
        emotion: String,
        action: String,
        /// The action's argument, under its choice list's name.
        #[serde(flatten)]
        args: BTreeMap<String, String>,
    }
    let r: Raw = serde_json::from_str(raw).map_err(|e| e.to_string())?;
    let args = r.args;
    if r.speaker != shape.name {
        return Err(format!("speaker {:?} is not the persona", r.speaker));
    }
    check_say(&r.say, shape.max_sentences)?;
    if !shape.emotions.contains(&r.emotion) {
        return Err(format!("emotion {:?} is not the persona's", r.emotion));
    }
    if !shape.actions.contains(&r.action) {
        return Err(format!("action {:?} is not the persona's", r.action));
    }
    let wanted = shape.action_args.get(&r.action);
    if args.keys().collect::<Vec<_>>() != wanted.into_iter().collect::<Vec<_>>() {
        return Err(format!(
            "action {:?} takes {:?}, the reply gives {:?}",
            r.action,
            wanted,
            args.keys().collect::<Vec<_>>()
        ));
    }
    for (list, value) in &args {
        if !choices.get(list).contains(value) {
            return Err(format!("{list} {value:?} was not offered this turn"));
        }
    }
    Ok((r.say, r.emotion, r.action, args))
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
