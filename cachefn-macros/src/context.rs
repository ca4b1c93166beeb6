//! Where the function is written: in an `impl` or `trait` block, or not.
//!
//! An attribute sees only the item it is on. A free function's helpers go
//! in a module named after it, and an `impl` cannot hold a module, so an
//! associated function without `self` would get rustc's "module is not
//! supported in `trait`s or `impl`s" and a cascade of errors. To say
//! instead what to write, the macro reads the function's source file (the
//! one the compiler names for its span) and finds the innermost block
//! around it with a small lexer. When the file or the position is not known
//! (a compiler before 1.88, a function written by another macro), the
//! answer is "no" and expansion goes on as before.

use std::path::Path;

use proc_macro2::Span;

/// What a `{` opens.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Block {
    Impl,
    Trait,
    Other,
}

/// The innermost `impl` or `trait` block around `span`, if that is where it is.
pub fn enclosing(span: Span) -> Option<Block> {
    let start = span.start();
    if start.line == 0 {
        return None;
    }
    let file = span.local_file()?;
    let text = read(&file)?;
    let offset = offset_of(&text, start.line, start.column)?;
    innermost_block(&text, offset).filter(|b| *b != Block::Other)
}

fn read(file: &Path) -> Option<String> {
    std::fs::read_to_string(file).ok()
}

/// The byte offset of a 1-based line and a 0-based column in chars.
fn offset_of(text: &str, line: usize, column: usize) -> Option<usize> {
    let line_start = if line == 1 {
        0
    } else {
        text.match_indices('\n').nth(line - 2)?.0 + 1
    };
    let rest = &text[line_start..];
    let col = rest
        .char_indices()
        .nth(column)
        .map_or(rest.len(), |(i, _)| i);
    Some(line_start + col)
}

#[derive(Clone, PartialEq, Eq)]
enum Tok<'a> {
    Start,
    Punct(u8),
    Word(&'a str),
}

