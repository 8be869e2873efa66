use super::*;
use crate::params::{Body, Notify, Ret};

fn ok(line: &str) -> Command {
    match parse_command(line.as_bytes(), false) {
        Ok(c) => c,
        Err(e) => panic!("{line:?}: {e:?}"),
    }
}

fn err(line: &str) -> CommandError {
    match parse_command(line.as_bytes(), false) {
        Ok(c) => panic!("{line:?} parsed as {c:?}"),
        Err(e) => e,
    }
}

fn reply_of(line: &str) -> String {
    err(line).reply().to_wire(true)
}

fn mail_from(line: &str) -> String {
    match ok(line) {
        Command::Mail { from, .. } => from,
        c => panic!("{c:?}"),
    }
}

fn rcpt_to(line: &str) -> String {
    match ok(line) {
        Command::Rcpt { to, .. } => to,
        c => panic!("{c:?}"),
    }
}

#[test]
fn helo_and_ehlo() {
    assert_eq!(
        ok("HELO mx.example.com"),
        Command::Helo("mx.example.com".into())
    );
    assert_eq!(ok("ehlo [192.0.2.1]"), Command::Ehlo("[192.0.2.1]".into()));
    assert_eq!(
        ok("EhLo  client.example  "),
        Command::Ehlo("client.example".into())
    );
    // Postfix keeps multi-word HELO arguments.
    assert_eq!(ok("HELO my host"), Command::Helo("my host".into()));
    assert_eq!(reply_of("HELO"), "501 5.5.4 Syntax: HELO hostname\r\n");
    assert_eq!(reply_of("EHLO   "), "501 5.5.4 Syntax: EHLO hostname\r\n");
}

#[test]
fn mail_from_standard_and_lenient_forms() {
    for line in [
        "MAIL FROM:<a@b.example>",
        "mail from:<a@b.example>",
        "MAIL FROM: <a@b.example>",
        "MAIL FROM:a@b.example",
        "MAIL FROM:\t<a@b.example>",
        "MAIL  FROM:<a@b.example>  ",
        "\tMAIL FROM:<a@b.example>",
    ] {
        assert_eq!(mail_from(line), "a@b.example", "{line:?}");
    }
}

#[test]
fn null_sender() {
    assert_eq!(
        ok("MAIL FROM:<>"),
        Command::Mail {
            from: String::new(),
            params: MailParams::default()
        }
    );
    assert_eq!(mail_from("MAIL FROM:<> BODY=8BITMIME"), "");
}

#[test]
fn mail_with_all_parameters() {
    let c = ok("MAIL FROM:<bounce+x@lists.example> SIZE=1048576 BODY=8BITMIME RET=HDRS ENVID=QQ314159+2Bx AUTH=<>");
    let Command::Mail { from, params } = c else {
        panic!("not MAIL")
    };
    assert_eq!(from, "bounce+x@lists.example");
    assert_eq!(params.size, Some(1_048_576));
    assert_eq!(params.body, Some(Body::EightBitMime));
    assert_eq!(params.ret, Some(Ret::Hdrs));
    assert_eq!(params.envid.as_deref(), Some("QQ314159+x"));
    assert_eq!(params.auth.as_deref(), Some("<>"));
    assert!(!params.smtputf8);
}

#[test]
fn bare_address_with_params() {
    let Command::Mail { from, params } = ok("MAIL FROM:a@b SIZE=10") else {
        panic!()
    };
    assert_eq!(from, "a@b");
    assert_eq!(params.size, Some(10));
}

#[test]
fn source_route_quoted_and_postmaster() {
    assert_eq!(
        mail_from("MAIL FROM:<@a.example,@b.example:user@d.example>"),
        "user@d.example"
    );
    assert_eq!(rcpt_to("RCPT TO:<@relay:user@d>"), "user@d");
    assert_eq!(
        mail_from("MAIL FROM:<\"john doe\"@example.com>"),
        "\"john doe\"@example.com"
    );
    assert_eq!(
        rcpt_to("RCPT TO:<\"a>b\"@example.com>"),
        "\"a>b\"@example.com"
    );
    assert_eq!(rcpt_to("RCPT TO:<postmaster>"), "postmaster");
    assert_eq!(rcpt_to("RCPT TO:<Postmaster>"), "Postmaster");
}

