//! Whether a value given for a `vary_on` path writes the same kind of key
//! text as the path's own type: what `f::clear_by` and its siblings check.
//!
//! The key writer makes integer widths, references and smart pointers
//! irrelevant ([`writer`](super::writer) says why), so a helper that takes
//! the key's values can take any `Serialize` value. What it must not take is
//! a value of another kind: a string where the path is a number writes
//! `%35` where the call wrote `5`, and the helper would silently miss. The
//! check compares the two types' names, after taking off what the writer
//! ignores, and only tells apart the scalar kinds it is sure of; anything
//! else (a struct, a newtype, an `Option`) passes.

/// A scalar kind the key writer writes in its own way.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Integer,
    Float,
    Text,
    Bool,
    Char,
}

/// The kind of the type named `name` (as `std::any::type_name` writes it),
/// if it is one of the scalar kinds.
fn kind(name: &str) -> Option<Kind> {
    let mut name = name.trim();
    // What the writer sees through: references and smart pointers.
    loop {
        if let Some(rest) = name.strip_prefix('&') {
            name = rest.trim_start();
            name = name.strip_prefix("mut ").unwrap_or(name).trim_start();
            continue;
        }
        let wrapped = [
            "alloc::boxed::Box<",
            "alloc::sync::Arc<",
            "alloc::rc::Rc<",
            "alloc::borrow::Cow<",
        ]
        .iter()
        .find_map(|w| name.strip_prefix(w).and_then(|r| r.strip_suffix('>')));
        match wrapped {
            Some(inner) => name = inner.trim(),
            None => break,
        }
    }
    match name {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16" | "i32" | "i64" | "i128"
        | "isize" => Some(Kind::Integer),
        "f32" | "f64" => Some(Kind::Float),
        "str" | "alloc::string::String" => Some(Kind::Text),
        "bool" => Some(Kind::Bool),
        "char" => Some(Kind::Char),
        _ => None,
    }
}

/// Why `given` cannot stand for a path of type `expected`, if it cannot.
pub(crate) fn mismatch(path: &str, expected: &str, given: &str) -> Option<String> {
    match (kind(expected), kind(given)) {
        (Some(e), Some(g)) if e != g => Some(format!(
            "the value given for `vary_on` path `{path}` is a `{given}`, but `{path}` is a `{expected}`: \
             its key text would differ from the memoized call's, so this helper would miss the entry; \
             pass a value of the path's type (integer widths, references, `Box`, `Arc` and `Rc` do not matter)"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_kinds_through_references_and_pointers() {
        assert_eq!(kind("u64"), Some(Kind::Integer));
        assert_eq!(kind("&&i8"), Some(Kind::Integer));
        assert_eq!(kind("&mut alloc::boxed::Box<u32>"), Some(Kind::Integer));
        assert_eq!(kind("&str"), Some(Kind::Text));
        assert_eq!(kind("alloc::sync::Arc<str>"), Some(Kind::Text));
        assert_eq!(kind("alloc::borrow::Cow<str>"), Some(Kind::Text));
        assert_eq!(kind("&alloc::string::String"), Some(Kind::Text));
        assert_eq!(kind("f32"), Some(Kind::Float));
        assert_eq!(kind("core::option::Option<u64>"), None);
        assert_eq!(kind("app::UserId"), None);
    }

    #[test]
    fn only_two_known_different_kinds_mismatch() {
        assert!(mismatch("q.id", "u64", "i32").is_none());
        assert!(mismatch("q.id", "u64", "&u64").is_none());
        assert!(mismatch("q.name", "alloc::string::String", "&str").is_none());
        assert!(mismatch("q.id", "app::UserId", "u64").is_none());
        assert!(mismatch("q.id", "core::option::Option<u64>", "u64").is_none());
        let msg = mismatch("q.id", "u64", "&alloc::string::String").unwrap();
        assert!(msg.contains("`q.id` is a `u64`"), "{msg}");
        assert!(mismatch("q.ok", "bool", "&str").is_some());
        assert!(mismatch("q.x", "f64", "i32").is_some());
    }
}
