use super::*;

fn argv(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

fn id() -> QueueId {
    QueueId::generate()
}

#[test]
fn postern_commands() {
    let q = id();
    let q2 = id();
    let cases: Vec<(String, Invocation)> = vec![
        ("postern run".into(), inv(None, &[], Command::Run)),
        (
            "/usr/sbin/postern -c /etc/x start".into(),
            inv(Some("/etc/x"), &[], Command::Start),
        ),
        (
            "postern -c/etc/y stop".into(),
            inv(Some("/etc/y"), &[], Command::Stop),
        ),
        ("postern status".into(), inv(None, &[], Command::Status)),
        ("postern check".into(), inv(None, &[], Command::Check)),
        ("postern --version".into(), inv(None, &[], Command::Version)),
        ("postern help".into(), inv(None, &[], Command::Help)),
        ("postern queue list".into(), queue(QueueCommand::List)),
        ("postern mailq".into(), queue(QueueCommand::List)),
        ("postern queue flush".into(), queue(QueueCommand::Flush)),
        (
            "postern queue flush @Example.ORG".into(),
            queue(QueueCommand::FlushSite("example.org".into())),
        ),
        (
            format!("postern queue show {q}"),
            queue(QueueCommand::Show {
                id: q.clone(),
                parts: ShowParts {
                    envelope: true,
                    header: true,
                    body: true,
                },
            }),
        ),
        (
            format!("postern queue show -h {q}"),
            queue(QueueCommand::Show {
                id: q.clone(),
                parts: ShowParts {
                    envelope: false,
                    header: true,
                    body: false,
                },
            }),
        ),
        (
            format!("postern queue delete {q} {q2}"),
            queue(QueueCommand::Delete(Selection {
                ids: vec![q.clone(), q2.clone()],
                ..Selection::default()
            })),
        ),
        (
            "postern queue hold ALL deferred".into(),
            queue(QueueCommand::Hold(Selection {
                all: true,
                queues: vec![QueueDir::Deferred],
                ..Selection::default()
            })),
        ),
        (
            "postern queue release ALL".into(),
            queue(QueueCommand::Release(Selection {
                all: true,
                ..Selection::default()
            })),
        ),
        (
            "postern queue requeue -".into(),
            queue(QueueCommand::Requeue(Selection {
                from_stdin: true,
                ..Selection::default()
            })),
        ),
    ];
    for (line, want) in cases {
        assert_eq!(parse(&argv(&line)), Ok(want), "{line}");
    }
    // One argv word may hold spaces around `=`, as in main.cf.
    let spaced = vec![
        "postern".to_string(),
        "-o".into(),
        "myhostname=a.example".into(),
        "-o".into(),
        "message_size_limit = 5".into(),
        "reload".into(),
    ];
    assert_eq!(
        parse(&spaced),
        Ok(inv(
            None,
            &[("myhostname", "a.example"), ("message_size_limit", "5")],
            Command::Reload
        ))
    );
}

#[test]
fn conf_forms() {
    let conf = |mode: ConfMode, names: &[&str], values_only: bool, expand: bool| {
        inv(
            None,
            &[],
            Command::Conf(ConfArgs {
                mode,
                names: names.iter().map(|s| s.to_string()).collect(),
                values_only,
                expand,
            }),
        )
    };
    let edit = |pairs: &[(&str, &str)]| {
        ConfMode::Edit(
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    };
    let cases = [
        ("postern conf", conf(ConfMode::Effective, &[], false, false)),
        (
            "postern conf -n",
            conf(ConfMode::Explicit, &[], false, false),
        ),
        (
            "postern conf -d myhostname",
            conf(ConfMode::Defaults, &["myhostname"], false, false),
        ),
        (
            "postern conf -hx mydomain myorigin",
            conf(ConfMode::Effective, &["mydomain", "myorigin"], true, true),
        ),
        (
            "postern conf -e myhostname=mx.example relayhost=",
            conf(
                edit(&[("myhostname", "mx.example"), ("relayhost", "")]),
                &[],
                false,
                false,
            ),
        ),
        (
            "postern conf mynetworks=127.0.0.0/8",
            conf(edit(&[("mynetworks", "127.0.0.0/8")]), &[], false, false),
        ),
        ("postern conf -M", conf(ConfMode::Master, &[], false, false)),
    ];
    for (line, want) in cases {
        assert_eq!(parse(&argv(line)), Ok(want), "{line}");
    }
}

#[test]
fn usage_errors_say_what_to_do() {
    let cases = [
        ("postern", "no command"),
        ("postern frobnicate", "unknown command \"frobnicate\""),
        ("postern -x run", "unknown option -x"),
        ("postern -c", "-c needs a value"),
        ("postern -o novalue run", "expects name=value"),
        ("postern run now", "takes no arguments"),
        ("postern conf -n -d", "exclude each other"),
        ("postern conf -e", "needs name=value"),
        ("postern conf -e a=b c", "expects name=value"),
        ("postern conf -q", "unknown option -q"),
        ("postern queue", "needs a subcommand"),
        ("postern queue show", "needs a queue ID"),
        ("postern queue delete", "needs queue IDs"),
        ("postern queue delete ../../etc/passwd", "is not a queue ID"),
        ("postern queue explode", "unknown queue subcommand"),
    ];
    for (line, want) in cases {
        match parse(&argv(line)) {
            Err(UsageError(msg)) => assert!(msg.contains(want), "{line}: {msg}"),
            other => panic!("{line}: expected a usage error, got {other:?}"),
        }
    }
}

#[test]
fn personalities() {
    assert_eq!(
        parse(&argv("/usr/bin/mailq")),
        Ok(queue(QueueCommand::List))
    );
    assert_eq!(
        parse(&argv("newaliases")),
        Ok(inv(None, &[], Command::Newaliases))
    );
    let Ok(Invocation {
        command: Command::Sendmail(args),
        ..
    }) = parse(&argv("/usr/sbin/sendmail -t -oi"))
    else {
        panic!("sendmail personality");
    };
    assert!(args.extract_recipients && args.ignore_dots);
    // `postern -c DIR sendmail` and `sendmail -C DIR` both pick the directory.
    assert_eq!(
        parse(&argv("sendmail -C /etc/p bob")).map(|i| i.config_dir),
        Ok(Some(PathBuf::from("/etc/p")))
    );
    assert_eq!(
        parse(&argv("postern -c /etc/q sendmail bob")).map(|i| i.config_dir),
        Ok(Some(PathBuf::from("/etc/q")))
    );
    assert_eq!(
        parse(&argv("postern sendmail -bp")).map(|i| i.command),
        Ok(Command::Queue(QueueCommand::List))
    );
}

fn inv(dir: Option<&str>, overrides: &[(&str, &str)], command: Command) -> Invocation {
    Invocation {
        config_dir: dir.map(PathBuf::from),
        overrides: overrides
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        command,
    }
}

fn queue(cmd: QueueCommand) -> Invocation {
    inv(None, &[], Command::Queue(cmd))
}

#[test]
fn plugin_commands() {
    use crate::cli::plugin::PluginCommand;
    let plugin = |cmd: PluginCommand| inv(None, &[], Command::Plugin(cmd));
    let cases = [
        ("postern plugin list", plugin(PluginCommand::List)),
        (
            "postern plugin check /p/policy.wasm",
            plugin(PluginCommand::Check {
                path: PathBuf::from("/p/policy.wasm"),
            }),
        ),
        (
            "postern plugin test policy.wasm",
            plugin(PluginCommand::Test {
                path: PathBuf::from("policy.wasm"),
                vectors: None,
            }),
        ),
        (
            "postern -c /etc/x plugin test policy.wasm v.tests.toml",
            inv(
                Some("/etc/x"),
                &[],
                Command::Plugin(PluginCommand::Test {
                    path: PathBuf::from("policy.wasm"),
                    vectors: Some(PathBuf::from("v.tests.toml")),
                }),
            ),
        ),
    ];
    for (line, want) in cases {
        assert_eq!(parse(&argv(line)), Ok(want), "{line}");
    }
    for (line, want) in [
        ("postern plugin", "plugin needs a subcommand"),
        ("postern plugin list x", "plugin list takes no arguments"),
        ("postern plugin check", "plugin check takes one component"),
        (
            "postern plugin check a b",
            "plugin check takes one component",
        ),
        ("postern plugin test", "plugin test takes a component"),
        ("postern plugin test a b c", "plugin test takes a component"),
        ("postern plugin run x", "unknown plugin subcommand \"run\""),
    ] {
        match parse(&argv(line)) {
            Err(UsageError(msg)) => assert!(msg.contains(want), "{line}: {msg}"),
            other => panic!("{line}: expected a usage error, got {other:?}"),
        }
    }
}
