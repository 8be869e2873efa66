//! Restriction lists (`smtpd_*_restrictions`, `smtpd_restriction_classes`): the known element
//! names and the load-time check of every list.
//!
//! An unknown element is not a load error: smtpd answers `451 4.3.5 Server configuration
//! error` for it at run time, as Postfix does. It is a warning with
//! [`Diagnostic::fails_check`] set, so `postern check` reports it as an error.

use super::Builder;
use crate::params::edit_distance;
use crate::Diagnostic;

/// Every built-in restriction element Postern knows (lowercase; matched case-insensitively, as
/// in Postfix), including the pre-2.3 names Postfix still accepts (`reject_invalid_hostname`,
/// `reject_non_fqdn_hostname`, `reject_unknown_client`, `reject_unknown_hostname`). smtpd's
/// restriction evaluator keeps its own list in sync with this one.
pub const RESTRICTION_NAMES: &[&str] = &[
    "check_client_access",
    "check_helo_access",
    "check_policy_service",
    "check_recipient_access",
    "check_recipient_maps",
    "check_reverse_client_hostname_access",
    "check_sender_access",
    "defer",
    "defer_unauth_destination",
    "permit",
    "permit_auth_destination",
    "permit_dnswl_client",
    "permit_mynetworks",
    "permit_sasl_authenticated",
    "reject",
    "reject_authenticated_sender_login_mismatch",
    "reject_invalid_helo_hostname",
    "reject_invalid_hostname",
    "reject_known_sender_login_mismatch",
    "reject_multi_recipient_bounce",
    "reject_non_fqdn_helo_hostname",
    "reject_non_fqdn_hostname",
    "reject_non_fqdn_recipient",
    "reject_non_fqdn_sender",
    "reject_plaintext_session",
    "reject_rbl_client",
    "reject_rhsbl_client",
    "reject_rhsbl_sender",
    "reject_sender_login_mismatch",
    "reject_unauth_destination",
    "reject_unauth_pipelining",
    "reject_unauthenticated_sender_login_mismatch",
    "reject_unknown_client",
    "reject_unknown_client_hostname",
    "reject_unknown_helo_hostname",
    "reject_unknown_hostname",
    "reject_unknown_recipient_domain",
    "reject_unknown_reverse_client_hostname",
    "reject_unknown_sender_domain",
    "reject_unlisted_recipient",
    "reject_unlisted_sender",
    "warn_if_reject",
];

/// Built-in elements followed by one argument: a `type:table` (the `check_*_access` ones), a
/// policy service (`check_policy_service inet:host:port` / `unix:/path`) or a DNS list domain
/// (`reject_rbl_client`, `reject_rhsbl_*`, `permit_dnswl_client`; `domain=pattern` allowed).
pub const RESTRICTIONS_WITH_ARGUMENT: &[&str] = &[
    "check_client_access",
    "check_helo_access",
    "check_policy_service",
    "check_recipient_access",
    "check_reverse_client_hostname_access",
    "check_sender_access",
    "permit_dnswl_client",
    "reject_rbl_client",
    "reject_rhsbl_client",
    "reject_rhsbl_sender",
];

/// Whether built-in element `name` takes an argument (the next list element).
pub fn restriction_takes_argument(name: &str) -> bool {
    RESTRICTIONS_WITH_ARGUMENT
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
}

/// Address classes of `canonical_classes` and `masquerade_classes`.
pub(crate) const ADDRESS_CLASSES: &[&str] = &[
    "envelope_sender",
    "envelope_recipient",
    "header_sender",
    "header_recipient",
];

/// Values of `propagate_unmatched_extensions`.
pub(crate) const EXTENSION_CLASSES: &[&str] = &[
    "canonical",
    "virtual",
    "alias",
    "forward",
    "include",
    "generic",
];

/// Values of `allow_mail_to_files` / `allow_mail_to_commands`.
pub(crate) const DELIVERY_SOURCES: &[&str] = &["alias", "forward", "include"];

fn is_builtin(name: &str) -> bool {
    RESTRICTION_NAMES
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
}

