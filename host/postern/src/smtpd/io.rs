//! Buffered SMTP I/O for one session: an input buffer that command lines and message content are
//! taken from, an output buffer for replies, a timeout on every read and write, and PIPELINING-
//! aware flushing.
//!
//! RFC 2920 §3.2 lets a client send a whole group of commands without waiting; the server may
//! answer them in one write. Replies are therefore only queued, and written out when the server
//! would otherwise wait for input (the input buffer holds no complete command), when the output
//! grows past [`FLUSH_THRESHOLD`], or explicitly (the `354` to DATA, the end of the session).
//! Bytes read past the end of a command or of message data stay in the buffer for the next
//! command, so nothing a pipelining client sent is lost.
//!
//! The stream is a [`Transport`]: the connection as accepted, or the same connection inside TLS
//! after STARTTLS or a wrapper-mode handshake ([`SmtpIo::start_tls`]). The plaintext path costs
//! one enum match per read or write of up to [`READ_CHUNK`] bytes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use postern_proto::line::{skip_line, LineError, LineReader};
use postern_proto::Reply;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// Bytes asked from the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// Queued replies are written once they reach this size, even with commands still pending, so
/// a client pipelining thousands of commands cannot make the server buffer unbounded output.
pub const FLUSH_THRESHOLD: usize = 16 * 1024;

/// How long a [`Deferred`] action waits for the client's next input at most.
pub const DEFER_LIMIT: Duration = Duration::from_millis(2);

/// Work that should not delay the reply just queued: it runs once the client has sent more
/// input (by then that reply is on the wire), after [`DEFER_LIMIT`] without input, or when it is
/// dropped (the session ended), whichever comes first. It always runs exactly once.
pub struct Deferred(Option<Box<dyn FnOnce() + Send + Sync>>);

impl Deferred {
    pub fn new(work: impl FnOnce() + Send + Sync + 'static) -> Deferred {
        Deferred(Some(Box::new(work)))
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        if let Some(work) = self.0.take() {
            work();
        }
    }
}

/// Why the session cannot go on reading or writing.
#[derive(Debug)]
pub enum IoError {
    /// The client closed the connection (or reset it).
    Lost,
    /// Nothing arrived (or could be written) within `smtpd_timeout`.
    Timeout,
    /// The server is shutting down (only while waiting for a command).
    Shutdown,
}

impl From<io::Error> for IoError {
    fn from(_: io::Error) -> IoError {
        IoError::Lost
    }
}

/// A command line taken from the input.
#[derive(Debug)]
pub enum Line {
    /// One command line without its line ending.
    Command(Vec<u8>),
    /// The line exceeded `line_length_limit`; it has been discarded through its LF.
    TooLong,
    /// The line ended in a bare LF and the policy is reject.
    BareNewline,
}

/// The session's connection: as accepted, or upgraded to TLS in place.
pub enum Transport<S> {
    Plain(S),
    /// Boxed: a TLS connection state is large, and most sessions never use it.
    Tls(Box<tokio_rustls::server::TlsStream<S>>),
    /// After a failed handshake consumed the stream: every operation fails.
    Closed,
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "connection closed after a failed TLS handshake",
    )
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Transport<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
            Transport::Closed => Poll::Ready(Err(closed())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Transport<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
            Transport::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(t) => Pin::new(t.as_mut()).poll_flush(cx),
            Transport::Closed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
            Transport::Closed => Poll::Ready(Ok(())),
        }
    }
}

pub struct SmtpIo<S> {
    stream: Transport<S>,
    input: Vec<u8>,
    /// Unconsumed input is `input[start..]`.
    start: usize,
    output: Vec<u8>,
    timeout: Duration,
    shutdown: Option<watch::Receiver<bool>>,
    /// Runs at the next input (see [`SmtpIo::defer`]).
    deferred: Option<Deferred>,
    /// [`DEFER_LIMIT`], changed only by tests.
    defer_limit: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> SmtpIo<S> {
    pub fn new(stream: S, timeout: Duration, shutdown: Option<watch::Receiver<bool>>) -> Self {
        SmtpIo {
            stream: Transport::Plain(stream),
            input: Vec::with_capacity(READ_CHUNK),
            start: 0,
            output: Vec::with_capacity(1024),
            timeout,
            shutdown,
            deferred: None,
            defer_limit: DEFER_LIMIT,
        }
    }

    /// Runs `work` once the client has sent more input, after [`DEFER_LIMIT`], or when the
    /// session ends, whichever comes first. A second deferral runs the first one now.
    ///
    /// smtpd hands a new message to the queue manager this way: on the same worker thread the
    /// manager's work would otherwise run before the session notices the client's next command,
    /// delaying that reply; a moment later it overlaps with the client reading the reply.
    pub fn defer(&mut self, work: Deferred) {
        self.deferred = Some(work);
    }

    /// Input received but not yet used.
    pub fn pending(&self) -> &[u8] {
        &self.input[self.start..]
    }

    /// Marks `n` bytes of [`SmtpIo::pending`] as used.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.input.len());
        if self.start == self.input.len() {
            self.input.clear();
            self.start = 0;
        }
    }

