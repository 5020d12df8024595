//! The kernel command line split into words as the kernel does: spaces separate words except
//! inside double quotes, and the quotes themselves are dropped (`key="a b"` and `"key=a b"`
//! both give `key=a b`). Shared by the init and the fuzz targets, so both see the same words.

/// The words of `text` (the contents of /proc/cmdline).
pub fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut in_word = false;
    for ch in text.chars() {
        match ch {
            '"' => {
                in_quotes = !in_quotes;
                in_word = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            c => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_group_words_and_are_dropped() {
        assert_eq!(
            split_words(r#"a="x y" "b=1 2" c  d=""#),
            ["a=x y", "b=1 2", "c", "d="]
        );
        assert_eq!(split_words("  \n"), Vec::<String>::new());
        assert_eq!(split_words("\"unterminated x"), ["unterminated x"]);
    }
}
