//! # Layout
//!
//! `postern-proto` is Postern's pure SMTP protocol layer. It owns the
//! syntax of the conversation and nothing else: parsing command lines
//! ([`command`], with envelope addresses and ESMTP parameters in
//! [`params`] and [`xtext`]), framing command lines ([`line`](mod@line)), decoding
//! the DATA stream with SMTP-smuggling defences ([`data`]), and building
//! replies ([`reply`], [`ehlo`]). It follows RFC 5321 plus the extensions
//! Postfix speaks: SIZE (RFC 1870), PIPELINING (RFC 2920), CHUNKING and
//! BINARYMIME (RFC 3030), DSN (RFC 3461), SMTPUTF8 (RFC 6531), enhanced
//! status codes (RFC 2034, RFC 3463).
//!
//! It must not touch the outside world: no sockets, files, clocks, DNS,
//! logging or async runtime. Every function is a deterministic
//! transformation of bytes the caller already has, so the server session
//! (which owns I/O, timeouts, policy and state such as "is a transaction
//! open") can be tested separately and this crate can be fuzzed. Client
//! input never causes a panic here; malformed input becomes an error value
//! with the reply to send.

pub mod command;
pub mod data;
pub mod ehlo;
pub mod line;
pub mod params;
pub mod reply;
pub mod xtext;

mod address;

pub use command::{parse_command, Command, CommandError};
pub use data::{BareNewline, DataDecoder, DataEvent};
pub use ehlo::{ehlo_reply, EhloCaps};
pub use line::{LineError, LineReader};
pub use params::{Body, MailParams, Notify, ParamError, RcptParams, Ret};
pub use reply::{EnhancedCode, Reply};
