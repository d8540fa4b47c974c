//! Timings as JSON, for `run --timings=json` and `demo --json`: every
//! duration in milliseconds (a float), a phase not reached as `null`.

use std::time::Duration;

use krunbox::vm::{BootPhases, BootTimeline};
use serde_json::{json, Value};

/// Milliseconds, as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A boot's phases in host time, as JSON: each phase's ms by name, the
/// total and the guest clock's error.
pub fn phases(p: &BootPhases) -> Value {
    let mut map = serde_json::Map::new();
    for (name, took) in p.named() {
        map.insert(format!("{name}_ms"), json!(ms(took)));
    }
    map.insert("before_vcpu_ms".into(), json!(p.before_vcpu.map(ms)));
    map.insert("total_ms".into(), json!(ms(p.total)));
    map.insert("error_ms".into(), json!(ms(p.error)));
    Value::Object(map)
}

/// `BootTimeline`'s phases, by the names its text form uses.
pub fn timeline(t: &BootTimeline) -> Value {
    let ms = |d: Option<Duration>| d.map(ms);
    json!({
        "configured_ms": ms(t.configured),
        "krun_start_enter_ms": ms(t.entered),
        "first_vcpu_ms": ms(t.vcpu_started),
        "agent_started_uptime_ms": ms(t.agent_started_uptime),
        "agent_hello_uptime_ms": ms(t.agent_hello_uptime),
        "ready_ms": ms(t.ready),
        "first_exec_ms": ms(t.first_exec),
    })
}
