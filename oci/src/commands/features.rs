//! `features`: what this runtime implements, in the runtime-spec's
//! features JSON.

use serde_json::json;

use crate::error::Error;
use crate::spec::{CPUS_ANNOTATION, MEMORY_ANNOTATION};

pub(super) fn run() -> Result<(), Error> {
    let features = json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": [],
        "mountOptions": ["bind", "rbind", "ro", "rw"],
        "linux": {
            "namespaces": [],
            "capabilities": [],
            "cgroup": {"v1": false, "v2": false, "systemd": false, "systemdUser": false},
            "seccomp": {"enabled": false},
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false}
        },
        "annotations": {
            "io.krunbox.isolation": "microvm (libkrun)",
            CPUS_ANNOTATION: "vCPUs of the container's VM",
            MEMORY_ANNOTATION: "memory of the container's VM, in MiB"
        }
    });
    println!("{}", serde_json::to_string_pretty(&features).expect("json"));
    Ok(())
}
