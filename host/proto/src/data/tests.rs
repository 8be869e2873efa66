use super::*;

const POLICIES: [BareNewline; 3] = [
    BareNewline::Reject,
    BareNewline::Normalize,
    BareNewline::Allow,
];

/// Outcome of decoding: content, `Some(consumed)` if the end was found,
/// whether a bare newline was flagged, longest line.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    content: Vec<u8>,
    end: Option<usize>,
    bare: bool,
    longest: usize,
}

/// Feeds `input` in the given chunk sizes (the last chunk takes the rest).
fn run_chunks(policy: BareNewline, input: &[u8], sizes: &[usize]) -> Outcome {
    let mut d = DataDecoder::new(policy);
    let mut out = Vec::new();
    let mut pos = 0;
    let mut chunks: Vec<&[u8]> = Vec::new();
    for &s in sizes {
        let end = (pos + s).min(input.len());
        chunks.push(&input[pos..end]);
        pos = end;
    }
    chunks.push(&input[pos..]);
    let mut offset = 0;
    let mut end = None;
    for chunk in chunks {
        match d.feed(chunk, &mut out) {
            DataEvent::NeedMore => offset += chunk.len(),
            DataEvent::End { consumed } => {
                assert!(consumed <= chunk.len());
                end = Some(offset + consumed);
                break;
            }
        }
    }
    if end.is_some() {
        assert!(d.is_done());
        assert_eq!(d.feed(b"more", &mut out), DataEvent::End { consumed: 0 });
    }
    Outcome {
        content: out,
        end,
        bare: d.saw_bare_newline(),
        longest: d.longest_line(),
    }
}

fn run(policy: BareNewline, input: &[u8]) -> Outcome {
    run_chunks(policy, input, &[])
}

/// Independent line-at-a-time model of the rules in the module docs, for
/// inputs that contain an LF. Returns None when no terminator is found.
fn reference(policy: BareNewline, input: &[u8]) -> Option<Outcome> {
    let mut out = Vec::new();
    let (mut pos, mut prev_crlf, mut bare, mut longest) = (0, true, false, 0);
    while let Some(off) = input[pos..].iter().position(|&b| b == b'\n') {
        let lf = pos + off;
        let raw = &input[pos..lf];
        let crlf = raw.last() == Some(&b'\r');
        let line = if crlf { &raw[..raw.len() - 1] } else { raw };
        let strict = policy != BareNewline::Allow;
        if line == b"." && (!strict || (crlf && prev_crlf)) {
            return Some(Outcome {
                content: out,
                end: Some(lf + 1),
                bare,
                longest,
            });
        }
        if policy == BareNewline::Reject && (!crlf || line.contains(&b'\r')) {
            bare = true;
        }
        let content = if line.len() > 1 && line[0] == b'.' {
            &line[1..]
        } else {
            line
        };
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
        longest = longest.max(content.len());
        prev_crlf = crlf;
        pos = lf + 1;
    }
    None
}

fn content_and_end(policy: BareNewline, input: &[u8]) -> (String, Option<usize>) {
    let o = run(policy, input);
    (String::from_utf8_lossy(&o.content).into_owned(), o.end)
}

#[test]
fn parse_policy_names() {
    assert_eq!(BareNewline::parse("reject"), Some(BareNewline::Reject));
    assert_eq!(
        BareNewline::parse("normalize"),
        Some(BareNewline::Normalize)
    );
    assert_eq!(BareNewline::parse("yes"), Some(BareNewline::Normalize));
    assert_eq!(BareNewline::parse(" No "), Some(BareNewline::Allow));
    assert_eq!(BareNewline::parse("maybe"), None);
    assert_eq!(BareNewline::parse(""), None);
}

#[test]
fn simple_message_and_pipelined_remainder() {
    let input = b"Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n";
    for p in POLICIES {
        let o = run(p, input);
        assert_eq!(o.content, b"Subject: hi\r\n\r\nbody\r\n");
        assert_eq!(o.end, Some(input.len() - b"QUIT\r\n".len()));
        assert!(!o.bare);
        assert_eq!(o.longest, 11);
    }
}

#[test]
fn empty_message() {
    for p in POLICIES {
        assert_eq!(content_and_end(p, b".\r\n"), (String::new(), Some(3)));
        assert_eq!(
            content_and_end(p, b".\r\nMAIL FROM:<>\r\n"),
            (String::new(), Some(3))
        );
    }
}

