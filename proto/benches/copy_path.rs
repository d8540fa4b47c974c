//! The copy path without sockets: walk a host tree into a plan, encode its
//! entries and file chunks as frames (the sender), decode them and feed a
//! hardened `TreeReceiver` writing a staged tree (the receiver). Two
//! trees: the provisioning sample's shape (61 small files in 10 skill
//! directories) and one 8 MiB file.

// criterion's macros define undocumented public functions.
#![allow(missing_docs)]

use std::fs;
use std::io::Read;
use std::path::Path;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use krunbox_proto::tree::{CopyPlan, TreeLimits, TreeReceiver};
use krunbox_proto::{stream, Frame, FrameDecoder, FrameType, TreeEntry, CHUNK_SIZE};

/// The sender: every item of `root` as frames, then the end entry.
fn encode_tree(root: &Path) -> BytesMut {
    let plan = CopyPlan::walk(root).unwrap();
    let mut out = BytesMut::new();
    let mut chunk = vec![0u8; CHUNK_SIZE];
    for item in &plan.items {
        let (entry, file) = item.open().unwrap();
        Frame::json(FrameType::Entry, &entry)
            .unwrap()
            .encode(&mut out);
        if let Some(mut file) = file {
            loop {
                let n = file.read(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
                Frame::data(stream::FILE, chunk[..n].to_vec())
                    .unwrap()
                    .encode(&mut out);
            }
            Frame::eof(stream::FILE).encode(&mut out);
        }
    }
    Frame::json(FrameType::Entry, &TreeEntry::End)
        .unwrap()
        .encode(&mut out);
    out
}

/// The receiver: decode every frame and write the tree at `dest`.
fn receive_tree(mut wire: BytesMut, dest: &Path) -> (u64, u64) {
    let mut decoder = FrameDecoder::new();
    let mut rx = TreeReceiver::new(dest, TreeLimits::default());
    while let Some(frame) = decoder.decode(&mut wire).unwrap() {
        match (frame.frame_type, frame.stream) {
            (FrameType::Entry, _) => {
                if rx.entry(&frame.parse_json().unwrap()).unwrap() {
                    break;
                }
            }
            (FrameType::Data, stream::FILE) => rx.data(&frame.payload).unwrap(),
            (FrameType::Eof, stream::FILE) => rx.end_file().unwrap(),
            other => panic!("unexpected frame {other:?}"),
        }
    }
    rx.finish().unwrap()
}

fn skills_tree(root: &Path) {
    fs::write(root.join("prompt.md"), "Read the skills.\n").unwrap();
    for i in 0..10 {
        let skill = root.join(format!("skills/skill-{i:02}"));
        for rel in [
            "SKILL.md",
            "scripts/run.sh",
            "scripts/lib.sh",
            "reference/notes.md",
            "reference/examples.md",
            "templates/report.md",
        ] {
            let path = skill.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, format!("{rel} of skill {i}\n").repeat(8)).unwrap();
        }
    }
}

fn bench_tree(c: &mut Criterion, name: &str, make: fn(&Path), bytes: u64) {
    let src = tempfile::tempdir().unwrap();
    make(src.path());
    let mut group = c.benchmark_group(name);
    if bytes > 0 {
        group.throughput(Throughput::Bytes(bytes));
    }
    group.bench_function("send", |b| b.iter(|| encode_tree(src.path())));
    let wire = encode_tree(src.path());
    let dest_root = tempfile::tempdir().unwrap();
    group.bench_function("receive", |b| {
        b.iter_batched(
            || {
                let dest = dest_root.path().join("tree");
                let _ = fs::remove_dir_all(&dest);
                (wire.clone(), dest)
            },
            |(wire, dest)| receive_tree(wire, &dest),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn copy_path(c: &mut Criterion) {
    bench_tree(c, "copy_path_skills_61_files", skills_tree, 0);
    bench_tree(
        c,
        "copy_path_8mib_file",
        |root| fs::write(root.join("big.bin"), vec![0x3cu8; 8 << 20]).unwrap(),
        8 << 20,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = copy_path
}
criterion_main!(benches);
