//! Registry credentials: given, or read from docker's `config.json`.
//!
//! Docker's config is `$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`. Its `auths` map is keyed by registry, written
//! as a host (`localhost:5000`) or a URL (`https://ghcr.io`,
//! `https://index.docker.io/v1/` for Docker Hub); each entry has `auth`
//! (base64 of `user:password`) or `username` and `password`. Credential
//! helpers (`credsStore`, `credHelpers`) and identity tokens are not
//! supported: a registry whose credentials are only there is pulled
//! anonymously.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use super::error::RegistryError;
use crate::reference::DEFAULT_REGISTRY;

/// The variable naming docker's config directory.
pub const DOCKER_CONFIG_ENV: &str = "DOCKER_CONFIG";

/// Where a pull's credentials come from. Whatever it is, a pull tries
/// anonymously first, and uses credentials only if the registry asks.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// Docker's config: `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json` (none if neither exists).
    #[default]
    DockerConfig,
    /// The `config.json` of this directory, as if `$DOCKER_CONFIG` named it.
    DockerConfigDir(PathBuf),
    /// None: anonymous pulls only.
    Anonymous,
    /// This user name and password, for the registry pulled from.
    Basic {
        /// The user name.
        username: String,
        /// The password (or token).
        password: String,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DockerConfig => f.write_str("DockerConfig"),
            Self::DockerConfigDir(dir) => f.debug_tuple("DockerConfigDir").field(dir).finish(),
            Self::Anonymous => f.write_str("Anonymous"),
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

/// A user name and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Login {
    pub username: String,
    pub password: String,
}

#[derive(Deserialize, Default)]
struct DockerConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

impl Credentials {
    /// The login for `registry` (a normalized reference's registry), if
    /// there is one.
    pub(super) fn login_for(&self, registry: &str) -> Result<Option<Login>, RegistryError> {
        let file = match self {
            Self::Anonymous => return Ok(None),
            Self::Basic { username, password } => {
                return Ok(Some(Login {
                    username: username.clone(),
                    password: password.clone(),
                }))
            }
            Self::DockerConfigDir(dir) => dir.join("config.json"),
            Self::DockerConfig => match default_config_path() {
                Some(path) => path,
                None => return Ok(None),
            },
        };
        login_from_file(&file, registry)
    }
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
fn default_config_path() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    match var(DOCKER_CONFIG_ENV) {
        Some(dir) => Some(PathBuf::from(dir).join("config.json")),
        None => var("HOME").map(|home| PathBuf::from(home).join(".docker/config.json")),
    }
}

/// The login for `registry` in the docker config at `path`; none if the
/// file does not exist.
fn login_from_file(path: &Path, registry: &str) -> Result<Option<Login>, RegistryError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(RegistryError::DockerConfig {
                path: path.to_owned(),
                source,
            })
        }
    };
    let config: DockerConfigFile =
        serde_json::from_slice(&bytes).map_err(|source| RegistryError::DockerConfigJson {
            path: path.to_owned(),
            source,
        })?;
    // An exact key first, then any key naming the same registry.
    let entry = config.auths.get_key_value(registry).or_else(|| {
        config
            .auths
            .iter()
            .find(|(key, _)| key_registry(key) == registry)
    });
    match entry {
        Some((key, entry)) => entry.login(path, key),
        None => Ok(None),
    }
}

impl AuthEntry {
    fn login(&self, path: &Path, key: &str) -> Result<Option<Login>, RegistryError> {
        let invalid = |source| RegistryError::DockerConfigAuth {
            path: path.to_owned(),
            key: key.to_owned(),
            source,
        };
        if let Some(auth) = self.auth.as_deref().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|e| invalid(Some(e)))?;
            let text = String::from_utf8(decoded).map_err(|_| invalid(None))?;
            let (username, password) = text.split_once(':').ok_or_else(|| invalid(None))?;
            return Ok(Some(Login {
                username: username.to_owned(),
                password: password.to_owned(),
            }));
        }
        match (&self.username, &self.password) {
            (Some(username), Some(password)) if !username.is_empty() => Ok(Some(Login {
                username: username.clone(),
                password: password.clone(),
            })),
            _ => Ok(None),
        }
    }
}

/// The registry an `auths` key names, as a normalized reference spells
/// it: the host of a URL, Docker Hub's names as `docker.io`.
fn key_registry(key: &str) -> &str {
    let host = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DEFAULT_REGISTRY,
        host => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_config(json: &str) -> (tempfile::TempDir, Credentials) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("config.json"), json).unwrap();
        let credentials = Credentials::DockerConfigDir(dir.path().to_owned());
        (dir, credentials)
    }

    fn login(credentials: &Credentials, registry: &str) -> Option<(String, String)> {
        credentials
            .login_for(registry)
            .unwrap()
            .map(|l| (l.username, l.password))
    }

    #[test]
    fn reads_auth_and_username_entries() {
        // "alice:s3cr:et" and "bob:pw"
        let (_dir, credentials) = write_config(
            r#"{"auths": {
                "https://index.docker.io/v1/": {"auth": "YWxpY2U6czNjcjpldA=="},
                "localhost:5000": {"username": "carol", "password": "pw2"},
                "http://127.0.0.1:5001/v2/": {"auth": "Ym9iOnB3"},
                "ghcr.io": {}
            }, "credsStore": "desktop"}"#,
        );
        let pair = |u: &str, p: &str| Some((u.to_owned(), p.to_owned()));
        assert_eq!(login(&credentials, "docker.io"), pair("alice", "s3cr:et"));
        assert_eq!(login(&credentials, "localhost:5000"), pair("carol", "pw2"));
        assert_eq!(login(&credentials, "127.0.0.1:5001"), pair("bob", "pw"));
        assert_eq!(login(&credentials, "ghcr.io"), None);
        assert_eq!(login(&credentials, "quay.io"), None);
    }

    #[test]
    fn missing_and_broken_configs() {
        let dir = tempfile::tempdir().unwrap();
        let none = Credentials::DockerConfigDir(dir.path().join("nowhere"));
        assert_eq!(login(&none, "docker.io"), None);
        let (_dir, broken) = write_config("{not json");
        assert!(matches!(
            broken.login_for("docker.io"),
            Err(RegistryError::DockerConfigJson { .. })
        ));
        let (_dir, bad_auth) = write_config(r#"{"auths": {"docker.io": {"auth": "!!"}}}"#);
        assert!(matches!(
            bad_auth.login_for("docker.io"),
            Err(RegistryError::DockerConfigAuth {
                source: Some(_),
                ..
            })
        ));
        // base64 of "nocolon"
        let (_dir, no_colon) =
            write_config(r#"{"auths": {"docker.io": {"auth": "bm9jb2xvbg=="}}}"#);
        assert!(matches!(
            no_colon.login_for("docker.io"),
            Err(RegistryError::DockerConfigAuth { source: None, .. })
        ));
    }

    #[test]
    fn given_credentials_are_redacted() {
        let basic = Credentials::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{basic:?}").contains("hunter2"));
        assert_eq!(login(&basic, "any"), Some(("u".into(), "hunter2".into())));
        assert_eq!(login(&Credentials::Anonymous, "any"), None);
    }
}