#[test]
fn dot_unstuffing() {
    let input = b"..\r\n..leading\r\n.x\r\n...\r\nmid.dle.\r\n.\r\n";
    for p in POLICIES {
        let (content, end) = content_and_end(p, input);
        assert_eq!(content, ".\r\n.leading\r\nx\r\n..\r\nmid.dle.\r\n");
        assert_eq!(end, Some(input.len()));
    }
}

#[test]
fn needs_more_until_terminator() {
    for p in POLICIES {
        for partial in [
            &b"abc"[..],
            b"abc\r\n",
            b"abc\r\n.",
            b"abc\r\n.\r",
            b"abc\r\n..\r\n",
        ] {
            assert_eq!(run(p, partial).end, None, "{p:?} {partial:?}");
        }
    }
}

/// (input, policy, expected content, expected end, bare flagged)
type Vector = (
    &'static [u8],
    BareNewline,
    &'static str,
    Option<usize>,
    bool,
);

#[test]
fn smuggling_vectors() {
    use BareNewline::*;
    // (input, policy, expected content, expected end, bare flagged)
    #[rustfmt::skip]
    let cases: &[Vector] = &[
        // "\n.\r\n": the classic CVE-2023-51764 sequence.
        (b"a\n.\r\nMAIL", Allow, "a\r\n", Some(5), false),
        (b"a\n.\r\nMAIL", Normalize, "a\r\n.\r\nMAIL", None, false),
        (b"a\n.\r\nMAIL", Reject, "a\r\n.\r\nMAIL", None, true),
        // "\r\n.\n"
        (b"a\r\n.\nMAIL", Allow, "a\r\n", Some(5), false),
        (b"a\r\n.\nMAIL", Normalize, "a\r\n.\r\nMAIL", None, false),
        (b"a\r\n.\nMAIL", Reject, "a\r\n.\r\nMAIL", None, true),
        // "\n.\n"
        (b"a\n.\nMAIL", Allow, "a\r\n", Some(4), false),
        (b"a\n.\nMAIL", Normalize, "a\r\n.\r\nMAIL", None, false),
        (b"a\n.\nMAIL", Reject, "a\r\n.\r\nMAIL", None, true),
        // "\r.\r": bare CRs never end a line, under any policy.
        (b"a\r.\rMAIL\r\n", Allow, "a\r.\rMAIL\r\n", None, false),
        (b"a\r.\rMAIL\r\n", Normalize, "a\r.\rMAIL\r\n", None, false),
        (b"a\r.\rMAIL\r\n", Reject, "a\r.\rMAIL\r\n", None, true),
        // "\r.\r\n": a line "a\r." is not a dot line.
        (b"a\r.\r\nMAIL", Normalize, "a\r.\r\nMAIL", None, false),
        // ".\n" right at the start.
        (b".\nMAIL", Allow, "", Some(2), false),
        (b".\nMAIL", Normalize, ".\r\nMAIL", None, false),
        (b".\nMAIL", Reject, ".\r\nMAIL", None, true),
        // ".\r" + junk at the start: stuffed line with a bare CR.
        (b".\rX\r\n", Normalize, "\rX\r\n", None, false),
        (b".\rX\r\n", Reject, "\rX\r\n", None, true),
        // "\r\n.\r\r\n": dot + bare CR is not the terminator.
        (b"a\r\n.\r\r\n", Normalize, "a\r\n\r\r\n", None, false),
        // After a bare-LF line, the next proper CRLF.CRLF does end it.
        (b"a\n.\r\n.\r\nQUIT", Normalize, "a\r\n.\r\n", Some(8), false),
        (b"a\n.\r\n.\r\nQUIT", Reject, "a\r\n.\r\n", Some(8), true),
        (b"a\n.\r\n.\r\nQUIT", Allow, "a\r\n", Some(5), false),
        // A bare-LF *content* line followed by CRLF.CRLF: a line ending in
        // CRLF precedes the dot, so it ends.
        (b"a\nb\r\n.\r\n", Normalize, "a\r\nb\r\n", Some(8), false),
        (b"a\nb\r\n.\r\n", Reject, "a\r\nb\r\n", Some(8), true),
        // Stuffed dots stay stuffed: "\n..\r\n" is content ".".
        (b"a\n..\r\n", Allow, "a\r\n.\r\n", None, false),
    ];
    for &(input, policy, content, end, bare) in cases {
        let o = run(policy, input);
        assert_eq!(
            (String::from_utf8_lossy(&o.content).as_ref(), o.end, o.bare),
            (content, end, bare),
            "{policy:?} {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn bare_flag_only_under_reject() {
    let input = b"a\nb\rc\r\n.\r\n";
    assert!(run(BareNewline::Reject, input).bare);
    assert!(!run(BareNewline::Normalize, input).bare);
    assert!(!run(BareNewline::Allow, input).bare);
    assert!(!run(BareNewline::Reject, b"clean\r\n\r\n.\r\n").bare);
}

#[test]
fn bare_cr_before_crlf() {
    for p in POLICIES {
        let o = run(p, b"x\r\r\n.\r\n");
        assert_eq!(o.content, b"x\r\r\n");
        assert_eq!(o.end, Some(7));
        assert_eq!(o.bare, p == BareNewline::Reject);
    }
}

#[test]
fn longest_line_counts_decoded_bytes() {
    let o = run(BareNewline::Normalize, b"12345\r\n..789\r\n\r\n.\r\n");
    assert_eq!(o.longest, 5);
    // An unfinished endless line is visible while it grows.
    let mut d = DataDecoder::new(BareNewline::Normalize);
    let mut out = Vec::new();
    assert_eq!(d.feed(&[b'x'; 5000], &mut out), DataEvent::NeedMore);
    assert_eq!(d.longest_line(), 5000);
}

#[test]
fn nul_and_binary_bytes_pass_through() {
    let input = b"\0\xff\x1b\r\n.\r\n";
    let o = run(BareNewline::Reject, input);
    assert_eq!(o.content, b"\0\xff\x1b\r\n");
    assert!(!o.bare);
}

const SAMPLES: &[&[u8]] = &[
    b"Subject: x\r\n\r\n..stuffed\r\n.\r\nQUIT\r\n",
    b"a\n.\r\nMAIL FROM:<x>\r\n\r\n.\r\nRSET\r\n",
    b"a\r\n.\nb\n.\n\r.\r\r\n.\r\n",
    b".\r\n",
    b".\n.\r\n",
    b"x\r\r\n.\r\r\n..\n.\r\n.\r\n",
];

#[test]
fn every_two_way_split_matches_one_shot() {
    for p in POLICIES {
        for input in SAMPLES {
            let whole = run(p, input);
            for split in 0..=input.len() {
                assert_eq!(run_chunks(p, input, &[split]), whole, "{p:?} split {split}");
            }
            for a in 0..=input.len() {
                for b in 0..=(input.len() - a) {
                    assert_eq!(run_chunks(p, input, &[a, b]), whole, "{p:?} {a}+{b}");
                }
            }
        }
    }
}

#[test]
fn byte_by_byte_matches_one_shot() {
    for p in POLICIES {
        for input in SAMPLES {
            let ones = vec![1; input.len()];
            assert_eq!(run_chunks(p, input, &ones), run(p, input), "{p:?}");
        }
    }
}

/// Small deterministic PRNG so the test needs no extra crates.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as usize
    }
}

#[test]
fn random_inputs_match_reference_model_in_random_splits() {
    let mut rng = Lcg(51764);
    let alphabet = b"..\r\r\n\nab\0";
    for _ in 0..5000 {
        let len = rng.next() % 40;
        let mut input: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.next() % alphabet.len()])
            .collect();
        // Guarantee a terminator exists under every policy.
        input.extend_from_slice(b"\r\n.\r\nTAIL");
        for p in POLICIES {
            let want = reference(p, &input);
            let whole = run(p, &input);
            assert_eq!(Some(&whole), want.as_ref(), "{p:?} {input:?}");
            let sizes: Vec<usize> = (0..rng.next() % 6).map(|_| rng.next() % 8).collect();
            assert_eq!(
                run_chunks(p, &input, &sizes),
                whole,
                "{p:?} {input:?} {sizes:?}"
            );
        }
    }
}

#[test]
fn reject_reply() {
    assert_eq!(
        bare_newline_reply().to_wire(true),
        "550 5.5.2 Error: bare <LF> received\r\n"
    );
}
