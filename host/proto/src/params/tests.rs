use super::*;

const FAIL_DELAY: Notify = Notify {
    never: false,
    success: false,
    failure: true,
    delay: true,
};

#[test]
fn notify_parse() {
    assert_eq!(
        Notify::parse("NEVER"),
        Some(Notify {
            never: true,
            ..Notify::default()
        })
    );
    assert_eq!(Notify::parse("failure,delay"), Some(FAIL_DELAY));
    assert_eq!(
        Notify::parse("Success,FAILURE,Delay"),
        Some(Notify {
            never: false,
            success: true,
            failure: true,
            delay: true
        })
    );
    for bad in [
        "",
        "NEVER,SUCCESS",
        "SUCCESS,NEVER",
        "SUCCESS,",
        ",SUCCESS",
        "SOMETIMES",
        "SUCCESS FAILURE",
        "NEVER,NEVER",
    ] {
        assert_eq!(Notify::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn notify_effective_and_wire_form() {
    assert_eq!(Notify::effective(None), FAIL_DELAY);
    let never = Notify::parse("NEVER");
    assert_eq!(Notify::effective(never), never.unwrap_or_default());
    assert_eq!(FAIL_DELAY.to_param(), "FAILURE,DELAY");
    assert_eq!(
        Notify::parse("delay,success")
            .map(|n| n.to_param())
            .as_deref(),
        Some("SUCCESS,DELAY")
    );
    assert_eq!(Notify::default().to_param(), "NEVER");
    for s in ["NEVER", "SUCCESS", "SUCCESS,FAILURE,DELAY", "FAILURE"] {
        assert_eq!(Notify::parse(s).map(|n| n.to_param()).as_deref(), Some(s));
    }
}

#[test]
fn mail_params_happy_path() {
    let p = MailParams::parse(
        " size=42\tbody=binarymime smtputf8 ret=full envid=abc+2Bdef auth=user+2Bx@example.com",
    );
    assert_eq!(
        p,
        Ok(MailParams {
            size: Some(42),
            body: Some(Body::BinaryMime),
            smtputf8: true,
            ret: Some(Ret::Full),
            envid: Some("abc+def".into()),
            auth: Some("user+x@example.com".into()),
        })
    );
    assert_eq!(MailParams::parse(""), Ok(MailParams::default()));
    assert_eq!(
        MailParams::parse("BODY=7BIT").map(|p| p.body),
        Ok(Some(Body::SevenBit))
    );
}

#[test]
fn mail_params_errors() {
    let cases: &[(&str, ParamError)] = &[
        ("SIZE", ParamError::BadSize),
        ("SIZE=", ParamError::BadSize),
        ("SIZE=-1", ParamError::BadSize),
        ("SIZE=+1", ParamError::BadSize),
        ("SIZE=1e6", ParamError::BadSize),
        ("SIZE=18446744073709551616", ParamError::BadSize),
        ("SIZE=000000000000000000001", ParamError::BadSize), // 21 digits
        ("BODY", ParamError::BadBody),
        ("BODY=8BIT", ParamError::BadBody),
        ("SMTPUTF8=yes", ParamError::BadSmtputf8),
        ("SMTPUTF8 SMTPUTF8", ParamError::Duplicate("SMTPUTF8")),
        ("RET=", ParamError::BadRet),
        ("RET=ALL", ParamError::BadRet),
        ("RET=FULL RET=HDRS", ParamError::Duplicate("RET")),
        ("BODY=7BIT BODY=8BITMIME", ParamError::Duplicate("BODY")),
        ("ENVID=", ParamError::BadEnvid),
        ("ENVID=a+G1", ParamError::BadEnvid),
        ("ENVID=x+0D+0ABcc:+20victim", ParamError::BadEnvid),
        ("ENVID=a ENVID=b", ParamError::Duplicate("ENVID")),
        ("AUTH", ParamError::BadAuth),
        ("AUTH=", ParamError::BadAuth),
        ("AUTH=a+00b", ParamError::BadAuth),
        ("XFORWARD=1", ParamError::Unsupported("XFORWARD".into())),
        ("=5", ParamError::Unsupported(String::new())),
    ];
    for (input, want) in cases {
        assert_eq!(MailParams::parse(input).as_ref(), Err(want), "{input:?}");
    }
}

#[test]
fn max_size_fits() {
    assert_eq!(
        MailParams::parse("SIZE=18446744073709551615").map(|p| p.size),
        Ok(Some(u64::MAX))
    );
}

#[test]
fn unsupported_option_echo_is_bounded() {
    let long = format!("{}=1", "K".repeat(1000));
    match MailParams::parse(&long) {
        Err(ParamError::Unsupported(name)) => assert_eq!(name.len(), 64),
        other => panic!("{other:?}"),
    }
    let wide = format!("{}=1", "ü".repeat(100));
    match MailParams::parse(&wide) {
        Err(ParamError::Unsupported(name)) => {
            assert!(name.len() <= 64 && name.chars().all(|c| c == 'ü'))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rcpt_params() {
    let p = RcptParams::parse("notify=never Orcpt=RFC822;a+2Bb@example.com", false);
    assert_eq!(
        p,
        Ok(RcptParams {
            notify: Some(Notify {
                never: true,
                ..Notify::default()
            }),
            orcpt: Some(("rfc822".into(), "a+b@example.com".into())),
        })
    );
    let cases: &[(&str, ParamError)] = &[
        ("NOTIFY", ParamError::BadNotify),
        ("NOTIFY=", ParamError::BadNotify),
        ("NOTIFY=NEVER,DELAY", ParamError::BadNotify),
        (
            "NOTIFY=DELAY NOTIFY=SUCCESS",
            ParamError::Duplicate("NOTIFY"),
        ),
        ("ORCPT", ParamError::BadOrcpt),
        ("ORCPT=rfc822", ParamError::BadOrcpt),
        ("ORCPT=;a@b", ParamError::BadOrcpt),
        ("ORCPT=rfc822;", ParamError::BadOrcpt),
        ("ORCPT=rfc 822;a@b", ParamError::BadOrcpt),
        ("ORCPT=rfc(822);a@b", ParamError::BadOrcpt),
        ("ORCPT=rfc822;a+0A@b", ParamError::BadOrcpt),
        ("ORCPT=rfc822;a+@b", ParamError::BadOrcpt),
        (
            "ORCPT=rfc822;a@b ORCPT=rfc822;c@d",
            ParamError::Duplicate("ORCPT"),
        ),
        ("SIZE=1", ParamError::Unsupported("SIZE".into())),
    ];
    for (input, want) in cases {
        assert_eq!(
            RcptParams::parse(input, false).as_ref(),
            Err(want),
            "{input:?}"
        );
    }
}

#[test]
fn orcpt_utf8_only_for_utf8_type_with_smtputf8() {
    let utf8 = "ORCPT=utf-8;jos\u{e9}@example.com";
    assert_eq!(
        RcptParams::parse(utf8, true).map(|p| p.orcpt),
        Ok(Some(("utf-8".into(), "josé@example.com".into())))
    );
    assert_eq!(RcptParams::parse(utf8, false), Err(ParamError::BadOrcpt));
    assert_eq!(
        RcptParams::parse("ORCPT=rfc822;jos\u{e9}@example.com", true),
        Err(ParamError::BadOrcpt)
    );
}

#[test]
fn replies() {
    assert_eq!(
        ParamError::Unsupported("FOO".into()).reply().to_wire(true),
        "555 5.5.4 Unsupported option: FOO\r\n"
    );
    for e in [
        ParamError::BadSize,
        ParamError::BadBody,
        ParamError::BadRet,
        ParamError::BadEnvid,
        ParamError::BadNotify,
        ParamError::BadOrcpt,
        ParamError::Duplicate("SIZE"),
    ] {
        let r = e.reply();
        assert_eq!(
            (r.code, r.enhanced.map(|c| c.to_string())),
            (501, Some("5.5.4".into())),
            "{e:?}"
        );
    }
    assert_eq!(
        ParamError::BadNotify.reply().lines,
        vec!["Bad NOTIFY parameter syntax"]
    );
    assert_eq!(
        ParamError::BadRet.reply().lines,
        vec!["Bad RET parameter syntax"]
    );
    assert_eq!(
        ParamError::BadOrcpt.reply().lines,
        vec!["Bad ORCPT parameter syntax"]
    );
}

#[test]
fn wire_forms_round_trip() {
    let m = MailParams {
        size: Some(99),
        body: Some(Body::EightBitMime),
        smtputf8: true,
        ret: Some(Ret::Hdrs),
        envid: Some("id=1 +x".into()),
        auth: Some("a@b".into()),
    };
    let wire = m.to_wire();
    assert_eq!(
        wire,
        " SIZE=99 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+3D1+20+2Bx AUTH=a@b"
    );
    assert_eq!(MailParams::parse(&wire), Ok(m));
    assert_eq!(MailParams::default().to_wire(), "");

    let r = RcptParams {
        notify: Some(FAIL_DELAY),
        orcpt: Some(("rfc822".into(), "x+y=z@example.com".into())),
    };
    let wire = r.to_wire();
    assert_eq!(
        wire,
        " NOTIFY=FAILURE,DELAY ORCPT=rfc822;x+2By+3Dz@example.com"
    );
    assert_eq!(RcptParams::parse(&wire, false), Ok(r));
}
