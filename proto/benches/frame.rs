//! Frame encode and decode: a JSON control frame (an exec request) and a
//! full 64 KiB data chunk, one at a time and as a stream of frames.

// criterion's macros define undocumented public functions.
#![allow(missing_docs)]

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use krunbox_proto::{stream, ExecRequest, Frame, FrameDecoder, FrameType, Request, CHUNK_SIZE};
use std::hint::black_box;

fn exec_request() -> Request {
    Request::Exec(ExecRequest {
        argv: vec!["sh".into(), "-c".into(), "echo hello; exit 3".into()],
        env: vec![("GREETING".into(), "hello".into())],
        cwd: Some("/work".into()),
        ..ExecRequest::default()
    })
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    let request = exec_request();
    group.bench_function("json_exec_request", |b| {
        b.iter(|| {
            let frame = Frame::json(FrameType::Request, black_box(&request)).unwrap();
            black_box(frame.to_bytes())
        })
    });
    let chunk = vec![0xa5u8; CHUNK_SIZE];
    group.throughput(Throughput::Bytes(CHUNK_SIZE as u64));
    group.bench_function("data_64k", |b| {
        let mut out = BytesMut::with_capacity(2 * CHUNK_SIZE);
        b.iter(|| {
            out.clear();
            Frame::data(stream::FILE, black_box(chunk.clone()))
                .unwrap()
                .encode(&mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    let control = Frame::json(FrameType::Request, &exec_request())
        .unwrap()
        .to_bytes();
    group.bench_function("json_exec_request", |b| {
        b.iter_batched(
            || BytesMut::from(&control[..]),
            |mut buf| {
                let frame = FrameDecoder::new().decode(&mut buf).unwrap().unwrap();
                black_box(frame.parse_json::<Request>().unwrap())
            },
            BatchSize::SmallInput,
        )
    });
    // 1 MiB as 16 data frames in one buffer, as a socket read delivers them.
    let mut stream_bytes = BytesMut::new();
    for _ in 0..16 {
        Frame::data(stream::FILE, vec![0x5au8; CHUNK_SIZE])
            .unwrap()
            .encode(&mut stream_bytes);
    }
    group.throughput(Throughput::Bytes(16 * CHUNK_SIZE as u64));
    group.bench_function("data_1mib_stream", |b| {
        b.iter_batched(
            || stream_bytes.clone(),
            |mut buf| {
                let mut decoder = FrameDecoder::new();
                let mut total = 0;
                while let Some(frame) = decoder.decode(&mut buf).unwrap() {
                    total += frame.payload.len();
                }
                assert_eq!(total, 16 * CHUNK_SIZE);
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
