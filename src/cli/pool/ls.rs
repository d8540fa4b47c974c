//! `krunbox pool ls`: the pools, and how many of their VMs are ready.

use clap::Args;
use krunbox::state::{MemberCounts, NamedPool, StateDir};
use serde::Serialize;

use super::super::report;

#[derive(Debug, Args)]
pub struct PoolLsArgs {
    /// Print JSON, one object per pool, in an array.
    #[arg(long)]
    json: bool,
}

/// One pool, as `--json` prints it.
#[derive(Debug, Serialize)]
struct Row<'a> {
    name: &'a str,
    size: usize,
    #[serde(flatten)]
    members: MemberCounts,
    options: &'a [String],
    created_unix: u64,
}

pub fn ls(args: PoolLsArgs) -> i32 {
    let pools = match StateDir::open().and_then(|state| NamedPool::list(&state)) {
        Ok(pools) => pools,
        Err(e) => return report::fail(&e),
    };
    let rows: Vec<Row> = pools
        .iter()
        .map(|pool| Row {
            name: pool.name().as_str(),
            size: pool.spec().size,
            members: pool.counts(),
            options: &pool.spec().options,
            created_unix: pool.spec().created_unix,
        })
        .collect();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialize")
        );
        return 0;
    }
    println!(
        "{:<20} {:>4} {:>5} {:>8} {:>4} OPTIONS",
        "NAME", "SIZE", "READY", "STARTING", "DEAD"
    );
    for r in &rows {
        println!(
            "{:<20} {:>4} {:>5} {:>8} {:>4} {}",
            r.name,
            r.size,
            r.members.ready,
            r.members.starting,
            r.members.dead,
            r.options.join(" ")
        );
    }
    0
}
