//! `krunbox doctor`: exit 0 when VMs can boot on this host, 125 when they
//! cannot, and `--json` says the same as one object a program can read.
//! Whatever this host can do, the two forms agree.

use std::process::{Command, Output};

fn doctor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_krunbox"))
        .arg("doctor")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn json_and_exit_code_agree_with_the_text() {
    let json = doctor(&["--json"]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json printed no JSON ({e}): {:?}",
            String::from_utf8_lossy(&json.stdout)
        )
    });
    let can_boot = report["can_boot"].as_bool().expect("can_boot is a bool");
    let checks = report["checks"].as_array().expect("checks is an array");
    let names: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(&names[..3], ["libkrun", "libkrunfw", "kvm"], "{report}");
    for check in checks {
        assert!(
            check["ok"].is_boolean() && check["what"].is_string(),
            "{check}"
        );
        if check["ok"] == false && check["name"] != "lab" {
            assert!(!can_boot, "a failed check, yet can_boot: {report}");
        }
    }
    // What the kernel offers to confine runners: reported, never failing.
    let confinement = checks
        .iter()
        .find(|c| c["name"] == "confinement")
        .unwrap_or_else(|| panic!("no confinement check: {report}"));
    assert!(
        confinement["ok"] == true
            && confinement["what"]
                .as_str()
                .is_some_and(|w| w.starts_with("runner confinement: ")),
        "{confinement}"
    );
    let want = if can_boot { 0 } else { 125 };
    assert_eq!(json.status.code(), Some(want), "{report}");

    let text = doctor(&[]);
    assert_eq!(text.status.code(), Some(want));
    let text = String::from_utf8_lossy(&text.stdout);
    for check in checks {
        let what = check["what"].as_str().unwrap();
        assert!(
            text.contains(what),
            "{what:?} not in the text report:\n{text}"
        );
    }
}