/// The kind of the innermost block open at `offset`, or `None` at the top level.
pub fn innermost_block(text: &str, offset: usize) -> Option<Block> {
    let b = text.as_bytes();
    let end = offset.min(b.len());
    let mut stack: Vec<Block> = Vec::new();
    // An `impl` or `trait` seen, waiting for its `{` at this depth.
    let mut pending: Option<(Block, usize)> = None;
    let mut prev = Tok::Start;
    let mut i = 0;
    while i < end {
        let c = b[i];
        match c {
            b if b.is_ascii_whitespace() => i += 1,
            b'/' if b.get(i + 1) == Some(&b'/') => {
                i = text[i..].find('\n').map_or(b.len(), |n| i + n);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => i = skip_block_comment(b, i),
            b'"' => i = skip_string(b, i + 1),
            b'\'' => i = skip_quote(b, i),
            b'{' => {
                let kind = match pending.take() {
                    Some((kind, depth)) if depth == stack.len() => kind,
                    _ => Block::Other,
                };
                stack.push(kind);
                prev = Tok::Punct(c);
                i += 1;
            }
            b'}' => {
                stack.pop();
                prev = Tok::Punct(c);
                i += 1;
            }
            b';' => {
                if pending.is_some_and(|(_, d)| d == stack.len()) {
                    pending = None;
                }
                prev = Tok::Punct(c);
                i += 1;
            }
            c if c == b'_' || c.is_ascii_alphabetic() || c >= 0x80 => {
                let start = i;
                while i < b.len() && (b[i] == b'_' || b[i].is_ascii_alphanumeric() || b[i] >= 0x80)
                {
                    i += 1;
                }
                let word = &text[start..i];
                // String prefixes: r"..", r#".."#, b"..", br"..", c"..", b'x'.
                match (word, b.get(i)) {
                    ("r" | "br" | "cr", Some(b'"' | b'#')) => {
                        i = skip_raw_string(b, i);
                        continue;
                    }
                    ("b" | "c", Some(b'"')) => {
                        i = skip_string(b, i + 1);
                        continue;
                    }
                    ("b", Some(b'\'')) => {
                        i = skip_quote(b, i);
                        continue;
                    }
                    _ => {}
                }
                let item_position =
                    matches!(prev, Tok::Start | Tok::Punct(b'}' | b';' | b'{' | b']'))
                        || matches!(prev, Tok::Word("unsafe"));
                match word {
                    "impl" if item_position || matches!(prev, Tok::Word("default")) => {
                        pending = Some((Block::Impl, stack.len()));
                    }
                    "trait"
                        if item_position
                            || matches!(prev, Tok::Punct(b')') | Tok::Word("pub" | "auto")) =>
                    {
                        pending = Some((Block::Trait, stack.len()));
                    }
                    _ => {}
                }
                prev = Tok::Word(word);
            }
            c if c.is_ascii_digit() => {
                while i < b.len() && (b[i] == b'_' || b[i].is_ascii_alphanumeric()) {
                    i += 1;
                }
                prev = Tok::Word("0");
            }
            c => {
                prev = Tok::Punct(c);
                i += 1;
            }
        }
    }
    stack.last().copied()
}

fn skip_block_comment(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0;
    while i + 1 < b.len() {
        match (b[i], b[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    b.len()
}

/// Past the closing `"` of a string whose contents start at `i`.
fn skip_string(b: &[u8], mut i: usize) -> usize {
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// `i` is at the `#`s or `"` after `r`.
fn skip_raw_string(b: &[u8], mut i: usize) -> usize {
    let hashes = b[i..].iter().take_while(|&&c| c == b'#').count();
    i += hashes;
    if b.get(i) != Some(&b'"') {
        return i;
    }
    i += 1;
    while i < b.len() {
        if b[i] == b'"'
            && b[i + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == b'#')
                .count()
                == hashes
        {
            return i + 1 + hashes;
        }
        i += 1;
    }
    b.len()
}

/// A char literal (`'a'`, `'\n'`, `'é'`) or a lifetime (`'a`), at its `'`.
fn skip_quote(b: &[u8], i: usize) -> usize {
    if b.get(i + 1) == Some(&b'\\') {
        // An escape: up to the closing quote.
        let mut j = i + 2;
        while j < b.len() && b[j] != b'\'' {
            j += 1;
        }
        return j + 1;
    }
    // One char (of up to 4 bytes), then a quote: a char literal.
    let len = match b.get(i + 1) {
        Some(&c) if c < 0x80 => 1,
        Some(&c) if c >= 0xF0 => 4,
        Some(&c) if c >= 0xE0 => 3,
        Some(_) => 2,
        None => return b.len(),
    };
    if b.get(i + 1 + len) == Some(&b'\'') {
        return i + 2 + len;
    }
    // A lifetime or label: the quote alone; the name lexes as a word.
    i + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(src: &str) -> Option<Block> {
        let offset = src.find("HERE").expect("a HERE marker");
        innermost_block(src, offset)
    }

    #[test]
    fn impl_and_trait_blocks() {
        assert_eq!(at("struct A; impl A { fn HERE() {} }"), Some(Block::Impl));
        assert_eq!(
            at("impl<T: Clone> Tr for Vec<T> where T: Copy { HERE }"),
            Some(Block::Impl)
        );
        assert_eq!(at("unsafe impl Send for A { HERE }"), Some(Block::Impl));
        assert_eq!(at("pub(crate) trait T { HERE }"), Some(Block::Trait));
        assert_eq!(at("#[x] pub trait T: Sized { HERE }"), Some(Block::Trait));
        assert_eq!(at("fn HERE() {}"), None);
        assert_eq!(at("mod m { fn HERE() {} }"), Some(Block::Other));
    }

    #[test]
    fn impl_trait_in_types_is_not_an_impl_block() {
        assert_eq!(at("fn f() -> impl Fn() { HERE }"), Some(Block::Other));
        assert_eq!(
            at("fn f(x: impl Clone, y: &mut impl Copy) { HERE }"),
            Some(Block::Other)
        );
        assert_eq!(at("impl A { fn f() { HERE } }"), Some(Block::Other));
        assert_eq!(at("impl A { fn f() {} } fn HERE() {}"), None);
    }

    #[test]
    fn strings_comments_and_chars_are_skipped() {
        let src = r####"
            // impl A {
            /* impl B { /* nested { */ } */
            const S: &str = "impl C { \" {";
            const R: &str = r#"impl D { "# ;
            const C: char = '{';
            const E: char = '\'';
            fn f<'a>(x: &'a str) -> &'a str { x }
            fn HERE() {}
        "####;
        assert_eq!(at(src), None);
        let src = "impl A { fn f<'a>(&'a self) -> char { '}' } fn HERE() {} }";
        assert_eq!(at(src), Some(Block::Impl));
    }

    #[test]
    fn offsets_from_line_and_column() {
        let text = "ab\ncdé\nfg";
        assert_eq!(offset_of(text, 1, 1), Some(1));
        assert_eq!(offset_of(text, 2, 3), Some(7));
        assert_eq!(offset_of(text, 3, 0), Some(8));
        assert_eq!(offset_of(text, 4, 0), None);
    }
}
