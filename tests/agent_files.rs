//! File copies, mkdir, stat and provisioning over the agent protocol, with
//! the agent as a host process ("guest" paths are in a temporary dir).

mod agent_support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use agent_support::{listing, TestAgent};
use krunbox::client::{ClientError, FileKind, Provision};
use krunbox_proto::{stream, Frame, FrameType, Request, TreeEntry};

fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("src/nested/deeper")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::write(root.join("README"), "read me\n").unwrap();
    fs::write(root.join("src/main.rs"), "fn main() {}\n").unwrap();
    fs::write(root.join("src/nested/deeper/data.bin"), [0u8, 1, 2, 255]).unwrap();
    fs::write(root.join("run.sh"), "#!/bin/sh\necho run\n").unwrap();
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::set_permissions(root.join("README"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(root.join("src/nested"), fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink("src/main.rs", root.join("link")).unwrap();
    std::os::unix::fs::symlink("/outside/abs", root.join("abs-link")).unwrap();
}

#[tokio::test]
async fn copy_a_file_in_and_out() {
    let agent = TestAgent::start().await;
    let src = agent.path("host.txt");
    fs::write(&src, "hello guest").unwrap();
    fs::set_permissions(&src, fs::Permissions::from_mode(0o640)).unwrap();
    let guest = agent.guest("guest/dir/file.txt");
    let stats = agent.client.copy_in(&src, &guest).await.unwrap();
    assert_eq!((stats.entries, stats.bytes), (1, 11));
    assert_eq!(fs::read_to_string(&guest).unwrap(), "hello guest");

    let stat = agent.client.stat(&guest).await.unwrap();
    assert_eq!(stat.kind, FileKind::File);
    assert_eq!(stat.mode, 0o640);
    assert_eq!(stat.size, 11);

    let back = agent.path("back.txt");
    agent.client.copy_out(&guest, &back).await.unwrap();
    assert_eq!(fs::read_to_string(&back).unwrap(), "hello guest");
    assert_eq!(
        fs::metadata(&back).unwrap().permissions().mode() & 0o7777,
        0o640
    );
}

#[tokio::test]
async fn copy_a_tree_in_and_out() {
    let agent = TestAgent::start().await;
    let src = agent.path("tree");
    make_tree(&src);
    let guest = agent.guest("guest-tree");
    let stats = agent.client.copy_in(&src, &guest).await.unwrap();
    assert_eq!(stats.entries, listing(&src).len() as u64);
    assert_eq!(listing(&src), listing(Path::new(&guest)));

    let back = agent.path("back-tree");
    agent.client.copy_out(&guest, &back).await.unwrap();
    assert_eq!(listing(&src), listing(&back));
    let link = agent.client.stat(&format!("{guest}/link")).await.unwrap();
    assert_eq!(link.kind, FileKind::Symlink);
    assert_eq!(link.symlink_target.as_deref(), Some("src/main.rs"));
    // No staging names left behind on either side.
    let names: Vec<_> = fs::read_dir(agent.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.contains("krunbox-")), "{names:?}");
}

#[tokio::test]
async fn mkdir_p_and_stat_errors() {
    let agent = TestAgent::start().await;
    let dir = agent.guest("a/b/c");
    agent.client.mkdir_p(&dir, 0o750).await.unwrap();
    agent.client.mkdir_p(&dir, 0o750).await.unwrap();
    let stat = agent.client.stat(&dir).await.unwrap();
    assert_eq!(stat.kind, FileKind::Dir);
    assert_eq!(stat.mode, 0o750);

    let err = agent
        .client
        .stat(&agent.guest("missing"))
        .await
        .unwrap_err();
    assert_eq!(err.io_kind(), std::io::ErrorKind::NotFound);
    let err = agent
        .client
        .copy_out(&agent.guest("missing"), &agent.path("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Agent { .. }), "{err:?}");
    assert_eq!(err.io_kind(), std::io::ErrorKind::NotFound);
    assert!(!agent.path("x").exists());
}

#[tokio::test]
async fn provision_a_prompt_and_ten_skills_in_one_request() {
    let agent = TestAgent::start().await;
    let skills_src = agent.path("skills-src");
    for i in 0..10 {
        let skill = skills_src.join(format!("skill-{i}"));
        fs::create_dir_all(skill.join("scripts")).unwrap();
        fs::write(skill.join("SKILL.md"), format!("# skill {i}\n")).unwrap();
        fs::write(skill.join("scripts/run.sh"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(
            skill.join("scripts/run.sh"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    let home = agent.guest("home");
    let mut plan = Provision::new();
    plan.mkdir(format!("{home}/work"), 0o700)
        .write_file(format!("{home}/prompt.md"), "do the thing\n", 0o644)
        .copy_tree(&skills_src, &format!("{home}/skills"))
        .unwrap()
        .symlink(format!("{home}/latest"), "skills/skill-9")
        .chmod(format!("{home}/work"), 0o755);
    agent.client.provision(&plan).await.unwrap();

    assert_eq!(
        fs::read_to_string(format!("{home}/prompt.md")).unwrap(),
        "do the thing\n"
    );
    assert_eq!(
        listing(&skills_src),
        listing(Path::new(&format!("{home}/skills")))
    );
    assert_eq!(
        fs::read_link(format!("{home}/latest")).unwrap().to_str(),
        Some("skills/skill-9")
    );
    let work = fs::metadata(format!("{home}/work")).unwrap();
    assert_eq!(work.permissions().mode() & 0o7777, 0o755);
    let out = agent
        .client
        .exec(
            &krunbox::client::GuestCommand::new("cat")
                .arg(format!("{home}/skills/skill-3/SKILL.md")),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "# skill 3\n");
}

#[tokio::test]
async fn write_file_is_atomic_and_replaces() {
    let agent = TestAgent::start().await;
    let path = agent.guest("w/file");
    agent.client.write_file(&path, "one", 0o600).await.unwrap();
    agent.client.write_file(&path, "two", 0o644).await.unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "two");
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o644
    );
}

/// A copy-in that breaks off in the middle of a file leaves neither the
/// destination nor a temporary file in the guest.
#[tokio::test]
async fn an_interrupted_copy_in_leaves_no_partial_file() {
    let agent = TestAgent::start().await;
    let dest = agent.path("partial/target.bin");
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let mut sock = std::os::unix::net::UnixStream::connect(&agent.ops_path).unwrap();
    let request = Request::CopyIn {
        dest: dest.to_str().unwrap().into(),
    };
    let entry = TreeEntry::File {
        path: "".into(),
        mode: 0o644,
        size: 1 << 20,
    };
    let mut wire = Vec::new();
    wire.extend_from_slice(
        &Frame::json(FrameType::Request, &request)
            .unwrap()
            .to_bytes(),
    );
    wire.extend_from_slice(&Frame::json(FrameType::Entry, &entry).unwrap().to_bytes());
    wire.extend_from_slice(
        &Frame::data(stream::FILE, vec![7u8; 4096])
            .unwrap()
            .to_bytes(),
    );
    sock.write_all(&wire).unwrap();
    // Wait until the agent is mid-copy (its staging file exists), so the
    // check below is not passed before the agent has even started.
    let dir = dest.parent().unwrap();
    for _ in 0..250 {
        if fs::read_dir(dir).unwrap().count() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(fs::read_dir(dir).unwrap().count(), 1, "staging file");
    assert!(!dest.exists(), "nothing at the destination before the end");
    drop(sock);
    // The agent notices the close and cleans up; poll briefly.
    for _ in 0..250 {
        if fs::read_dir(dir).unwrap().count() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let left: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // A provision whose file is shorter than declared fails the same way.
    let target = agent.path("partial/provisioned");
    let mut sock = std::os::unix::net::UnixStream::connect(&agent.ops_path).unwrap();
    let request = Request::Provision {
        ops: vec![krunbox_proto::ProvisionOp::WriteFile {
            path: target.to_str().unwrap().into(),
            mode: 0o644,
            size: 10,
        }],
    };
    let mut wire = Vec::new();
    wire.extend_from_slice(
        &Frame::json(FrameType::Request, &request)
            .unwrap()
            .to_bytes(),
    );
    wire.extend_from_slice(&Frame::data(stream::FILE, &b"short"[..]).unwrap().to_bytes());
    wire.extend_from_slice(&Frame::eof(stream::FILE).to_bytes());
    sock.write_all(&wire).unwrap();
    let mut reply = Vec::new();
    std::io::Read::read_to_end(&mut sock, &mut reply).unwrap();
    let mut buf = bytes::BytesMut::from(&reply[..]);
    let frame = krunbox_proto::FrameDecoder::new()
        .decode(&mut buf)
        .unwrap()
        .unwrap();
    assert_eq!(frame.frame_type, FrameType::Error);
    let left: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A copy-out to an existing file keeps the old contents when the guest
/// answers with an error (see agent_hostile.rs for a guest that breaks off
/// in the middle of a file).
#[tokio::test]
async fn a_failed_copy_out_keeps_the_old_file() {
    let agent = TestAgent::start().await;
    let dest = agent.path("keep.txt");
    fs::write(&dest, "old").unwrap();
    let guest_dir = agent.path("unreadable-tree");
    fs::create_dir_all(guest_dir.join("sub")).unwrap();
    fs::write(guest_dir.join("sub/f"), "x").unwrap();
    // A path below a regular file: the agent fails with ENOTDIR.
    let err = agent
        .client
        .copy_out(&format!("{}/sub/f/nope", guest_dir.display()), &dest)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Agent { .. }), "{err:?}");
    assert_eq!(fs::read_to_string(&dest).unwrap(), "old");
}
