//! `krunbox images`: the images in the store, as `docker images` lists
//! them.

use clap::Args;
use krunbox::image::store::ImageSummary;

use crate::cli::report;

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Print only the IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Print JSON: one object per image (id, names, size, created).
    #[arg(long, conflicts_with = "quiet")]
    json: bool,
}

pub fn images(args: ImagesArgs) -> i32 {
    let list = match super::store().and_then(|s| Ok(s.list()?)) {
        Ok(list) => list,
        Err(e) => return report::fail(&e),
    };
    if args.json {
        let rows: Vec<_> = list.iter().map(json_row).collect();
        println!("{}", serde_json::Value::Array(rows));
    } else if args.quiet {
        for image in &list {
            println!("{}", image.id.short());
        }
    } else {
        print_table(&list);
    }
    0
}

fn json_row(image: &ImageSummary) -> serde_json::Value {
    serde_json::json!({
        "id": image.id.to_string(),
        "names": image.names,
        "size": image.size,
        "created": image.created,
    })
}

/// `REPOSITORY TAG IMAGE ID SIZE`, one row per name (an unnamed image:
/// one row of `<none>`).
fn print_table(list: &[ImageSummary]) {
    let mut rows = vec![[
        "REPOSITORY".to_owned(),
        "TAG".to_owned(),
        "IMAGE ID".to_owned(),
        "SIZE".to_owned(),
    ]];
    for image in list {
        let size = format!("{:.1}MB", image.size as f64 / 1e6);
        let names = match image.names.is_empty() {
            true => vec![("<none>".to_owned(), "<none>".to_owned())],
            false => image.names.iter().map(|n| split_name(n)).collect(),
        };
        for (repo, tag) in names {
            rows.push([repo, tag, image.id.short().to_owned(), size.clone()]);
        }
    }
    let widths: Vec<usize> = (0..4)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
}

/// `repo:tag` at its last colon after the last slash (a registry port is
/// not a tag).
fn split_name(name: &str) -> (String, String) {
    let after_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[after_slash..].rfind(':') {
        Some(i) => (
            name[..after_slash + i].to_owned(),
            name[after_slash + i + 1..].to_owned(),
        ),
        None => (name.to_owned(), "<none>".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_at_the_tag_not_the_port() {
        assert_eq!(
            split_name("localhost:5000/team/app:v1"),
            ("localhost:5000/team/app".into(), "v1".into())
        );
        assert_eq!(
            split_name("docker.io/library/alpine:latest"),
            ("docker.io/library/alpine".into(), "latest".into())
        );
    }
}
