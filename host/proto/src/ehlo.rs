//! The EHLO reply (RFC 5321 §4.1.1.1): greeting line plus one line per
//! offered extension, in Postfix's order.

use crate::reply::Reply;

/// What the server offers in its EHLO reply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EhloCaps {
    /// RFC 1870 SIZE; 0 = no limit (advertised as bare `SIZE`).
    pub size_limit: u64,
    /// RFC 2920 PIPELINING.
    pub pipelining: bool,
    /// RFC 6152 8BITMIME.
    pub eightbitmime: bool,
    /// RFC 6531 SMTPUTF8.
    pub smtputf8: bool,
    /// RFC 2034 ENHANCEDSTATUSCODES.
    pub enhancedstatuscodes: bool,
    /// RFC 3461 DSN.
    pub dsn: bool,
    /// RFC 3030 CHUNKING (BDAT).
    pub chunking: bool,
    /// VRFY (RFC 5321 §3.5.2).
    pub vrfy: bool,
    /// RFC 1985 ETRN.
    pub etrn: bool,
    /// RFC 3207 STARTTLS (offer only before TLS is active).
    pub starttls: bool,
    /// RFC 4954 AUTH mechanisms, e.g. `["PLAIN", "LOGIN"]`; empty = no AUTH. An entry equal to
    /// [`AUTH_EQUALS`] is not a mechanism: it asks for the extra line of Postfix's
    /// `broken_sasl_auth_clients`.
    pub auth: Vec<String>,
}

/// Put in [`EhloCaps::auth`] to also announce `AUTH=PLAIN LOGIN` after the `AUTH` line, for
/// clients written to the pre-RFC 2554 draft (Outlook Express 4, old Microsoft Exchange), as
/// Postfix does with `broken_sasl_auth_clients = yes`.
pub const AUTH_EQUALS: &str = "AUTH=";

/// Builds the 250 EHLO reply, e.g.
///
/// ```text
/// 250-mx.example.com
/// 250-PIPELINING
/// 250-SIZE 10240000
/// 250-VRFY
/// 250-ETRN
/// 250-STARTTLS
/// 250-AUTH PLAIN LOGIN
/// 250-ENHANCEDSTATUSCODES
/// 250-8BITMIME
/// 250-DSN
/// 250-SMTPUTF8
/// 250 CHUNKING
/// ```
///
/// The reply carries no enhanced status code: Postfix does not prefix EHLO
/// lines, and clients parse the keywords at the start of each line.
pub fn ehlo_reply(hostname: &str, caps: &EhloCaps) -> Reply {
    let mut lines = vec![hostname.to_string()];
    let mut add = |on: bool, s: &str| {
        if on {
            lines.push(s.to_string());
        }
    };
    add(caps.pipelining, "PIPELINING");
    if caps.size_limit == 0 {
        add(true, "SIZE");
    } else {
        add(true, &format!("SIZE {}", caps.size_limit));
    }
    add(caps.vrfy, "VRFY");
    add(caps.etrn, "ETRN");
    add(caps.starttls, "STARTTLS");
    let mechs: Vec<&str> = caps
        .auth
        .iter()
        .map(|m| m.trim())
        .filter(|m| !m.is_empty() && *m != AUTH_EQUALS)
        .collect();
    add(!mechs.is_empty(), &format!("AUTH {}", mechs.join(" ")));
    let equals = caps.auth.iter().any(|m| m == AUTH_EQUALS);
    add(
        equals && !mechs.is_empty(),
        &format!("AUTH={}", mechs.join(" ")),
    );
    add(caps.enhancedstatuscodes, "ENHANCEDSTATUSCODES");
    add(caps.eightbitmime, "8BITMIME");
    add(caps.dsn, "DSN");
    add(caps.smtputf8, "SMTPUTF8");
    add(caps.chunking, "CHUNKING");
    Reply::multiline(250, "", lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> EhloCaps {
        EhloCaps {
            size_limit: 10_240_000,
            pipelining: true,
            eightbitmime: true,
            smtputf8: true,
            enhancedstatuscodes: true,
            dsn: true,
            chunking: true,
            vrfy: true,
            etrn: true,
            starttls: true,
            auth: vec!["PLAIN".into(), "LOGIN".into()],
        }
    }

    #[test]
    fn full_reply_in_postfix_order() {
        let r = ehlo_reply("mx.example.com", &all());
        assert_eq!(r.enhanced, None);
        assert_eq!(
            r.to_wire(true),
            "250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n\
             250-ETRN\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n\
             250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
        );
    }

    #[test]
    fn minimal_reply_still_advertises_size() {
        let r = ehlo_reply("mx", &EhloCaps::default());
        assert_eq!(r.to_wire(false), "250-mx\r\n250 SIZE\r\n");
    }

    #[test]
    fn auth_omitted_when_no_usable_mechanisms() {
        let caps = EhloCaps {
            auth: vec![" ".into(), String::new()],
            ..all()
        };
        let wire = ehlo_reply("mx", &caps).to_wire(false);
        assert!(!wire.contains("AUTH"), "{wire}");
    }

    #[test]
    fn broken_auth_clients_get_the_auth_equals_line() {
        let caps = EhloCaps {
            auth: vec!["PLAIN".into(), "LOGIN".into(), AUTH_EQUALS.into()],
            ..all()
        };
        let wire = ehlo_reply("mx", &caps).to_wire(false);
        assert!(
            wire.contains("250-AUTH PLAIN LOGIN\r\n250-AUTH=PLAIN LOGIN\r\n250-ENHANCED"),
            "{wire}"
        );
        // The marker alone announces nothing.
        let caps = EhloCaps {
            auth: vec![AUTH_EQUALS.into()],
            ..all()
        };
        assert!(!ehlo_reply("mx", &caps).to_wire(false).contains("AUTH"));
    }

    #[test]
    fn starttls_can_be_withdrawn_after_tls() {
        let caps = EhloCaps {
            starttls: false,
            ..all()
        };
        let wire = ehlo_reply("mx", &caps).to_wire(false);
        assert!(!wire.contains("STARTTLS"));
        assert!(wire.ends_with("250 CHUNKING\r\n"));
    }

    #[test]
    fn hostile_hostname_cannot_add_lines() {
        let r = ehlo_reply("mx\r\n250-EVIL", &EhloCaps::default());
        assert_eq!(r.to_wire(false), "250-mx  250-EVIL\r\n250 SIZE\r\n");
    }
}
