//! `LIKE` patterns, compiled at parse time: `%` is any run of characters, `_` exactly one,
//! `\%` and `\_` the characters themselves; every other character (a lone backslash too)
//! stands for itself, case-sensitively.
//!
//! A pattern is its `%`-separated segments. Each segment has a fixed length in characters, so
//! the first is matched at the start, the last at the end, and each one between at its
//! leftmost place after the previous: no backtracking, linear in the value.

/// One piece of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(Box<str>),
    AnyChars(usize),
}

/// A `%`-free run of the pattern.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Segment {
    pieces: Vec<Piece>,
    chars: usize,
}

impl Segment {
    fn push_char(&mut self, c: char) {
        self.chars += 1;
        if let Some(Piece::Text(text)) = self.pieces.last_mut() {
            let mut grown = String::with_capacity(text.len() + c.len_utf8());
            grown.push_str(text);
            grown.push(c);
            *text = grown.into_boxed_str();
        } else {
            self.pieces
                .push(Piece::Text(c.to_string().into_boxed_str()));
        }
    }

    fn push_any(&mut self) {
        self.chars += 1;
        if let Some(Piece::AnyChars(n)) = self.pieces.last_mut() {
            *n += 1;
        } else {
            self.pieces.push(Piece::AnyChars(1));
        }
    }

    /// Matches the segment at the start of `value`: the byte length it covers.
    fn match_at(&self, value: &str) -> Option<usize> {
        let mut at = 0;
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => {
                    if !value[at..].starts_with(&**text) {
                        return None;
                    }
                    at += text.len();
                }
                Piece::AnyChars(n) => {
                    let mut chars = value[at..].char_indices();
                    match chars.nth(n - 1) {
                        Some((i, c)) => at += i + c.len_utf8(),
                        None => return None,
                    }
                }
            }
        }
        Some(at)
    }

    /// The leftmost match in `value` from byte `from`: where it ends.
    fn find_from(&self, value: &str, from: usize) -> Option<usize> {
        let mut start = from;
        loop {
            if let Some(Piece::Text(text)) = self.pieces.first() {
                start += value[start..].find(&**text)?;
            }
            if let Some(len) = self.match_at(&value[start..]) {
                return Some(start + len);
            }
            let next = value[start..].chars().next()?;
            start += next.len_utf8();
        }
    }
}

/// A compiled `LIKE` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    segments: Vec<Segment>,
}

impl Pattern {
    /// Compiles the pattern text (the string literal's value).
    pub(crate) fn new(pattern: &str) -> Self {
        let mut segments = vec![Segment::default()];
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            let current = segments.last_mut().expect("at least one segment");
            match c {
                '\\' if matches!(chars.peek(), Some('%' | '_')) => {
                    let escaped = chars.next().expect("peeked");
                    current.push_char(escaped);
                }
                '%' => segments.push(Segment::default()),
                '_' => current.push_any(),
                other => current.push_char(other),
            }
        }
        Self { segments }
    }

    /// Whether `value` matches the whole pattern.
    pub(crate) fn matches(&self, value: &str) -> bool {
        let (first, rest) = self.segments.split_first().expect("at least one segment");
        let Some(mut at) = first.match_at(value) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return at == value.len();
        };
        for segment in middle {
            match segment.find_from(value, at) {
                Some(end) => at = end,
                None => return false,
            }
        }
        let Some(tail) = start_of_last_chars(value, last.chars) else {
            return false;
        };
        tail >= at && last.match_at(&value[tail..]) == Some(value.len() - tail)
    }
}

/// The byte offset where the last `n` characters of `value` begin.
fn start_of_last_chars(value: &str, n: usize) -> Option<usize> {
    if n == 0 {
        return Some(value.len());
    }
    value.char_indices().rev().nth(n - 1).map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let cases: &[(&str, &str, bool)] = &[
            ("abc", "abc", true),
            ("abc", "abcd", false),
            ("", "", true),
            ("", "a", false),
            ("%", "", true),
            ("%", "anything", true),
            ("%%", "x", true),
            ("_", "", false),
            ("_", "é", true),
            ("__", "é", false),
            ("a%b%c", "abc", true),
            ("a%b%c", "azzzbzzzc", true),
            ("a%b%c", "a%b%c", true),
            ("a%a", "a", false),
            ("a%a", "aa", true),
            (".%.%.", ".ab.cde.", true),
            (".%.%.", "ab.cde", false),
            ("a_b_c", "azbzc", true),
            ("a_b_c", "abc", false),
            ("._._.", ".a.b.", true),
            ("a\\_b\\_c", "a_b_c", true),
            ("a\\_b\\_c", "azbzc", false),
            ("a\\%b\\%c", "a%b%c", true),
            ("a\\%b\\%c", "abc", false),
            ("ab\\c", "ab\\c", true),
            ("ab\\", "ab\\", true),
            ("abc%123\\%456\\_d_f", "abc123123%456_dzf", true),
            ("/shop/%", "/shop/orders", true),
            ("/shop/%", "/shops", false),
            ("%.error", "com.github.error", true),
            ("%.error", "com.github.success", false),
            ("%_x_%", "ax", false),
            ("%_x_%", "axb", true),
            ("%ab_d%", "abxabcd", true),
            ("%éa_", "xxéaéz", false),
            ("%éa_", "xxéaé", true),
        ];
        for (pattern, value, expected) in cases {
            assert_eq!(
                Pattern::new(pattern).matches(value),
                *expected,
                "{value:?} LIKE {pattern:?}"
            );
        }
    }
}
