//! local(8) alias expansion (aliases(5), `alias_maps`).
//!
//! The local part is looked up with its extension, then without (`user+ext`, `user`), folded to
//! lower case. Each target of the result is:
//! - an address in a local domain (or without a domain): expanded again; a name already on the
//!   current expansion path is not expanded again but delivered to its mailbox, so
//!   `root: root, backup` works and a loop `a: b` / `b: a` ends;
//! - any other address: forwarded (the local agent queues a new message for these);
//! - `/file`: delivered to the file when `allow_mail_to_files` has `alias` (`include` for
//!   targets read from `:include:` files);
//! - `|command`: run when `allow_mail_to_commands` has `alias` (`include`);
//! - `:include:/file`: the file's targets, read now; an unreadable file defers.
//!
//! Expansion is limited to [`NESTING_LIMIT`] levels and [`EXPANSION_LIMIT`] targets (Postfix
//! stops at 100 nesting levels too); beyond that the recipient bounces as a mail loop. A lookup
//! error defers the recipient with `4.3.0`.

use std::path::PathBuf;

use postern_config::Config;
use postern_maps::aliases::{parse_include, parse_targets, AliasTarget};
use postern_maps::{LookupError, Scope, Tables};
use postern_proto::EnhancedCode;

use super::Outcome;

pub const NESTING_LIMIT: usize = 100;
pub const EXPANSION_LIMIT: usize = 1000;

const RELAY: &str = "local";

/// Where one expanded target goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// The mailbox of this local user (lower case, no extension).
    Mailbox(String),
    /// Forward to this address (not local).
    Forward(String),
    File(PathBuf),
    Command(String),
    /// A target that may not be used (`/file` or `|command` not allowed): bounce with the text.
    Refused(String),
}

/// Expands local user `user` (lower case, extension removed) with local part `local`
/// (as written, extension included).
pub struct Expander<'a> {
    pub cfg: &'a Config,
    pub tables: &'a Tables,
    /// Whether an address's domain is local (so the address is an alias name again).
    pub is_local: &'a dyn Fn(&str) -> bool,
}

impl Expander<'_> {
    /// The targets for `local` (local part as addressed, possibly with an extension).
    pub fn expand(&self, local: &str) -> Result<Vec<Target>, Outcome> {
        let mut out = Vec::new();
        let mut path = Vec::new();
        self.expand_name(local, &mut path, &mut out)?;
        let mut seen = std::collections::HashSet::new();
        out.retain(|t| seen.insert(t.clone()));
        Ok(out)
    }

    fn lookup(&self, local: &str) -> Result<Option<(String, String)>, LookupError> {
        let lower = local.to_lowercase();
        let user = user_of(&lower, &self.cfg.recipient_delimiter);
        for key in [lower.as_str(), user.as_str()] {
            if let Some(v) = self.tables.find(key, Scope::Full)? {
                return Ok(Some((key.to_string(), v)));
            }
            if key == user {
                break;
            }
        }
        Ok(None)
    }

    fn expand_name(
        &self,
        local: &str,
        path: &mut Vec<String>,
        out: &mut Vec<Target>,
    ) -> Result<(), Outcome> {
        let user = user_of(&local.to_lowercase(), &self.cfg.recipient_delimiter);
        if path.contains(&user) || self.tables.is_empty() {
            out.push(Target::Mailbox(user));
            return Ok(());
        }
        if path.len() >= NESTING_LIMIT || out.len() >= EXPANSION_LIMIT {
            return Err(Outcome::bounce(
                EnhancedCode::new(5, 4, 6),
                RELAY,
                format!("mail forwarding loop for {local} (alias expansion limit exceeded)"),
            ));
        }
        let found = self.lookup(local).map_err(|e| {
            Outcome::defer(
                EnhancedCode::new(4, 3, 0),
                RELAY,
                format!("alias_maps lookup of {local}: {e}"),
            )
        })?;
        let Some((_, value)) = found else {
            out.push(Target::Mailbox(user));
            return Ok(());
        };
        path.push(user);
        let result = self.expand_targets(parse_targets(&value), "alias", path, out);
        path.pop();
        result
    }

    fn expand_targets(
        &self,
        targets: Vec<AliasTarget>,
        class: &str,
        path: &mut Vec<String>,
        out: &mut Vec<Target>,
    ) -> Result<(), Outcome> {
        let allowed = |list: &[String]| list.iter().any(|c| c.eq_ignore_ascii_case(class));
        for target in targets {
            match target {
                AliasTarget::Address(addr) => {
                    let (local, domain) = crate::address::split_address(&addr);
                    match domain {
                        Some(d) if !(self.is_local)(d) => out.push(Target::Forward(addr)),
                        _ => self.expand_name(local, path, out)?,
                    }
                }
                AliasTarget::File(p) if allowed(&self.cfg.allow_mail_to_files) => {
                    out.push(Target::File(p))
                }
                AliasTarget::File(p) => out.push(Target::Refused(format!(
                    "mail to file is restricted: {} (allow_mail_to_files)",
                    p.display()
                ))),
                AliasTarget::Command(c) if allowed(&self.cfg.allow_mail_to_commands) => {
                    out.push(Target::Command(c))
                }
                AliasTarget::Command(c) => out.push(Target::Refused(format!(
                    "mail to command is restricted: |{c} (allow_mail_to_commands)"
                ))),
                AliasTarget::Include(file) => {
                    let text = std::fs::read_to_string(&file).map_err(|e| {
                        Outcome::defer(
                            EnhancedCode::new(4, 3, 0),
                            RELAY,
                            format!("cannot open include file {}: {e}", file.display()),
                        )
                    })?;
                    self.expand_targets(parse_include(&text), "include", path, out)?;
                }
            }
        }
        Ok(())
    }
}

