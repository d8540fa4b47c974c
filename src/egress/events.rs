//! The record of every egress attempt: where it went, whether the policy
//! let it, and how many bytes crossed each way. One JSON object per line
//! in a VM's egress log (`krunbox logs --egress NAME --json` prints them),
//! and a stream for a library caller.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::policy::{Decision, Destination};

/// How the guest reached out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// An HTTP proxy tunnel (`CONNECT`).
    Connect,
    /// A plain HTTP request through the proxy.
    Http,
    /// A TCP connection to an address, without the proxy.
    Tcp,
    /// A DNS question.
    Dns,
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Via::Connect => "connect",
            Via::Http => "http",
            Via::Tcp => "tcp",
            Via::Dns => "dns",
        })
    }
}

/// One attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressEvent {
    /// When it was decided, in milliseconds since the epoch.
    pub at_ms: u64,
    /// How the guest reached out.
    pub via: Via,
    /// The host name the guest gave, if any.
    pub name: Option<String>,
    /// The address reached (or that the name resolved to), if any.
    pub addr: Option<IpAddr>,
    /// The port.
    pub port: u16,
    /// Whether the policy allowed it.
    pub allowed: bool,
    /// The rule that allowed it, or why it was denied.
    pub reason: String,
    /// Bytes from the guest to the destination (0 until it closes).
    pub bytes_out: u64,
    /// Bytes from the destination to the guest.
    pub bytes_in: u64,
}

impl EgressEvent {
    /// The event for `dest` decided as `decision`, now, no bytes yet.
    pub fn decided(via: Via, dest: &Destination, decision: &Decision) -> Self {
        let (allowed, reason) = match decision {
            Decision::Allowed(rule) => (true, format!("allowed by {rule}")),
            Decision::Denied(why) => (false, format!("denied: {why}")),
        };
        Self {
            at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            via,
            name: dest.name.clone(),
            addr: dest.addr,
            port: dest.port,
            allowed,
            reason,
            bytes_out: 0,
            bytes_in: 0,
        }
    }

    /// The event for a connection refused before it named a destination
    /// (a malformed or lying request head), now.
    pub fn refused(via: Via, why: &str) -> Self {
        let nowhere = Destination {
            name: None,
            addr: None,
            port: 0,
        };
        let mut event = Self::decided(
            via,
            &nowhere,
            &Decision::Denied(super::policy::Denial::NoRule),
        );
        event.reason = format!("refused: {why}");
        event
    }

    /// One line of the egress log.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("events serialize");
        line.push('\n');
        line
    }

    /// For people: `ALLOW connect pypi.org (151.101.0.223):443 out 517 in 6044 — allowed by pypi.org:443`.
    pub fn describe(&self) -> String {
        let target = match (&self.name, self.addr) {
            (Some(name), Some(addr)) => format!("{name} ({addr})"),
            (Some(name), None) => name.clone(),
            (None, Some(addr)) => addr.to_string(),
            (None, None) => "?".to_owned(),
        };
        format!(
            "{} {} {target}:{} out {} in {} — {}",
            if self.allowed { "ALLOW" } else { "DENY " },
            self.via,
            self.port,
            self.bytes_out,
            self.bytes_in,
            self.reason
        )
    }
}

/// Reads an egress log: every complete line (a line still being written
/// is left for the next read). A line that is not an event is an error.
pub fn read_log(path: &std::path::Path) -> std::io::Result<Vec<EgressEvent>> {
    EventTail::new(path).poll()
}

/// Follows an egress log as it grows: each event once, in order (the
/// library's stream of a running VM's attempts; see `Vm::egress_tail`).
#[derive(Debug)]
pub struct EventTail {
    path: std::path::PathBuf,
    offset: u64,
    pending: std::collections::VecDeque<EgressEvent>,
}

impl EventTail {
    /// How often [`EventTail::next`] looks for new lines.
    pub const POLL: std::time::Duration = std::time::Duration::from_millis(100);

    /// Follows `path` from its start (a file not there yet is empty).
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        Self {
            path: path.into(),
            offset: 0,
            pending: Default::default(),
        }
    }

    /// The events whose lines were completed since the last call.
    pub fn poll(&mut self) -> std::io::Result<Vec<EgressEvent>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        file.seek(SeekFrom::Start(self.offset))?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        let complete = text.rfind('\n').map_or(0, |end| end + 1);
        let events = text[..complete]
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.offset += complete as u64;
        Ok(events)
    }

    /// The next event, waiting for it (checking every [`Self::POLL`]).
    /// It waits for ever once the VM is gone: race it with the VM's end.
    pub async fn next(&mut self) -> std::io::Result<EgressEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            let new = self.poll()?;
            self.pending.extend(new);
            if self.pending.is_empty() {
                tokio::time::sleep(Self::POLL).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::policy::{Policy, Rule};

    #[test]
    fn events_are_json_lines_and_say_why() {
        let rule: Rule = "pypi.org:443".parse().unwrap();
        let policy = Policy::new([rule]);
        let dest = Destination {
            name: Some("pypi.org".into()),
            addr: Some("151.101.0.223".parse().unwrap()),
            port: 443,
        };
        let mut event = EgressEvent::decided(Via::Connect, &dest, &policy.decide(&dest));
        event.bytes_out = 517;
        let line = event.to_line();
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
        assert_eq!(serde_json::from_str::<EgressEvent>(&line).unwrap(), event);
        assert!(line.contains(r#""via":"connect""#), "{line}");
        assert_eq!(
            event.describe(),
            "ALLOW connect pypi.org (151.101.0.223):443 out 517 in 0 — allowed by pypi.org:443"
        );
        let denied = Destination {
            name: None,
            addr: Some("169.254.169.254".parse().unwrap()),
            port: 80,
        };
        let event = EgressEvent::decided(Via::Tcp, &denied, &policy.decide(&denied));
        assert_eq!(
            event.describe(),
            "DENY  tcp 169.254.169.254:80 out 0 in 0 — denied: no rule allows it"
        );
    }

    #[tokio::test]
    async fn a_tail_sees_each_completed_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("egress.log");
        let mut tail = EventTail::new(&path);
        assert!(tail.poll().unwrap().is_empty(), "no file yet");
        let event = |port| {
            let mut e = EgressEvent::refused(Via::Tcp, "test");
            e.port = port;
            e
        };
        let first = event(1).to_line() + &event(2).to_line();
        std::fs::write(&path, &first).unwrap();
        assert_eq!(tail.next().await.unwrap().port, 1);
        let half = event(3).to_line();
        let (head, rest) = half.split_at(10);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut file, head.as_bytes()).unwrap();
        assert_eq!(tail.next().await.unwrap().port, 2);
        assert!(
            tail.poll().unwrap().is_empty(),
            "a line being written waits"
        );
        std::io::Write::write_all(&mut file, rest.as_bytes()).unwrap();
        assert_eq!(tail.next().await.unwrap().port, 3);
        assert_eq!(read_log(&path).unwrap().len(), 3);
    }
}