#[test]
fn mail_syntax_errors() {
    let usage = "501 5.5.4 Syntax: MAIL FROM:<address>\r\n";
    for line in [
        "MAIL",
        "MAIL FROM:",
        "MAIL FROM: ",
        "MAIL TO:<a@b>",
        "MAIL FROM<a@b>",
        "MAIL FROM :<a@b>",
        "MAIL FRO",
        "MAIL FROM:<a@b>SIZE=1",
    ] {
        assert_eq!(reply_of(line), usage, "{line:?}");
    }
    let bad = "501 5.1.7 Bad sender address syntax\r\n";
    for line in [
        "MAIL FROM:<a@b",
        "MAIL FROM:<a@@b>",
        "MAIL FROM:<a b@c>",
        "MAIL FROM:<@x>",
        "MAIL FROM:a@b>",
        "MAIL FROM:<<a@b>>",
        "MAIL FROM:<a@b.>",
        "MAIL FROM:<\"open@b>",
    ] {
        assert_eq!(reply_of(line), bad, "{line:?}");
    }
}

#[test]
fn rcpt_forms_and_errors() {
    let Command::Rcpt { to, params } =
        ok("RCPT TO:<user@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;user+2Bx@example.org")
    else {
        panic!()
    };
    assert_eq!(to, "user@example.org");
    assert_eq!(
        params.notify,
        Some(Notify {
            never: false,
            success: true,
            failure: true,
            delay: false
        })
    );
    assert_eq!(
        params.orcpt,
        Some(("rfc822".into(), "user+x@example.org".into()))
    );
    assert_eq!(rcpt_to("rcpt to: <u@x>"), "u@x");
    assert_eq!(rcpt_to("RCPT TO:u@x"), "u@x");

    let bad = "501 5.1.3 Bad recipient address syntax\r\n";
    for line in [
        "RCPT TO:<>",
        "RCPT TO:<a@>",
        "RCPT TO:<u@x",
        "RCPT TO:<@a:>",
    ] {
        assert_eq!(reply_of(line), bad, "{line:?}");
    }
    for line in ["RCPT", "RCPT TO:", "RCPT FROM:<a@b>", "RCPT TO:<a@b>X"] {
        assert_eq!(
            reply_of(line),
            "501 5.5.4 Syntax: RCPT TO:<address>\r\n",
            "{line:?}"
        );
    }
}

#[test]
fn parameter_errors_map_to_replies() {
    assert_eq!(
        reply_of("MAIL FROM:<a@b> FOO=bar"),
        "555 5.5.4 Unsupported option: FOO\r\n"
    );
    assert_eq!(
        reply_of("MAIL FROM:<a@b> SIZE=abc"),
        "501 5.5.4 Bad message size syntax\r\n"
    );
    assert_eq!(
        reply_of("MAIL FROM:<a@b> SIZE=1 size=2"),
        "501 5.5.4 Duplicate SIZE parameter\r\n"
    );
    assert_eq!(
        reply_of("MAIL FROM:<a@b> BODY=foo"),
        "501 5.5.4 Bad BODY parameter syntax\r\n"
    );
    assert_eq!(
        reply_of("MAIL FROM:<a@b> RET=x"),
        "501 5.5.4 Bad RET parameter syntax\r\n"
    );
    // RCPT parameters are not valid on MAIL and vice versa.
    assert_eq!(
        reply_of("MAIL FROM:<a@b> NOTIFY=NEVER"),
        "555 5.5.4 Unsupported option: NOTIFY\r\n"
    );
    assert_eq!(
        reply_of("RCPT TO:<a@b> SIZE=10"),
        "555 5.5.4 Unsupported option: SIZE\r\n"
    );
    assert_eq!(
        reply_of("RCPT TO:<a@b> NOTIFY=NEVER,SUCCESS"),
        "501 5.5.4 Bad NOTIFY parameter syntax\r\n"
    );
    assert_eq!(
        reply_of("RCPT TO:<a@b> ORCPT=rfc822"),
        "501 5.5.4 Bad ORCPT parameter syntax\r\n"
    );
}