impl Builder<'_> {
    /// `smtpd_restriction_classes`: each listed name with its parameter's value as a list. A
    /// name without a definition in main.cf (or a `-o` override) is an error. Every class list
    /// is checked like the `smtpd_*_restrictions` lists.
    pub(super) fn restriction_classes(&mut self) -> Vec<(String, Vec<String>)> {
        let name = "smtpd_restriction_classes";
        let mut classes: Vec<(String, Vec<String>)> = Vec::new();
        for class in self.list(name) {
            if classes.iter().any(|(c, _)| *c == class) {
                continue;
            }
            if is_builtin(&class) || crate::param_def(&class).is_some() {
                let hint = Some(format!(
                    "choose a name that is neither a restriction nor a parameter, e.g. \
                     {class}_class"
                ));
                self.invalid(
                    name,
                    &class,
                    "a restriction class cannot reuse a built-in name",
                    hint,
                );
                continue;
            }
            if self.raw.get_raw(&class).is_none() {
                let mut d = self.diagnostic(
                    name,
                    format!("restriction class {class} listed in {name} is not defined"),
                );
                d.hint = Some(format!(
                    "define it in main.cf as a restriction list, e.g. \
                     {class} = check_sender_access hash:/etc/postern/{class}, reject"
                ));
                self.errors.push(d);
                continue;
            }
            let list = self.list(&class);
            classes.push((class, list));
        }
        let names: Vec<String> = classes.iter().map(|(c, _)| c.clone()).collect();
        for (class, list) in &classes {
            self.check_restrictions(class, list, &names);
        }
        classes
    }

    /// A restriction list parameter, checked against the known elements and `classes`.
    pub(super) fn restrictions(
        &mut self,
        name: &str,
        classes: &[(String, Vec<String>)],
    ) -> Vec<String> {
        let list = self.list(name);
        let names: Vec<String> = classes.iter().map(|(c, _)| c.clone()).collect();
        self.check_restrictions(name, &list, &names);
        list
    }

    /// Report unknown elements and missing/invalid arguments of list `name` as warnings that
    /// fail `postern check` (smtpd answers 451 4.3.5 for them).
    fn check_restrictions(&mut self, name: &str, list: &[String], classes: &[String]) {
        let mut items = list.iter();
        while let Some(item) = items.next() {
            if is_builtin(item) {
                if !restriction_takes_argument(item) {
                    continue;
                }
                let lower = item.to_ascii_lowercase();
                match items.next() {
                    None => {
                        let d = self
                            .diagnostic(
                                name,
                                format!("restriction {item} in {name} needs an argument"),
                            )
                            .with_hint(argument_hint(&lower));
                        self.check_error(d);
                    }
                    Some(arg) if needs_table(&lower) && !arg.contains(':') => {
                        let d = self
                            .diagnostic(
                                name,
                                format!(
                                    "invalid argument \"{arg}\" of {item} in {name}: expected \
                                     a type:table"
                                ),
                            )
                            .with_hint(argument_hint(&lower));
                        self.check_error(d);
                    }
                    Some(_) => {}
                }
                continue;
            }
            if classes.iter().any(|c| c == item) {
                continue;
            }
            let hint = if item.contains(':') {
                format!(
                    "a bare table is not supported in restriction lists; write e.g. \
                     check_client_access {item}"
                )
            } else {
                match suggest(item, classes) {
                    Some(known) => format!("did you mean {known}?"),
                    None => "use a Postfix built-in restriction (e.g. permit_mynetworks, \
                             reject_unauth_destination, check_recipient_access hash:/path) or \
                             a class listed in smtpd_restriction_classes"
                        .to_string(),
                }
            };
            let d = self
                .diagnostic(name, format!("unknown restriction \"{item}\" in {name}"))
                .with_hint(hint);
            self.check_error(d);
        }
    }

    fn check_error(&mut self, mut d: Diagnostic) {
        d.fails_check = true;
        self.warnings.push(d);
    }
}

fn needs_table(lower: &str) -> bool {
    lower.starts_with("check_")
}

fn argument_hint(lower: &str) -> String {
    if lower == "check_policy_service" {
        "write the policy server as inet:host:port or unix:/path".to_string()
    } else if lower.starts_with("check_") {
        format!("write a lookup table after it, e.g. {lower} hash:/etc/postern/access")
    } else {
        format!("write a DNS list domain after it, e.g. {lower} zen.example.org")
    }
}

