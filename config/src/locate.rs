//! Finding the line of a key inside the file, for error messages.
//!
//! The typed [`Config`](crate::Config) keeps plain values (tests build it in
//! code); when a check fails, the offending key is looked up again in the
//! spanned parse tree, so even the third entry of `[[policy.service]]` or the
//! second element of a list is named by its own line.

use toml::de::{DeTable, DeValue};

/// One step of a path into the file: a key or an array index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg<'a> {
    /// A table key.
    Key(&'a str),
    /// An array element.
    Index(usize),
}

/// The 1-based line where the value at `path` starts; for a path that is not
/// in the file, the line of its longest prefix that is; 0 when none is.
pub fn line_of_path(text: &str, path: &[Seg<'_>]) -> usize {
    let Ok(root) = DeTable::parse(text) else {
        return 0;
    };
    let mut best = 0;
    let mut table: Option<&DeTable<'_>> = Some(root.get_ref());
    let mut value: Option<&DeValue<'_>> = None;
    for seg in path {
        let next = match (*seg, table, value) {
            (Seg::Key(k), Some(t), _) => t
                .iter()
                .find(|(key, _)| key.get_ref().as_ref() == k)
                .map(|(key, v)| (key.span().start, v)),
            (Seg::Index(i), _, Some(DeValue::Array(a))) => a.get(i).map(|v| (v.span().start, v)),
            _ => None,
        };
        let Some((start, v)) = next else { break };
        best = line_at(text, start);
        value = Some(v.get_ref());
        table = match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    best
}

/// 1-based line of byte `offset`.
pub fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_in_arrays_of_tables_and_list_elements() {
        let text = "[policy]\nunenrolled = \"allow\"\n\n[[policy.service]]\nservices = [\"sshd\"]\n\n[[policy.service]]\nservices = [\n  \"login\",\n  \"sudo\",\n]\n";
        let p = |path: &[Seg<'_>]| line_of_path(text, path);
        assert_eq!(p(&[Seg::Key("policy"), Seg::Key("unenrolled")]), 2);
        assert_eq!(
            p(&[
                Seg::Key("policy"),
                Seg::Key("service"),
                Seg::Index(1),
                Seg::Key("services"),
                Seg::Index(1)
            ]),
            10
        );
        assert_eq!(
            p(&[
                Seg::Key("policy"),
                Seg::Key("service"),
                Seg::Index(0),
                Seg::Key("services")
            ]),
            5
        );
        // A key not written falls back to its table.
        assert_eq!(p(&[Seg::Key("policy"), Seg::Key("grace")]), 1);
        assert_eq!(p(&[Seg::Key("nothing")]), 0);
    }
}
