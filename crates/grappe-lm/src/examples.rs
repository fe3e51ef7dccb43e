//! Fine-tuning examples as OpenAI's clients send them: a JSONL file, one example per line, in
//! the chat format (`{"messages": [{"role": "user", "content": "..."}, {"role": "assistant",
//! ...}]}`), the completion format (`{"prompt": "...", "completion": "..."}`) or plain text
//! (`{"text": "..."}`). Each example becomes one document of the training text (one line): its
//! contents in order, joined by a space, line breaks inside them made spaces, since a line is a
//! document to [`crate::Trainer`]. The gateway reads a file with this before it accepts it (and
//! to quote the run), the trainer reads it again: one reader, one set of rules.

use serde_json::Value;

/// The roles a chat example's messages may have.
const ROLES: [&str; 4] = ["system", "developer", "user", "assistant"];

/// A file's examples as the trainer's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Examples {
    /// One line per example.
    pub text: String,
    pub count: usize,
}

/// Why a file is not a set of examples: the line (from 1) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ExamplesError {
    pub line: usize,
    pub reason: String,
}

/// Reads a JSONL file of examples; blank lines are skipped, anything else must be an example.
pub fn read_examples(jsonl: &str) -> Result<Examples, ExamplesError> {
    let mut text = String::new();
    let mut count = 0;
    for (at, line) in jsonl.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let refuse = |reason: String| ExamplesError { line: at + 1, reason };
        let value: Value = serde_json::from_str(line).map_err(|error| refuse(format!("not JSON: {error}")))?;
        let parts = example_parts(&value).map_err(refuse)?;
        let document: Vec<String> =
            parts.iter().map(|part| part.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
        let document = document.join(" ");
        if document.is_empty() {
            return Err(refuse("the example has no text".to_owned()));
        }
        text.push_str(&document);
        text.push('\n');
        count += 1;
        if text.len() > crate::MAX_TEXT_BYTES {
            return Err(refuse(format!("the examples pass {} bytes", crate::MAX_TEXT_BYTES)));
        }
    }
    if count == 0 {
        return Err(ExamplesError { line: 1, reason: "the file holds no example".to_owned() });
    }
    Ok(Examples { text, count })
}

/// The texts of one example, in order.
fn example_parts(value: &Value) -> Result<Vec<&str>, String> {
    let object = value.as_object().ok_or("an example is a JSON object")?;
    let string = |field: &str| -> Result<&str, String> {
        object.get(field).and_then(Value::as_str).ok_or_else(|| format!("`{field}` must be a string"))
    };
    if let Some(messages) = object.get("messages") {
        let messages = messages.as_array().ok_or("`messages` must be an array")?;
        let mut parts = Vec::with_capacity(messages.len());
        let mut answered = false;
        for (i, message) in messages.iter().enumerate() {
            let role = message.get("role").and_then(Value::as_str).unwrap_or_default();
            if !ROLES.contains(&role) {
                return Err(format!("`messages[{i}].role` must be one of {}", ROLES.join(", ")));
            }
            answered |= role == "assistant";
            match message.get("content") {
                Some(Value::String(content)) => parts.push(content.as_str()),
                Some(Value::Array(items)) => {
                    for item in items {
                        match (item.get("type").and_then(Value::as_str), item.get("text").and_then(Value::as_str)) {
                            (Some("text"), Some(text)) => parts.push(text),
                            _ => return Err(format!("`messages[{i}].content`: only text parts are read")),
                        }
                    }
                }
                _ => return Err(format!("`messages[{i}].content` must be a string or an array of text parts")),
            }
        }
        if !answered {
            return Err("a chat example needs an `assistant` message: the answer to learn".to_owned());
        }
        return Ok(parts);
    }
    if object.contains_key("prompt") || object.contains_key("completion") {
        return Ok(vec![string("prompt")?, string("completion")?]);
    }
    if object.contains_key("text") {
        return Ok(vec![string("text")?]);
    }
    Err("an example has `messages`, `prompt` and `completion`, or `text`".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_three_formats_one_line_each() {
        let file = concat!(
            r#"{"messages": [{"role": "user", "content": "Bonjour"}, {"role": "assistant", "content": "Bonjour !\nÇa va ?"}]}"#,
            "\n\n",
            r#"{"prompt": "Le salarié", "completion": " a droit"}"#,
            "\n",
            r#"{"text": "  L'employeur  verse le salaire. "}"#,
            "\n",
        );
        let examples = read_examples(file).expect("three examples");
        assert_eq!(examples.count, 3);
        assert_eq!(examples.text, "Bonjour Bonjour ! Ça va ?\nLe salarié a droit\nL'employeur verse le salaire.\n");
    }

    #[test]
    fn names_the_line_and_the_fault() {
        let cases = [
            ("{\"text\": \"a\"}\nnot json\n", 2, "not JSON"),
            (r#"{"messages": [{"role": "user", "content": "a"}]}"#, 1, "assistant"),
            (r#"{"messages": [{"role": "robot", "content": "a"}]}"#, 1, "role"),
            (r#"{"prompt": "a"}"#, 1, "`completion` must be a string"),
            (r#"{"text": "   "}"#, 1, "no text"),
            (r#"[1, 2]"#, 1, "JSON object"),
            (r#"{"other": 1}"#, 1, "an example has"),
            ("\n \n", 1, "no example"),
        ];
        for (file, line, reason) in cases {
            let error = read_examples(file).expect_err(file);
            assert_eq!(error.line, line, "{file}");
            assert!(error.reason.contains(reason), "{file}: {}", error.reason);
        }
    }
}
