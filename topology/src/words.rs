//! Splitting a command line into words as a shell would, without a shell:
//! quotes group, a backslash escapes, nothing is expanded. The editor's
//! command box and a node's `exec` lines use it; the words become an
//! argument vector run by the guest agent.

/// Splits a command line into words as a shell would for simple cases:
/// spaces separate, single and double quotes group, backslash escapes. No
/// expansion of any kind: the words are passed to the guest as they are.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => cur.extend(chars.next()),
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                cur.extend(chars.next());
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("an unclosed quote".into());
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::split_words;

    #[test]
    fn quotes_group_and_nothing_expands() {
        assert_eq!(
            split_words("ping -c 1  10.0.0.1").unwrap(),
            ["ping", "-c", "1", "10.0.0.1"]
        );
        assert_eq!(
            split_words(r#"sh -c 'echo $HOME; ls' "a b"\ c"#).unwrap(),
            ["sh", "-c", "echo $HOME; ls", "a b c"]
        );
        assert_eq!(split_words(r#"echo "" x"#).unwrap(), ["echo", "", "x"]);
        assert!(split_words("echo 'open").is_err());
        assert!(split_words("   ").unwrap().is_empty());
    }
}