/// The user of a local part: extension removed at the first delimiter (never emptying it).
pub fn user_of(local: &str, delimiter: &str) -> String {
    let unquoted = local
        .strip_prefix('"')
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or(local);
    match unquoted.find(|c| delimiter.contains(c)) {
        Some(pos) if pos > 0 && !delimiter.is_empty() => unquoted[..pos].to_string(),
        _ => unquoted.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_maps::OpenCtx;

    fn cfg(over: &[(&str, &str)]) -> Config {
        let mut all: Vec<(String, String)> = vec![("recipient_delimiter".into(), "+".into())];
        all.extend(over.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        postern_config::load_with(None, &all).expect("config").main
    }

    fn expand(c: &Config, table: &str, local: &str) -> Result<Vec<Target>, Outcome> {
        let t = Tables::open(table, &OpenCtx::new()).unwrap();
        let is_local = |d: &str| d.eq_ignore_ascii_case("localhost");
        Expander {
            cfg: c,
            tables: &t,
            is_local: &is_local,
        }
        .expand(local)
    }

    #[test]
    fn aliases_expand_recursively() {
        let c = cfg(&[]);
        let t = "inline:{ root=someuser, {staff=alice, bob@localhost, carol@example.net}, \
                 alice=alice, loop1=loop2, loop2=loop1, postmaster=root }";
        assert_eq!(
            expand(&c, t, "Postmaster").unwrap(),
            vec![Target::Mailbox("someuser".into())]
        );
        assert_eq!(
            expand(&c, t, "staff+x").unwrap(),
            vec![
                Target::Mailbox("alice".into()),
                Target::Mailbox("bob".into()),
                Target::Forward("carol@example.net".into()),
            ]
        );
        assert_eq!(
            expand(&c, t, "loop1").unwrap(),
            vec![Target::Mailbox("loop1".into())]
        );
        assert_eq!(
            expand(&c, t, "nobody").unwrap(),
            vec![Target::Mailbox("nobody".into())]
        );
    }

    #[test]
    fn files_commands_and_includes_follow_the_allow_lists() {
        let dir = std::env::temp_dir().join(format!("postern-alias-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let inc = dir.join("members");
        std::fs::write(&inc, "# members\ndave, \"|/bin/true\"\n").expect("write");
        let table = format!(
            "inline:{{ {{list=:include:{}}}, {{arch=/var/mail/archive, \"|/bin/cat\"}} }}",
            inc.display()
        );
        let c = cfg(&[("allow_mail_to_commands", "alias")]);
        assert_eq!(
            expand(&c, &table, "list").unwrap(),
            vec![
                Target::Mailbox("dave".into()),
                Target::Refused(
                    "mail to command is restricted: |/bin/true (allow_mail_to_commands)".into()
                ),
            ]
        );
        let c = cfg(&[
            ("allow_mail_to_files", ""),
            ("allow_mail_to_commands", "alias"),
        ]);
        let got = expand(&c, &table, "arch").unwrap();
        assert!(matches!(got[0], Target::Refused(_)));
        assert_eq!(got[1], Target::Command("/bin/cat".into()));
        let missing = "inline:{ x=:include:/nonexistent/file }";
        assert!(expand(&c, missing, "x").unwrap_err().is_deferred());
        assert!(expand(&c, "fail:down", "x").unwrap_err().is_deferred());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
