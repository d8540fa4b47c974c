//! The sample agent workspace that `demo` and `bench` provision: a prompt
//! file and 10 skill directories of small files, 61 files in all, as a
//! host tree (the shell-out baseline copies its files one by one).

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use krunbox::client::{ClientError, Provision};
use tempfile::TempDir;

/// Skill directories in the sample.
pub const SKILLS: usize = 10;

/// The prompt's file name.
pub const PROMPT: &str = "prompt.md";

/// The skills directory's name.
pub const SKILLS_DIR: &str = "skills";

/// A skill's files: path inside the skill, mode.
const SKILL_FILES: [(&str, u32); 6] = [
    ("SKILL.md", 0o644),
    ("scripts/run.sh", 0o755),
    ("scripts/lib.sh", 0o644),
    ("reference/notes.md", 0o644),
    ("reference/examples.md", 0o644),
    ("templates/report.md", 0o644),
];

/// The sample tree in a temporary host directory (removed on drop).
#[derive(Debug)]
pub struct Sample {
    dir: TempDir,
}

impl Sample {
    /// Writes the sample under a new temporary directory.
    pub fn create() -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("krunbox-sample-")
            .tempdir()?;
        fs::write(dir.path().join(PROMPT), prompt_text())?;
        for i in 0..SKILLS {
            let skill = dir.path().join(SKILLS_DIR).join(skill_name(i));
            for (rel, mode) in SKILL_FILES {
                let path = skill.join(rel);
                fs::create_dir_all(path.parent().expect("a skill file has a parent"))?;
                fs::write(&path, skill_text(i, rel))?;
                fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
            }
        }
        Ok(Self { dir })
    }

    /// The host directory holding `prompt.md` and `skills/`.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// One request that places the prompt at `<dest>/prompt.md` and the
    /// skills under `<dest>/skills`.
    pub fn plan(&self, dest: &str) -> Result<Provision, ClientError> {
        let mut plan = Provision::new();
        plan.write_file(format!("{dest}/{PROMPT}"), prompt_text(), 0o644);
        plan.copy_tree(
            self.root().join(SKILLS_DIR),
            &format!("{dest}/{SKILLS_DIR}"),
        )?;
        Ok(plan)
    }

    /// Per skill, the directories holding its files, relative to
    /// [`Sample::root`] (`mkdir -p` of them makes the skill's tree).
    pub fn skill_dirs(&self) -> Vec<Vec<String>> {
        (0..SKILLS)
            .map(|i| {
                let mut dirs: Vec<String> = Vec::new();
                for (rel, _) in SKILL_FILES {
                    let dir = match rel.rsplit_once('/') {
                        Some((sub, _)) => format!("{SKILLS_DIR}/{}/{sub}", skill_name(i)),
                        None => format!("{SKILLS_DIR}/{}", skill_name(i)),
                    };
                    if !dirs.contains(&dir) {
                        dirs.push(dir);
                    }
                }
                dirs
            })
            .collect()
    }

    /// Every file, relative to [`Sample::root`], prompt first.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = vec![PathBuf::from(PROMPT)];
        for i in 0..SKILLS {
            for (rel, _) in SKILL_FILES {
                files.push(Path::new(SKILLS_DIR).join(skill_name(i)).join(rel));
            }
        }
        files
    }
}

fn skill_name(i: usize) -> String {
    format!("skill-{i:02}")
}

fn prompt_text() -> String {
    "You are a careful agent working in a krunbox sandbox.\n\
     Read every skill under skills/, then run skill-07's scripts/run.sh.\n"
        .to_owned()
}

fn skill_text(i: usize, rel: &str) -> String {
    match rel {
        "SKILL.md" => format!("# Skill {i}\n\nWhen asked for skill {i}, run scripts/run.sh.\n"),
        "scripts/run.sh" => {
            format!("#!/bin/sh\n. \"$(dirname \"$0\")/lib.sh\"\nsay \"skill {i} ok\"\n")
        }
        "scripts/lib.sh" => "say() { echo \"$@\"; }\n".to_owned(),
        other => format!(
            "{other} of skill {i}.\n{}",
            "Lorem ipsum dolor sit amet. ".repeat(8)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_has_a_prompt_and_sixty_skill_files() {
        let sample = Sample::create().unwrap();
        let files = sample.files();
        assert_eq!(files.len(), 1 + SKILLS * SKILL_FILES.len());
        for file in &files {
            assert!(sample.root().join(file).is_file(), "{file:?}");
        }
        let dirs = sample.skill_dirs();
        assert_eq!(dirs.len(), SKILLS);
        assert_eq!(
            dirs[1],
            [
                "skills/skill-01",
                "skills/skill-01/scripts",
                "skills/skill-01/reference",
                "skills/skill-01/templates"
            ]
        );
        for file in &files[1..] {
            let parent = file.parent().unwrap().to_str().unwrap();
            assert!(dirs.iter().flatten().any(|d| d == parent), "{file:?}");
        }
        let plan = sample.plan("/work").unwrap();
        assert!(plan.len() > files.len());
    }
}
