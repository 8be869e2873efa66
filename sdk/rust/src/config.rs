//! Read-only settings from the binding's `[plugin.config]` table in plugins.toml.

pub use crate::bindings::postern::plugin::config::*;

/// The value of `key` split into items on commas and whitespace, empty items dropped:
/// `reject = "a@example.com, b@example.com"` gives both addresses. Missing key → empty list.
/// Postfix list parameters (`mynetworks`, `mydestination`) are split the same way.
pub fn get_list(key: &str) -> Vec<String> {
    get(key)
        .map(|v| split_list(&v).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The value of `key`, or `default` when the binding does not set it.
pub fn get_or(key: &str, default: &str) -> String {
    get(key).unwrap_or_else(|| default.to_owned())
}

pub(crate) fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn lists_split_on_commas_and_whitespace() {
        let items: Vec<_> = super::split_list(" a@x, b@y\tc@z,,\n d@w ").collect();
        assert_eq!(items, ["a@x", "b@y", "c@z", "d@w"]);
        assert_eq!(super::split_list(" , ").count(), 0);
    }
}
