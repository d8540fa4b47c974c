//! The monitor's control socket: `start` and `kill` ask the monitor, which
//! holds the container's process, over `ctl.sock` in the container's
//! directory. One JSON line each way per connection, at most
//! [`MAX_LINE`] bytes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// The longest line either side reads.
const MAX_LINE: u64 = 4096;

/// What a command asks the monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub(crate) enum Request {
    /// Run the container's process; answered once it started.
    Start,
    /// Send `signal` to the container's process (before it started: end
    /// the container).
    Kill { signal: i32 },
}

/// The monitor's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Reply {
    Ok,
    Error(String),
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CtlError {
    /// No monitor listens (it has exited).
    #[error("cannot reach the monitor at {}", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The connection failed midway.
    #[error("the connection to the monitor failed")]
    Io(#[source] std::io::Error),
    /// A line that is not a request or reply.
    #[error("the monitor's line is not a reply: {0:?}")]
    Garbled(String),
    /// The monitor answered with an error.
    #[error("{0}")]
    Refused(String),
}

/// Sends `request` to the monitor at `path` and waits for its reply.
pub(crate) async fn call(path: &Path, request: Request) -> Result<(), CtlError> {
    let mut stream = UnixStream::connect(path)
        .await
        .map_err(|source| CtlError::Connect {
            path: path.to_owned(),
            source,
        })?;
    write_line(&mut stream, &request).await?;
    let line = read_line(&mut stream).await?;
    match serde_json::from_str(&line) {
        Ok(Reply::Ok) => Ok(()),
        Ok(Reply::Error(why)) => Err(CtlError::Refused(why)),
        Err(_) => Err(CtlError::Garbled(line)),
    }
}

/// The request on a connection the monitor accepted.
pub(crate) async fn read_request(stream: &mut UnixStream) -> Result<Request, CtlError> {
    let line = read_line(stream).await?;
    serde_json::from_str(&line).map_err(|_| CtlError::Garbled(line))
}

/// Answers a request.
pub(crate) async fn write_reply(stream: &mut UnixStream, reply: &Reply) -> Result<(), CtlError> {
    write_line(stream, reply).await
}

async fn write_line<T: Serialize>(stream: &mut UnixStream, message: &T) -> Result<(), CtlError> {
    let mut line = serde_json::to_vec(message).expect("plain enums serialize");
    line.push(b'\n');
    stream.write_all(&line).await.map_err(CtlError::Io)
}

async fn read_line(stream: &mut UnixStream) -> Result<String, CtlError> {
    let mut line = String::new();
    BufReader::new(stream.take(MAX_LINE))
        .read_line(&mut line)
        .await
        .map_err(CtlError::Io)?;
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_tagged_json() {
        let kill = serde_json::to_string(&Request::Kill { signal: 9 }).unwrap();
        assert_eq!(kill, r#"{"op":"kill","signal":9}"#);
        let start: Request = serde_json::from_str(r#"{"op":"start"}"#).unwrap();
        assert_eq!(start, Request::Start);
        let reply = serde_json::to_string(&Reply::Error("no".into())).unwrap();
        assert_eq!(reply, r#"{"error":"no"}"#);
    }

    #[tokio::test]
    async fn a_monitor_that_is_gone_is_a_connect_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = call(&dir.path().join("ctl.sock"), Request::Start)
            .await
            .unwrap_err();
        assert!(matches!(err, CtlError::Connect { .. }), "{err:?}");
    }
}
