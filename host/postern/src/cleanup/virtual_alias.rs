//! virtual(5) alias expansion of envelope recipients (Postfix `cleanup_map1n_internal`).
//!
//! Every recipient is looked up in `virtual_alias_maps` (virtual(5) search order:
//! `user+ext@domain`, `user@domain`, `user+ext`/`user` for local domains, `@domain`), and each
//! result address is looked up again, breadth first:
//! - an address seen before in this expansion is not expanded again, so `a@x → a@x, b@y`
//!   keeps `a@x` (the usual way to deliver and copy) and a loop ends instead of spinning;
//! - more than `virtual_alias_recursion_limit` nested lookups for one address, or more than
//!   `virtual_alias_expansion_limit` addresses in all, is an error: Postfix defers the message
//!   ("unreasonable virtual_alias_maps map nesting/expansion size"), and so does cleanup here;
//! - unqualified results get `@$myorigin` (so `@example.org bounce-local` sends to
//!   `bounce-local@$myorigin`).

use postern_maps::search;
use postern_maps::LookupError;

use super::rewrite::Rewriter;

/// Why an expansion stopped without a result.
#[derive(Debug)]
pub enum ExpandError {
    Lookup(LookupError),
    /// A limit was hit; the text is Postfix's warning.
    Limit(String),
}

impl From<LookupError> for ExpandError {
    fn from(e: LookupError) -> ExpandError {
        ExpandError::Lookup(e)
    }
}

/// The addresses `rcpt` expands to (itself when the table has no entry).
pub fn expand(
    rw: &Rewriter<'_>,
    rcpt: &str,
    recursion_limit: usize,
    expansion_limit: usize,
) -> Result<Vec<String>, ExpandError> {
    let tables = &rw.virtual_alias;
    if tables.is_empty() {
        return Ok(vec![rcpt.to_string()]);
    }
    let mut list = vec![rcpt.to_string()];
    let mut been_here: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut i = 0;
    while i < list.len() {
        if list.len() > expansion_limit {
            return Err(ExpandError::Limit(format!(
                "unreasonable virtual_alias_maps map expansion size for {rcpt} -- \
                 message not accepted, try again later"
            )));
        }
        let mut count = 0;
        loop {
            let lhs = list[i].to_ascii_lowercase();
            if !been_here.insert(lhs) {
                break;
            }
            if count >= recursion_limit {
                return Err(ExpandError::Limit(format!(
                    "unreasonable virtual_alias_maps map nesting for {rcpt} -- \
                     message not accepted, try again later"
                )));
            }
            count += 1;
            let is_local = |d: &str| rw.is_local(d);
            let Some(found) =
                search::map_address(tables, &list[i], &rw.opts, &is_local, rw.propagate_virtual)?
            else {
                break;
            };
            let mut found = found.into_iter().map(|a| rw.qualify(&a));
            let Some(first) = found.next() else {
                break;
            };
            let same = first.eq_ignore_ascii_case(&list[i]);
            list[i] = first;
            list.extend(found);
            if same {
                break;
            }
        }
        i += 1;
    }
    let mut seen = std::collections::HashSet::new();
    list.retain(|a| seen.insert(a.to_ascii_lowercase()));
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_config::Config;

    fn cfg(table: &str) -> Config {
        let over: Vec<(String, String)> = vec![
            ("myhostname".into(), "mail.example.org".into()),
            ("mydomain".into(), "example.org".into()),
            ("myorigin".into(), "example.org".into()),
            ("recipient_delimiter".into(), "+".into()),
            ("virtual_alias_maps".into(), table.into()),
        ];
        postern_config::load_with(None, &over).expect("config").main
    }

    fn run(c: &Config, rcpt: &str) -> Vec<String> {
        let rw = Rewriter::new(c).unwrap();
        expand(&rw, rcpt, 1000, 1000).unwrap()
    }

    #[test]
    fn catch_all_one_to_many_and_self_reference() {
        let c = cfg("inline:{ @example.com=bounce-local, \
             {team@example.net=a@x.example, b@x.example, team@example.net}, \
             a@x.example=c@y.example, joe@example.net=joe@example.com }");
        assert_eq!(
            run(&c, "anyone@example.com"),
            vec!["bounce-local@example.org"]
        );
        assert_eq!(
            run(&c, "team@example.net"),
            vec!["c@y.example", "b@x.example", "team@example.net"]
        );
        assert_eq!(run(&c, "joe@example.net"), vec!["bounce-local@example.org"]);
        assert_eq!(run(&c, "nobody@else.example"), vec!["nobody@else.example"]);
    }

    #[test]
    fn extensions_propagate_and_loops_end() {
        let c = cfg("inline:{ bob@example.com=robert@example.net, \
             x@example.com=y@example.com, y@example.com=x@example.com }");
        assert_eq!(
            run(&c, "bob+tag@example.com"),
            vec!["robert+tag@example.net"]
        );
        assert_eq!(run(&c, "x@example.com"), vec!["x@example.com"]);
    }

    #[test]
    fn limits_and_errors_defer() {
        let c = cfg("inline:{ {l@example.com=a@example.com, b@example.com, c@example.com} }");
        let rw = Rewriter::new(&c).unwrap();
        assert!(matches!(
            expand(&rw, "l@example.com", 1000, 2),
            Err(ExpandError::Limit(_))
        ));
        let c = cfg("inline:{ a@example.com=b@example.com, b@example.com=c@example.com }");
        let rw = Rewriter::new(&c).unwrap();
        assert!(matches!(
            expand(&rw, "a@example.com", 1, 1000),
            Err(ExpandError::Limit(_))
        ));
        let c = cfg("fail:down");
        let rw = Rewriter::new(&c).unwrap();
        assert!(matches!(
            expand(&rw, "a@example.com", 10, 10),
            Err(ExpandError::Lookup(_))
        ));
    }
}
