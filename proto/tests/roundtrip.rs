//! Encode/decode round trips of frames and messages.

use bytes::BytesMut;
use krunbox_proto::*;
use proptest::prelude::*;

fn frame_type() -> impl Strategy<Value = FrameType> {
    (1u8..=9).prop_map(|b| FrameType::from_u8(b).unwrap())
}

proptest! {
    #[test]
    fn frames_round_trip_in_any_split(
        frames in prop::collection::vec(
            (frame_type(), any::<u32>(), prop::collection::vec(any::<u8>(), 0..2048)),
            1..8,
        ),
        split in 1usize..64,
    ) {
        let frames: Vec<Frame> = frames
            .into_iter()
            .map(|(t, s, p)| Frame::new(t, s, p).unwrap())
            .collect();
        let mut wire = BytesMut::new();
        for f in &frames {
            f.encode(&mut wire);
        }
        let mut dec = FrameDecoder::new();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for chunk in wire.chunks(split) {
            buf.extend_from_slice(chunk);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        prop_assert_eq!(dec.decode_eof(&mut buf).unwrap(), None);
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut dec = FrameDecoder::with_max_payload(256);
        let mut buf = BytesMut::from(&bytes[..]);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(e) if e.is_recoverable() => continue,
                Err(_) => break,
            }
        }
    }

    #[test]
    fn exec_requests_round_trip(
        argv in prop::collection::vec(".*", 1..5),
        env in prop::collection::vec(("[A-Z_]{1,8}", ".*"), 0..4),
        cwd in prop::option::of(".*"),
        uid in prop::option::of(any::<u32>()),
        timeout_ms in prop::option::of(any::<u64>()),
        rows in any::<u16>(),
    ) {
        let req = Request::Exec(ExecRequest {
            argv, env, cwd, uid, gid: uid, stdin: true,
            pty: Some(WinSize { rows, cols: 80 }), timeout_ms, clear_env: false,
            output_window: Some(131072), stdin_window: None,
        });
        let frame = Frame::json(FrameType::Request, &req).unwrap();
        let back: Request = frame.parse_json().unwrap();
        prop_assert_eq!(back, req);
    }
}

#[test]
fn every_message_kind_round_trips() {
    let hello = Hello {
        protocol: VERSION,
        agent_version: "0.1.0".into(),
        pid: 1,
        started_uptime_ns: 3,
        hello_uptime_ns: 4,
    };
    let f = Frame::json(FrameType::Hello, &hello).unwrap();
    assert_eq!(f.parse_json::<Hello>().unwrap(), hello);

    let requests = vec![
        Request::ListProcesses,
        Request::Spawn {
            command: ExecRequest {
                argv: vec!["sleep".into()],
                ..Default::default()
            },
        },
        Request::WaitProcess {
            id: 1,
            timeout_ms: 5,
        },
        Request::KillProcess { id: 1, signal: 9 },
        Request::ReadOutput {
            id: 1,
            stdout_offset: 0,
            stderr_offset: 2,
        },
        Request::RemoveProcess { id: 1 },
        Request::CopyIn { dest: "/a".into() },
        Request::CopyOut { path: "/b".into() },
        Request::Mkdir {
            path: "/c".into(),
            mode: 0o755,
        },
        Request::Stat { path: "/d".into() },
        Request::Provision {
            ops: vec![
                ProvisionOp::Mkdir {
                    path: "/x".into(),
                    mode: 0o700,
                },
                ProvisionOp::WriteFile {
                    path: "/x/p".into(),
                    mode: 0o644,
                    size: 3,
                },
                ProvisionOp::Chmod {
                    path: "/x".into(),
                    mode: 0o755,
                },
                ProvisionOp::Symlink {
                    path: "/y".into(),
                    target: "x".into(),
                },
            ],
        },
        Request::Shutdown { code: 3 },
    ];
    for r in requests {
        let f = Frame::json(FrameType::Request, &r).unwrap();
        assert_eq!(f.parse_json::<Request>().unwrap(), r);
    }
    let status = ExecStatus {
        code: None,
        signal: Some(9),
        timed_out: true,
    };
    let replies = vec![
        Reply::Ok,
        Reply::Started { pid: 5 },
        Reply::Exited(status),
        Reply::Waited { status: None },
        Reply::Output {
            stdout: OutputRange { start: 0, end: 3 },
            stderr: OutputRange { start: 1, end: 1 },
            status: Some(status),
        },
        Reply::Stat(FileStat {
            kind: FileKind::Symlink,
            mode: 0o777,
            size: 1,
            uid: 0,
            gid: 0,
            mtime: 7,
            symlink_target: Some("t".into()),
        }),
        Reply::CopyDone {
            entries: 1,
            bytes: 2,
        },
    ];
    for r in replies {
        let f = Frame::json(FrameType::Reply, &r).unwrap();
        assert_eq!(f.parse_json::<Reply>().unwrap(), r);
    }
    for c in [
        Control::Signal { signal: 15 },
        Control::Resize(WinSize { rows: 1, cols: 2 }),
    ] {
        let f = Frame::json(FrameType::Control, &c).unwrap();
        assert_eq!(f.parse_json::<Control>().unwrap(), c);
    }
    for e in [
        TreeEntry::Dir {
            path: "".into(),
            mode: 0o755,
        },
        TreeEntry::File {
            path: "a".into(),
            mode: 0o600,
            size: 9,
        },
        TreeEntry::Symlink {
            path: "l".into(),
            target: "../x".into(),
        },
        TreeEntry::Fifo {
            path: "p".into(),
            mode: 0o640,
        },
        TreeEntry::HardLink {
            path: b"b/\xff".to_vec().into(),
            target: "a".into(),
        },
        TreeEntry::Skipped {
            path: "s".into(),
            reason: krunbox_proto::SkipReason::CharDevice,
        },
        TreeEntry::End,
    ] {
        let f = Frame::json(FrameType::Entry, &e).unwrap();
        assert_eq!(f.parse_json::<TreeEntry>().unwrap(), e);
    }
}

#[test]
fn wrong_json_is_a_payload_error() {
    let f = Frame::new(
        FrameType::Reply,
        stream::CONTROL,
        &b"{\"reply\":\"nope\"}"[..],
    )
    .unwrap();
    let err = f.parse_json::<Reply>().unwrap_err();
    assert_eq!(err.frame_type, FrameType::Reply);
}
