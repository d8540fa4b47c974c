//! Finding the shared libraries an executable needs, with `ldd`.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::LabError;

/// One shared library to put into the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Library {
    /// Where the dynamic loader looks for it in the lab (the path `ldd`
    /// names, e.g. `/lib64/ld-linux-x86-64.so.2`).
    pub(crate) lab_path: String,
    /// The host file to copy there (may be a symlink; callers resolve it).
    pub(crate) host_path: PathBuf,
}

/// What one line of `ldd` output says.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Library(Library),
    NotFound(String),
    /// vDSO, "statically linked", blank lines.
    Nothing,
}

/// Runs `ldd` on `binary` and returns the libraries it needs.
///
/// Static (and static-pie) executables need none.
pub(crate) fn libraries(binary: &Path) -> Result<Vec<Library>, LabError> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|source| LabError::Ldd {
            path: binary.to_owned(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if is_static(&stdout) || is_static(&stderr) {
        return Ok(Vec::new());
    }
    if !output.status.success() {
        return Err(LabError::Ldd {
            path: binary.to_owned(),
            source: io::Error::other(format!("ldd {}: {}", output.status, stderr.trim())),
        });
    }
    parse(&stdout).map_err(|library| LabError::LibraryNotFound {
        binary: binary.to_owned(),
        library,
    })
}

fn is_static(text: &str) -> bool {
    text.contains("statically linked") || text.contains("not a dynamic executable")
}

/// Parses `ldd` output; `Err` names the first library that was not found.
fn parse(output: &str) -> Result<Vec<Library>, String> {
    let mut libraries = Vec::new();
    for line in output.lines() {
        match parse_line(line) {
            Line::Library(library) => libraries.push(library),
            Line::NotFound(soname) => return Err(soname),
            Line::Nothing => {}
        }
    }
    Ok(libraries)
}

fn parse_line(line: &str) -> Line {
    // Drop the load address: "… (0x00007f…)".
    let line = match line.trim().rsplit_once(" (0x") {
        Some((before, _)) => before.trim(),
        None => line.trim(),
    };
    match line.split_once(" => ") {
        Some((name, "not found")) => Line::NotFound(name.trim().to_owned()),
        // "/lib64/ld-linux-x86-64.so.2 => /usr/lib64/ld-linux-x86-64.so.2":
        // the left side is what the binary asks for (its PT_INTERP).
        Some((name, path)) if name.starts_with('/') => Line::Library(Library {
            lab_path: name.trim().to_owned(),
            host_path: PathBuf::from(path.trim()),
        }),
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6"
        Some((_, path)) if path.starts_with('/') => Line::Library(Library {
            lab_path: path.trim().to_owned(),
            host_path: PathBuf::from(path.trim()),
        }),
        Some(_) => Line::Nothing,
        // "/lib64/ld-linux-x86-64.so.2"
        None if line.starts_with('/') => Line::Library(Library {
            lab_path: line.to_owned(),
            host_path: PathBuf::from(line),
        }),
        // "linux-vdso.so.1", "statically linked", ""
        None => Line::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib(lab: &str, host: &str) -> Library {
        Library {
            lab_path: lab.into(),
            host_path: host.into(),
        }
    }

    #[test]
    fn parses_a_typical_glibc_binary() {
        let out = "\tlinux-vdso.so.1 (0x00007ffc2b5f2000)\n\
                   \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f1)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f3)\n";
        assert_eq!(
            parse(out).unwrap(),
            vec![
                lib(
                    "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                    "/lib/x86_64-linux-gnu/libgcc_s.so.1"
                ),
                lib(
                    "/lib/x86_64-linux-gnu/libc.so.6",
                    "/lib/x86_64-linux-gnu/libc.so.6"
                ),
                lib("/lib64/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }

    #[test]
    fn interpreter_with_arrow_keeps_the_requested_path() {
        let out = "\t/lib64/ld-linux-x86-64.so.2 => /usr/lib64/ld-linux-x86-64.so.2 (0x1)\n";
        assert_eq!(
            parse(out).unwrap(),
            vec![lib(
                "/lib64/ld-linux-x86-64.so.2",
                "/usr/lib64/ld-linux-x86-64.so.2"
            )]
        );
    }

    #[test]
    fn missing_library_is_reported() {
        let out = "\tlibkrun.so.1 => not found\n\tlibc.so.6 => /lib/libc.so.6 (0x1)\n";
        assert_eq!(parse(out).unwrap_err(), "libkrun.so.1");
    }

    #[test]
    fn static_binaries_need_nothing() {
        assert!(is_static("\tstatically linked\n"));
        assert!(is_static("\tnot a dynamic executable\n"));
        assert_eq!(parse("\tstatically linked\n").unwrap(), vec![]);
    }

    #[test]
    fn runs_on_a_real_binary() {
        // /bin/sh is dynamic on every glibc host this runs on; tolerate static.
        let libs = libraries(Path::new("/bin/sh")).unwrap();
        assert!(libs.iter().all(|l| l.lab_path.starts_with('/')));
    }
}
