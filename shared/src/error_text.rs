//! Error text helpers shared by the modules that wrap other crates' errors.

/// One line with every cause, so a wrapped error keeps its detail.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `text` with control characters escaped (`\n`, `\u{1b}`), so a message quoting hostile
/// input (a key, a kind, a parser's message about them) stays one line and cannot drive
/// the terminal it is printed on.
pub(crate) fn one_line(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_escapes_control_characters_only() {
        assert_eq!(one_line("plain `text`: ünïcode"), "plain `text`: ünïcode");
        assert_eq!(one_line("a\nb\r\tc\u{1b}[31m"), "a\\nb\\r\\tc\\u{1b}[31m");
    }
}
