//! Errors where the caller reads them: runc's `--log` file, in its
//! `--log-format`, or standard error without one.
//!
//! containerd's shim and conmon pass `--log FILE --log-format json` and,
//! when a command fails, read the last `"level":"error"` line of the file
//! for the message they report. Standard error is not the place then: for
//! `create` it is the container's own stderr.

use std::io::Write;
use std::path::PathBuf;
use std::time::SystemTime;

use liboci_cli::GlobalOpts;
use serde::Serialize;

/// Where errors go.
#[derive(Debug)]
pub(crate) struct Log {
    file: Option<PathBuf>,
    json: bool,
}

/// One JSON line, as runc writes it.
#[derive(Serialize)]
struct Line<'a> {
    level: &'a str,
    msg: &'a str,
    time: String,
}

impl Log {
    pub(crate) fn new(global: &GlobalOpts) -> Self {
        Self {
            file: global.log.clone(),
            json: global.log_format.as_deref() == Some("json"),
        }
    }

    /// Writes `error` with its causes (and stderr as well, when the log
    /// file cannot be written).
    pub(crate) fn error(&self, error: &dyn std::error::Error) {
        let msg = krunbox::error_chain(error);
        let time = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let line = if self.json {
            let line = Line {
                level: "error",
                msg: &msg,
                time,
            };
            serde_json::to_string(&line).unwrap_or_else(|_| msg.clone())
        } else {
            format!("time={time:?} level=error msg={msg:?}")
        };
        let written = self.file.as_ref().is_some_and(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut file| writeln!(file, "{line}"))
                .is_ok()
        });
        if !written {
            eprintln!("krunbox-oci: {msg}");
        }
    }
}
