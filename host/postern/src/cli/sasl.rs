//! `postern sasl hash`: reads a password from standard input (the first line, without its line
//! ending) and prints an Argon2id hash for a `smtpd_sasl_type = passwd-file` file
//! (docs/auth.md). The password is never taken from the command line, where `ps` and shell
//! history would show it.

use std::io::BufRead;

use anyhow::anyhow;

use super::args::UsageError;
use super::{exit, CliError, CliResult};

/// `postern sasl …`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaslCommand {
    Hash,
}

pub(super) fn parse_sasl(args: &[String]) -> Result<SaslCommand, UsageError> {
    match args {
        [sub] if sub == "hash" => Ok(SaslCommand::Hash),
        _ => Err(UsageError(
            "sasl takes one subcommand: hash (reads the password from standard input; example: \
             postern sasl hash < pwfile)"
                .to_string(),
        )),
    }
}

pub(super) fn run(cmd: &SaslCommand) -> CliResult {
    match cmd {
        SaslCommand::Hash => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| CliError::new(exit::IOERR, anyhow!("reading standard input: {e}")))?;
            let password = line.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                return Err(CliError::new(
                    exit::DATAERR,
                    anyhow!("no password on standard input"),
                ));
            }
            let hash = crate::sasl::hash_argon2id(password)
                .map_err(|e| CliError::new(exit::SOFTWARE, anyhow!("hashing failed: {e}")))?;
            println!("{hash}");
            Ok(exit::OK)
        }
    }
}
