use super::*;

type Step = Result<Option<(Vec<u8>, usize)>, LineError>;

fn next(reader: &mut LineReader, buf: &[u8]) -> Step {
    reader
        .next_line(buf)
        .map(|o| o.map(|(line, n)| (line.to_vec(), n)))
}

fn line(s: &[u8], n: usize) -> Step {
    Ok(Some((s.to_vec(), n)))
}

#[test]
fn crlf_lines_and_pipelining() {
    let mut r = LineReader::new(DEFAULT_MAX_LEN, BareNewline::Reject);
    let buf = b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n";
    assert_eq!(next(&mut r, buf), line(b"MAIL FROM:<a@b>", 17));
    assert_eq!(next(&mut r, &buf[17..]), line(b"RCPT TO:<c@d>", 15));
    assert_eq!(next(&mut r, &buf[32..]), line(b"DATA", 6));
    assert_eq!(next(&mut r, b""), Ok(None));
}

#[test]
fn incomplete_lines_need_more() {
    let mut r = LineReader::new(DEFAULT_MAX_LEN, BareNewline::Reject);
    assert_eq!(next(&mut r, b"EHLO client"), Ok(None));
    assert_eq!(next(&mut r, b"EHLO client\r"), Ok(None));
    assert_eq!(next(&mut r, b"EHLO client\r\n"), line(b"EHLO client", 13));
}

#[test]
fn empty_line() {
    let mut r = LineReader::new(10, BareNewline::Normalize);
    assert_eq!(next(&mut r, b"\r\nQUIT\r\n"), line(b"", 2));
}

#[test]
fn bare_lf_per_policy() {
    let buf = b"QUIT\n";
    let mut reject = LineReader::new(100, BareNewline::Reject);
    assert_eq!(next(&mut reject, buf), Err(LineError::BareNewline));
    for p in [BareNewline::Normalize, BareNewline::Allow] {
        let mut r = LineReader::new(100, p);
        assert_eq!(next(&mut r, buf), line(b"QUIT", 5));
    }
}

#[test]
fn bare_cr_is_not_a_line_ending() {
    let mut r = LineReader::new(100, BareNewline::Reject);
    assert_eq!(next(&mut r, b"HELO a\rRSET\r\n"), line(b"HELO a\rRSET", 13));
    // A doubled CR: only the last one belongs to the CRLF.
    assert_eq!(next(&mut r, b"NOOP\r\r\n"), line(b"NOOP\r", 7));
}

#[test]
fn length_limit_boundaries() {
    let mut r = LineReader::new(4, BareNewline::Reject);
    // Exactly max_len is fine, with or without the terminator present yet.
    assert_eq!(next(&mut r, b"QUIT\r\n"), line(b"QUIT", 6));
    assert_eq!(next(&mut r, b"QUIT"), Ok(None));
    assert_eq!(next(&mut r, b"QUIT\r"), Ok(None));
    // One more byte is too long, however it continues.
    assert_eq!(next(&mut r, b"QUITX"), Err(LineError::TooLong));
    assert_eq!(next(&mut r, b"QUITX\r\n"), Err(LineError::TooLong));
    assert_eq!(next(&mut r, b"QUIT\rX"), Err(LineError::TooLong));
    // TooLong wins over a bare LF.
    assert_eq!(next(&mut r, b"QUITX\n"), Err(LineError::TooLong));
    let mut n = LineReader::new(4, BareNewline::Normalize);
    assert_eq!(next(&mut n, b"QUIT\n"), line(b"QUIT", 5));
    assert_eq!(next(&mut n, b"QUITX\n"), Err(LineError::TooLong));
}

#[test]
fn huge_buffer_is_scanned_only_up_to_limit() {
    let mut r = LineReader::new(DEFAULT_MAX_LEN, BareNewline::Normalize);
    let mut buf = vec![b'A'; 1 << 20];
    buf.extend_from_slice(b"\r\n");
    assert_eq!(next(&mut r, &buf), Err(LineError::TooLong));
}

#[test]
fn skip_line_resynchronises_on_pipelined_commands() {
    let mut r = LineReader::new(8, BareNewline::Reject);
    let mut buf = b"HELO aaaaaaaaaaaaaaaa\r\nQUIT\r\n".to_vec();
    assert_eq!(next(&mut r, &buf), Err(LineError::TooLong));
    let (n, found) = skip_line(&buf);
    assert!(found);
    buf.drain(..n);
    assert_eq!(next(&mut r, &buf), line(b"QUIT", 6));
}

#[test]
fn skip_line_across_reads() {
    assert_eq!(skip_line(b"xxxxxxxx"), (8, false));
    assert_eq!(skip_line(b"xx\r\nNOOP"), (4, true));
    assert_eq!(skip_line(b""), (0, false));
}

#[test]
fn too_long_reply_text() {
    assert_eq!(
        too_long_reply().to_wire(true),
        "500 5.5.0 Error: line too long\r\n"
    );
    assert_eq!(
        too_long_reply().to_wire(false),
        "500 Error: line too long\r\n"
    );
}

#[test]
fn zero_and_huge_limits_do_not_overflow() {
    let mut z = LineReader::new(0, BareNewline::Reject);
    assert_eq!(next(&mut z, b"\r\n"), line(b"", 2));
    assert_eq!(next(&mut z, b"\r"), Ok(None));
    assert_eq!(next(&mut z, b"x"), Err(LineError::TooLong));
    let mut h = LineReader::new(usize::MAX, BareNewline::Reject);
    assert_eq!(next(&mut h, b"abc"), Ok(None));
    assert_eq!(next(&mut h, b"abc\r\n"), line(b"abc", 5));
    assert_eq!(h.max_len(), usize::MAX);
}