#[test]
fn second_address_is_an_unsupported_option() {
    assert_eq!(
        reply_of("MAIL FROM:<a@b> <c@d>"),
        "555 5.5.4 Unsupported option: <c@d>\r\n"
    );
}

#[test]
fn smtputf8_rules() {
    // Without SMTPUTF8 anywhere: refused with RFC 6531's 553 5.6.7.
    assert_eq!(
        reply_of("MAIL FROM:<josé@example.com>"),
        "553 5.6.7 Must declare SMTPUTF8 to send unicode address\r\n"
    );
    assert_eq!(err("RCPT TO:<用户@例子.广告>"), CommandError::NeedSmtputf8);
    // The MAIL command's own SMTPUTF8 parameter allows it.
    let Command::Mail { from, params } = ok("MAIL FROM:<josé@exämple.com> SMTPUTF8") else {
        panic!()
    };
    assert_eq!(from, "josé@exämple.com");
    assert!(params.smtputf8);
    // The caller says the transaction has SMTPUTF8.
    assert_eq!(
        parse_command("RCPT TO:<用户@例子.广告>".as_bytes(), true),
        Ok(Command::Rcpt {
            to: "用户@例子.广告".into(),
            params: RcptParams::default()
        })
    );
    // Syntax errors still win over the UTF-8 check.
    assert_eq!(err("MAIL FROM:<jo sé@x>"), CommandError::BadSender);
    // UTF-8 in HELO or VRFY is not an address question.
    assert_eq!(
        ok("HELO mötley.example"),
        Command::Helo("mötley.example".into())
    );
}

#[test]
fn simple_verbs_and_arguments() {
    assert_eq!(ok("DATA"), Command::Data);
    assert_eq!(ok("data "), Command::Data);
    assert_eq!(ok("RSET"), Command::Rset);
    assert_eq!(ok("QUIT"), Command::Quit);
    assert_eq!(ok("STARTTLS"), Command::Starttls);
    assert_eq!(ok("NOOP"), Command::Noop);
    assert_eq!(ok("NOOP anything goes"), Command::Noop);
    assert_eq!(ok("HELP"), Command::Help(None));
    assert_eq!(ok("HELP mail"), Command::Help(Some("mail".into())));
    assert_eq!(
        ok("VRFY <postmaster>"),
        Command::Vrfy("<postmaster>".into())
    );
    assert_eq!(ok("EXPN staff"), Command::Expn("staff".into()));
    assert_eq!(
        ok("ETRN @example.com"),
        Command::Etrn("@example.com".into())
    );
    assert_eq!(
        ok("AUTH PLAIN dGVzdAB0ZXN0ADEyMzQ="),
        Command::Auth("PLAIN dGVzdAB0ZXN0ADEyMzQ=".into())
    );
    for (line, usage) in [
        ("DATA now", "DATA"),
        ("RSET x", "RSET"),
        ("QUIT bye", "QUIT"),
        ("STARTTLS please", "STARTTLS"),
        ("VRFY", "VRFY address"),
        ("EXPN", "EXPN address"),
        ("ETRN", "ETRN domain"),
        ("AUTH", "AUTH mechanism"),
    ] {
        assert_eq!(err(line), CommandError::Usage(usage), "{line:?}");
        assert_eq!(err(line).reply().code, 501);
    }
}

#[test]
fn bdat() {
    assert_eq!(
        ok("BDAT 1000"),
        Command::Bdat {
            size: 1000,
            last: false
        }
    );
    assert_eq!(
        ok("bdat 0 last"),
        Command::Bdat {
            size: 0,
            last: true
        }
    );
    assert_eq!(
        ok("BDAT 007 LAST"),
        Command::Bdat {
            size: 7,
            last: true
        }
    );
    assert_eq!(
        ok("BDAT 18446744073709551615 LAST"),
        Command::Bdat {
            size: u64::MAX,
            last: true
        }
    );
    let usage = "501 5.5.4 Syntax: BDAT count [LAST]\r\n";
    for line in [
        "BDAT",
        "BDAT -1",
        "BDAT +5",
        "BDAT 1x",
        "BDAT 18446744073709551616",
        "BDAT 10 FIRST",
        "BDAT 10 LAST LAST",
        "BDAT LAST",
    ] {
        assert_eq!(reply_of(line), usage, "{line:?}");
    }
}

