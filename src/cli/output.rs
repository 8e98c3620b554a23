//! A client command's outcome: the reply (its JSON value and its text) or the failure (a
//! stable code and a message), printed as text or, with `--json`, as JSON on standard output.

use std::io::Write;
use std::process::ExitCode;

use lightfilter::api::parse::ParseError;
use lightfilter::api::types::{ErrorBody, ErrorDetail, PaymentEntry};
use lightfilter::api::{render, ClientError};
use serde::Serialize;

/// A command's failure: a stable code and a message.
pub struct Failure(pub ErrorDetail);

impl Failure {
    /// A failure with `code` and `message`.
    pub fn new(code: &str, message: String) -> Failure {
        Failure(ErrorDetail {
            code: code.to_string(),
            message,
        })
    }

    /// An `invalid_input` failure.
    pub fn invalid(message: String) -> Failure {
        Failure::new("invalid_input", message)
    }
}

impl From<ClientError> for Failure {
    fn from(err: ClientError) -> Self {
        Failure(err.detail())
    }
}

impl From<ParseError> for Failure {
    fn from(err: ParseError) -> Self {
        Failure::invalid(err.to_string())
    }
}

/// What a command printed and how it ends.
pub struct Reply {
    json: serde_json::Value,
    /// The text printed without `--json`.
    pub human: String,
    success: bool,
    /// Printed on standard error as `warning: …`, with or without `--json`.
    warning: Option<String>,
}

impl Reply {
    /// A successful reply: `value` as JSON, `human` as text.
    pub fn new(value: &impl Serialize, human: String) -> Reply {
        Reply {
            json: serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
            human,
            success: true,
            warning: None,
        }
    }

    /// The reply with `warning` (if any) printed on standard error.
    pub fn with_warning(mut self, warning: Option<String>) -> Reply {
        self.warning = warning;
        self
    }

    /// A payment's reply; a failed payment ends the command with a non-zero exit status.
    pub fn payment(payment: &PaymentEntry) -> Reply {
        let mut reply = Reply::new(payment, render::payment_outcome(payment));
        reply.success = payment.status != "failed";
        reply
    }
}

/// Prints `outcome` (the reply on standard output, a failure's message on standard error, or
/// either as JSON on standard output) and gives the exit status.
pub fn print(json: bool, outcome: Result<Reply, Failure>) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    let code = match outcome {
        Ok(reply) => {
            if let Some(warning) = &reply.warning {
                eprintln!("warning: {warning}");
            }
            if json {
                let text = serde_json::to_string_pretty(&reply.json).unwrap_or_default();
                let _ = writeln!(stdout, "{text}");
            } else {
                let _ = write!(stdout, "{}", reply.human);
            }
            if reply.success {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(Failure(detail)) => {
            if json {
                let body = ErrorBody { error: detail };
                let text = serde_json::to_string_pretty(&body).unwrap_or_default();
                let _ = writeln!(stdout, "{text}");
            } else {
                eprintln!("error: {}", detail.message);
            }
            ExitCode::FAILURE
        }
    };
    let _ = stdout.flush();
    code
}

/// A progress line on standard error (none with `--json`).
pub fn progress(json: bool, line: &str) {
    if !json {
        eprintln!("{line}");
    }
}