    /// Queues a reply; `enhanced` says whether RFC 2034 codes are shown (EHLO was used).
    pub fn queue(&mut self, reply: &Reply, enhanced: bool) {
        reply.write_to(enhanced, &mut self.output);
    }

    /// Replies waiting to be written.
    pub fn queued(&self) -> usize {
        self.output.len()
    }

    /// Writes all queued replies, within `smtpd_timeout`.
    pub async fn flush(&mut self) -> Result<(), IoError> {
        if self.output.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.output);
        let write = async {
            self.stream.write_all(&out).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.timeout, write).await {
            Ok(result) => result.map_err(IoError::from),
            Err(_) => Err(IoError::Timeout),
        }
    }

    /// Flushes queued replies (the client is waiting for them before it sends more), then reads
    /// more input within `smtpd_timeout`. With `interruptible`, a shutdown signal ends the wait.
    pub async fn fill(&mut self, interruptible: bool) -> Result<(), IoError> {
        self.flush().await?;
        if self.start > 0 {
            self.input.drain(..self.start);
            self.start = 0;
        }
        // Read into spare capacity (no zero-filling); the buffer only grows by what arrives.
        self.input.reserve(READ_CHUNK);
        let mut deferred = self.deferred.take();
        let result = {
            let read = tokio::time::timeout(self.timeout, self.stream.read_buf(&mut self.input));
            tokio::pin!(read);
            let mut shutdown = self.shutdown.as_mut().filter(|_| interruptible);
            // Created at its first poll: a read without deferred work sets no timer.
            let limit = async { tokio::time::sleep(self.defer_limit).await };
            tokio::pin!(limit);
            loop {
                tokio::select! {
                    biased;
                    r = &mut read => break Some(r),
                    () = wait_shutdown(shutdown.as_deref_mut()) => break None,
                    () = &mut limit, if deferred.is_some() => drop(deferred.take()),
                }
            }
        };
        drop(deferred);
        match result {
            Some(Ok(Ok(n))) if n > 0 => Ok(()),
            Some(Ok(_)) => Err(IoError::Lost),
            Some(Err(_)) => Err(IoError::Timeout),
            None => Err(IoError::Shutdown),
        }
    }

    /// Reads the next command line. An over-long line is discarded up to and including its LF
    /// before [`Line::TooLong`] is returned, so that the next pipelined command is intact.
    pub async fn read_line(&mut self, reader: &mut LineReader) -> Result<Line, IoError> {
        loop {
            match reader.next_line(self.pending()) {
                Ok(Some((line, n))) => {
                    let line = line.to_vec();
                    self.consume(n);
                    return Ok(Line::Command(line));
                }
                Ok(None) => self.fill(true).await?,
                Err(LineError::BareNewline) => return Ok(Line::BareNewline),
                Err(LineError::TooLong) => {
                    loop {
                        let (n, found) = skip_line(self.pending());
                        self.consume(n);
                        if found {
                            break;
                        }
                        self.fill(true).await?;
                    }
                    return Ok(Line::TooLong);
                }
            }
        }
    }

    /// Hands exactly `size` bytes of input to `sink`, reading as needed (BDAT chunks).
    pub async fn take_exact(
        &mut self,
        mut size: u64,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<(), IoError> {
        while size > 0 {
            if self.pending().is_empty() {
                self.fill(false).await?;
            }
            let n = self
                .pending()
                .len()
                .min(usize::try_from(size).unwrap_or(usize::MAX));
            sink(&self.pending()[..n]);
            self.consume(n);
            size -= n as u64;
        }
        Ok(())
    }

    /// Drops all input received but not yet used, returning it (RFC 3207 §4.2 / CVE-2011-0411:
    /// commands a client pipelined after STARTTLS must never run inside the TLS session).
    pub fn discard_input(&mut self) -> Vec<u8> {
        let rest = self.pending().to_vec();
        self.input.clear();
        self.start = 0;
        rest
    }

    /// Runs the server side of a TLS handshake on the connection within `timeout`, and from then
    /// on reads and writes through it. Queued replies are written first and unused input is
    /// dropped (see [`SmtpIo::discard_input`]). On failure the connection is unusable and the
    /// reason is returned for the log.
    pub async fn start_tls(
        &mut self,
        acceptor: &tokio_rustls::TlsAcceptor,
        timeout: Duration,
    ) -> Result<crate::tls::TlsSummary, String> {
        if self.flush().await.is_err() {
            return Err("lost connection before the handshake".to_string());
        }
        self.discard_input();
        let plain = match std::mem::replace(&mut self.stream, Transport::Closed) {
            Transport::Plain(s) => s,
            other => {
                self.stream = other;
                return Err("TLS is already active".to_string());
            }
        };
        match tokio::time::timeout(timeout, acceptor.accept(plain)).await {
            Ok(Ok(tls)) => {
                let summary = crate::tls::server::summary(tls.get_ref().1);
                self.stream = Transport::Tls(Box::new(tls));
                Ok(summary)
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timeout".to_string()),
        }
    }

    /// Best-effort flush and close at the end of a session.
    pub async fn close(&mut self) {
        let _ = self.flush().await;
        let _ = tokio::time::timeout(self.timeout, self.stream.shutdown()).await;
    }
}

/// Resolves when shutdown is signalled; never, when there is no signal to wait for (or its
/// sender is gone).
async fn wait_shutdown(rx: Option<&mut watch::Receiver<bool>>) {
    if let Some(rx) = rx {
        if rx.wait_for(|down| *down).await.is_ok() {
            return;
        }
    }
    std::future::pending::<()>().await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::io::AsyncWriteExt;

    use super::*;

    type Io = SmtpIo<tokio::io::DuplexStream>;

    /// A session's I/O over an in-memory connection with one piece of work deferred, the
    /// client's end, how often deferred work has run, and a maker of more such work.
    fn deferring() -> (
        Io,
        tokio::io::DuplexStream,
        Arc<AtomicUsize>,
        impl Fn() -> Deferred,
    ) {
        let (server, client) = tokio::io::duplex(1024);
        let mut io = SmtpIo::new(server, Duration::from_secs(300), None);
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let make = move || {
            let r = r.clone();
            Deferred::new(move || {
                r.fetch_add(1, Ordering::SeqCst);
            })
        };
        io.defer(make());
        (io, client, runs, make)
    }

    #[tokio::test]
    async fn deferred_work_waits_for_the_clients_next_input() {
        let (mut io, mut client, runs, _) = deferring();
        // A limit that cannot pass during the test: only input can run the work.
        io.defer_limit = Duration::from_secs(3600);
        let (filled, ()) = tokio::join!(io.fill(false), async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(runs.load(Ordering::SeqCst), 0, "ran before any input");
            client.write_all(b"QUIT\r\n").await.unwrap();
        });
        assert!(filled.is_ok());
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(io.pending(), b"QUIT\r\n");
        // Done once: the next read runs nothing.
        client.write_all(b"NOOP\r\n").await.unwrap();
        io.fill(false).await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn deferred_work_runs_when_the_client_stays_silent() {
        let (mut io, mut client, runs, _) = deferring();
        let (filled, ()) = tokio::join!(io.fill(false), async {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while runs.load(Ordering::SeqCst) == 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            assert_eq!(runs.load(Ordering::SeqCst), 1, "not run after the limit");
            client.write_all(b"QUIT\r\n").await.unwrap();
        });
        assert!(filled.is_ok());
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn deferred_work_runs_when_the_session_ends_or_is_replaced() {
        let (mut io, _client, runs, deferred) = deferring();
        io.defer(deferred());
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "a second deferral runs the first"
        );
        drop(io);
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "ending the session runs the rest"
        );
    }

    #[tokio::test]
    async fn deferred_work_runs_when_the_client_vanishes() {
        let (mut io, client, runs, _) = deferring();
        drop(client);
        assert!(matches!(io.fill(false).await, Err(IoError::Lost)));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