#[test]
fn unknown_and_empty_commands() {
    assert_eq!(
        reply_of("FOO bar"),
        "500 5.5.2 Error: command not recognized\r\n"
    );
    assert_eq!(
        err("GET / HTTP/1.1"),
        CommandError::Unrecognized("GET".into())
    );
    assert_eq!(
        err("MAILFROM:<a@b>"),
        CommandError::Unrecognized("MAILFROM:<a@b>".into())
    );
    assert_eq!(reply_of(""), "500 5.5.2 Error: bad syntax\r\n");
    assert_eq!(reply_of("   \t "), "500 5.5.2 Error: bad syntax\r\n");
    let long = "X".repeat(5000);
    match err(&long) {
        CommandError::Unrecognized(v) => assert_eq!(v.len(), 64),
        e => panic!("{e:?}"),
    }
    // Truncation must respect UTF-8 boundaries.
    let wide = "é".repeat(100);
    match err(&wide) {
        CommandError::Unrecognized(v) => assert!(v.len() <= 64 && v.chars().all(|c| c == 'é')),
        e => panic!("{e:?}"),
    }
}

#[test]
fn control_characters_are_rejected() {
    for line in [
        &b"MAIL FROM:<a@b>\0"[..],
        b"HELO a\rb",
        b"RCPT TO:<a\n@b>",
        b"NOOP \x1b[31m",
        b"QUIT\x7f",
        b"\0",
    ] {
        assert_eq!(
            parse_command(line, true),
            Err(CommandError::BadSyntax),
            "{line:?}"
        );
    }
    // TAB is the one allowed control character.
    assert_eq!(
        parse_command(b"HELO\tmx", false),
        Ok(Command::Helo("mx".into()))
    );
}

#[test]
fn invalid_utf8_is_rejected() {
    assert_eq!(
        parse_command(b"HELO \xff\xfe", true),
        Err(CommandError::BadUtf8)
    );
    assert_eq!(
        parse_command(b"MAIL FROM:<\xc3@x>", true),
        Err(CommandError::BadUtf8)
    );
    assert_eq!(
        err_bytes(b"HELO \xc0\xaf").reply().to_wire(true),
        "500 5.5.2 Error: bad UTF-8 syntax\r\n"
    );
}

fn err_bytes(b: &[u8]) -> CommandError {
    match parse_command(b, true) {
        Ok(c) => panic!("{c:?}"),
        Err(e) => e,
    }
}

#[test]
fn verb_names() {
    assert_eq!(ok("mail from:<>").verb(), "MAIL");
    assert_eq!(ok("bdat 1").verb(), "BDAT");
    assert_eq!(ok("starttls").verb(), "STARTTLS");
}

/// Small deterministic PRNG so the test needs no extra crates.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = Lcg(0x5eed);
    let seeds: [&[u8]; 6] = [
        b"MAIL FROM:<",
        b"RCPT TO:<",
        b"BDAT ",
        b"MAIL FROM:<\"",
        b"RCPT TO:<@",
        b"MAIL FROM:<a@b> ",
    ];
    let alphabet = b"<>@\":,.;\\[] =+\t aZ09\xc3\xa9\xff\x00\r\n";
    for _ in 0..20_000 {
        let mut line = seeds[(rng.next() % seeds.len() as u64) as usize].to_vec();
        let n = rng.next() % 24;
        for _ in 0..n {
            line.push(alphabet[(rng.next() % alphabet.len() as u64) as usize]);
        }
        if let Err(e) = parse_command(&line, rng.next().is_multiple_of(2)) {
            let wire = e.reply().to_wire(true);
            assert_eq!(wire.matches("\r\n").count(), 1, "{wire:?}");
        }
    }
}