/// The known element or class name closest to `item` (edit distance at most 3).
fn suggest(item: &str, classes: &[String]) -> Option<String> {
    let lower = item.to_ascii_lowercase();
    RESTRICTION_NAMES
        .iter()
        .copied()
        .chain(classes.iter().map(String::as_str))
        .map(|n| (edit_distance(&lower, n), n))
        .filter(|(dist, _)| *dist <= 3)
        .min_by_key(|(dist, _)| *dist)
        .map(|(_, n)| n.to_string())
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::{Config, ConfigError, MainCf};

    fn config(text: &str) -> Result<(Config, Vec<Diagnostic>), ConfigError> {
        let raw = MainCf::parse(text, Path::new("main.cf")).expect("syntax");
        Config::from_main_cf(raw, None)
    }

    fn ok(text: &str) -> (Config, Vec<Diagnostic>) {
        match config(text) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    fn check_errors(text: &str) -> Vec<String> {
        ok(text)
            .1
            .iter()
            .filter(|d| d.fails_check)
            .map(ToString::to_string)
            .collect()
    }

    fn errors(text: &str) -> Vec<String> {
        match config(text) {
            Ok((c, _)) => panic!("accepted: {c:?}"),
            Err(e) => e.diagnostics().iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn tables_are_sorted_and_consistent() {
        for w in RESTRICTION_NAMES.windows(2) {
            assert!(w[0] < w[1], "{} !< {}", w[0], w[1]);
        }
        for n in RESTRICTIONS_WITH_ARGUMENT {
            assert!(RESTRICTION_NAMES.contains(n), "{n}");
        }
        assert!(restriction_takes_argument("Check_Sender_Access"));
        assert!(!restriction_takes_argument("permit"));
    }

    #[test]
    fn new_defaults() {
        let (c, w) = ok("");
        assert!(w.iter().all(|d| !d.fails_check), "{w:?}");
        assert!(c.smtpd_client_restrictions.is_empty());
        assert!(c.smtpd_restriction_classes.is_empty());
        assert!(c.smtpd_delay_reject);
        assert_eq!(c.smtpd_null_access_lookup_key, "<>");
        assert_eq!(c.access_map_reject_code, 554);
        assert_eq!(c.access_map_defer_code, 450);
        assert_eq!(c.invalid_hostname_reject_code, 501);
        assert_eq!(c.non_fqdn_reject_code, 504);
        assert_eq!(c.unknown_local_recipient_reject_code, 550);
        assert_eq!(c.defer_code, 450);
        assert_eq!(c.reject_code, 554);
        assert!(c
            .default_rbl_reply
            .starts_with("$rbl_code Service unavailable; "));
        assert!(!c.smtpd_reject_unlisted_sender);
        assert!(c.smtpd_reject_unlisted_recipient);
        assert!(c.dns_nameservers.is_empty());
        assert_eq!(c.dns_timeout, Duration::from_secs(5));
        assert_eq!(c.canonical_classes.len(), 4);
        assert_eq!(
            c.masquerade_classes,
            ["envelope_sender", "header_sender", "header_recipient"]
        );
        assert_eq!(c.propagate_unmatched_extensions, ["canonical", "virtual"]);
        assert_eq!(c.allow_mail_to_files, ["alias", "forward"]);
        assert_eq!(c.virtual_alias_recursion_limit, 1000);
        assert_eq!(c.relay_transport, "relay");
        assert_eq!(c.virtual_transport, "virtual");
        assert!(c.owner_request_special);
        assert_eq!(c.body_checks_size_limit, 51200);
        assert_eq!(c.policy_time_limit, Duration::from_secs(1000));
        assert_eq!(c.smtpd_policy_service_timeout, Duration::from_secs(100));
        assert_eq!(c.smtpd_policy_service_max_idle, Duration::from_secs(300));
        assert_eq!(c.smtpd_policy_service_max_ttl, Duration::from_secs(1000));
        assert_eq!(c.smtpd_policy_service_retry_delay, Duration::from_secs(1));
        assert_eq!(
            c.smtpd_policy_service_default_action,
            "451 4.3.5 Server configuration problem"
        );
        assert_eq!(c.smtpd_policy_service_try_limit, 2);
        assert_eq!(c.smtpd_policy_service_request_limit, 0);
        assert!(c
            .parent_domain_matches_subdomains
            .contains(&"smtpd_access_maps".into()));
    }

    #[test]
    fn derived_defaults_follow_their_maps() {
        let (c, _) = ok("virtual_alias_maps = hash:/etc/postern/virtual\n\
                         virtual_mailbox_maps = hash:/etc/postern/vmailbox\n\
                         header_checks = regexp:/etc/postern/header_checks\n\
                         alias_maps = hash:/etc/aliases\n");
        assert_eq!(c.virtual_alias_domains, ["hash:/etc/postern/virtual"]);
        assert_eq!(c.virtual_mailbox_domains, ["hash:/etc/postern/vmailbox"]);
        assert_eq!(c.mime_header_checks, ["regexp:/etc/postern/header_checks"]);
        assert_eq!(c.nested_header_checks, c.mime_header_checks);
        assert_eq!(c.alias_database, ["hash:/etc/aliases"]);
    }

    #[test]
    fn invalid_values_are_errors() {
        let e = errors(
            "access_map_reject_code = 250\n\
             dns_timeout = soon\n\
             smtpd_delay_reject = true\n\
             canonical_classes = envelope_sender, body\n\
             dns_nameservers = 127.0.0.1:5353 [::1]:53 ::1 ns.example.com\n\
             smtpd_policy_service_try_limit = 0\n",
        );
        assert_eq!(e.len(), 6, "{e:#?}");
        assert!(e[0].starts_with("main.cf:1: invalid value \"250\" for access_map_reject_code"));
        assert!(e[1].starts_with("main.cf:2: invalid value \"soon\" for dns_timeout"));
        assert!(e[2].contains("Postfix booleans are written yes or no"));
        assert!(e[3].starts_with("main.cf:4: invalid value \"body\" for canonical_classes"));
        assert!(e[4].contains("\"ns.example.com\" for dns_nameservers"));
        assert!(e[5].contains("smtpd_policy_service_try_limit"));
    }

    #[test]
    fn classes_are_read_and_checked() {
        let text = "smtpd_restriction_classes = verified, strict\n\
                    verified = check_sender_access hash:/etc/postern/verified, permit\n\
                    strict = reject_non_fqdn_sender, verified, rejectt\n\
                    smtpd_recipient_restrictions = permit_mynetworks, strict,\n    \
                        reject_unauth_destinaton, warn_if_reject reject_rbl_client zen.example\n";
        let (c, _) = ok(text);
        assert_eq!(c.smtpd_restriction_classes.len(), 2);
        assert_eq!(c.smtpd_restriction_classes[0].0, "verified");
        assert_eq!(
            c.smtpd_restriction_classes[0].1,
            [
                "check_sender_access",
                "hash:/etc/postern/verified",
                "permit"
            ]
        );
        let e = check_errors(text);
        assert_eq!(e.len(), 2, "{e:#?}");
        assert_eq!(
            e[0],
            "main.cf:3: unknown restriction \"rejectt\" in strict (hint: did you mean reject?)"
        );
        assert_eq!(
            e[1],
            "main.cf:4: unknown restriction \"reject_unauth_destinaton\" in \
             smtpd_recipient_restrictions (hint: did you mean reject_unauth_destination?)"
        );
    }

    #[test]
    fn undefined_class_is_a_load_error() {
        let e = errors("smtpd_restriction_classes = missing\n");
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(e[0].starts_with(
            "main.cf:1: restriction class missing listed in smtpd_restriction_classes is not \
             defined (hint: define it"
        ));
    }

    #[test]
    fn arguments_are_required() {
        let e = check_errors(
            "smtpd_client_restrictions = check_client_access\n\
             smtpd_sender_restrictions = check_sender_access reject\n\
             smtpd_helo_restrictions = hash:/etc/postern/helo\n\
             smtpd_data_restrictions = reject_unauth_pipelining, check_policy_service \
             inet:127.0.0.1:10023\n",
        );
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(e[0].contains(
            "restriction check_client_access in smtpd_client_restrictions needs an argument"
        ));
        assert!(e[1].contains("invalid argument \"reject\" of check_sender_access"));
        assert!(e[2].contains("unknown restriction \"hash:/etc/postern/helo\""));
        assert!(e[2].contains("check_client_access hash:/etc/postern/helo"));
    }

    #[test]
    fn nameservers_parse() {
        use crate::parse_nameserver;
        assert_eq!(
            parse_nameserver("127.0.0.1").map(|a| a.to_string()),
            Some("127.0.0.1:53".into())
        );
        assert_eq!(
            parse_nameserver("[::1]:5353").map(|a| a.to_string()),
            Some("[::1]:5353".into())
        );
        assert_eq!(
            parse_nameserver("[::1]").map(|a| a.to_string()),
            Some("[::1]:53".into())
        );
        assert!(parse_nameserver("localhost").is_none());
    }
}
