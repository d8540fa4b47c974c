//! A VM's egress options: the allow-list, pinned names, and what the
//! guest is told (proxy variables, name server).

use std::net::IpAddr;
use std::path::PathBuf;

use super::config::VmConfig;
use crate::egress::netns::{GATEWAY, PROXY_PORT};
use crate::egress::{EgressSetup, Policy};
use crate::runner::NetMode;

/// The proxy variables the guest gets in the egress mode, upper and lower
/// case (curl reads `http_proxy` only in lower case; most programs read
/// either).
const PROXY_VARS: [&str; 4] = ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"];

/// The egress mode's part of a [`VmConfig`].
#[derive(Debug, Clone, Default)]
pub(crate) struct EgressOptions {
    policy: Policy,
    hosts: Vec<(String, IpAddr)>,
    log: Option<PathBuf>,
}

impl VmConfig {
    /// Chooses the egress network ([`NetMode::Egress`]) with this
    /// allow-list: the guest reaches only what `policy` names, through a
    /// proxy its `HTTP_PROXY`/`HTTPS_PROXY` variables name (set unless
    /// given with [`VmConfig::env`]) and a DNS server that resolves only
    /// allowed names. An empty policy lets nothing out.
    ///
    /// ```
    /// use krunbox::egress::Policy;
    /// use krunbox::vm::VmConfig;
    ///
    /// let policy = Policy::new(["pypi.org:443".parse()?, "*.pythonhosted.org:443".parse()?]);
    /// let config = VmConfig::new("/srv/rootfs").egress(policy);
    /// # Ok::<(), krunbox::egress::RuleError>(())
    /// ```
    pub fn egress(mut self, policy: Policy) -> Self {
        self.net = NetMode::Egress;
        self.egress.policy = policy;
        self
    }

    /// In the egress mode, resolves `name` to `addr` on the host instead
    /// of asking the host's resolver (as `docker --add-host` pins names).
    /// The policy still decides: a pinned name in a reserved range (the
    /// host's loopback, say) needs a rule naming the address.
    pub fn egress_host(mut self, name: impl Into<String>, addr: IpAddr) -> Self {
        self.egress.hosts.push((name.into(), addr));
        self
    }

    /// In the egress mode, also appends each attempt to `path` (JSON
    /// lines): the only record a one-shot command keeps (a booted VM
    /// keeps its own too). Created if missing, mode 0600.
    pub fn egress_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.egress.log = Some(path.into());
        self
    }

    /// An allow-list or pinned names without the mode is a mistake.
    pub(crate) fn check_egress(&self) -> Result<(), super::ConfigError> {
        let given = !self.egress.policy.rules().is_empty()
            || !self.egress.hosts.is_empty()
            || self.egress.log.is_some();
        match given && self.net != NetMode::Egress {
            true => Err(super::ConfigError::EgressOff(self.net)),
            false => Ok(()),
        }
    }

    /// The egress process's setup, if the mode is on (a booted VM adds
    /// the log in its directory).
    pub(crate) fn egress_setup(&self) -> Option<EgressSetup> {
        (self.net == NetMode::Egress).then(|| EgressSetup {
            allow: self
                .egress
                .policy
                .rules()
                .iter()
                .map(|r| r.to_string())
                .collect(),
            hosts: self.egress.hosts.clone(),
            logs: self.egress.log.iter().cloned().collect(),
            published: self.ports.iter().map(|p| p.host).collect(),
        })
    }

    /// The name server the guest's resolv.conf names, if the mode is on.
    pub(crate) fn egress_nameserver(&self) -> Option<String> {
        (self.net == NetMode::Egress).then(|| GATEWAY.to_string())
    }

    /// The proxy variables the guest gets, those the caller set excepted.
    pub(crate) fn egress_env(&self) -> Vec<String> {
        if self.net != NetMode::Egress {
            return Vec::new();
        }
        let proxy = format!("http://{GATEWAY}:{PROXY_PORT}");
        PROXY_VARS
            .iter()
            .filter(|var| !self.env.iter().any(|(k, _)| k == *var))
            .map(|var| format!("{var}={proxy}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_sets_the_proxy_the_nameserver_and_the_rules() {
        let dir = tempfile::tempdir().unwrap();
        let tsi = VmConfig::new(dir.path());
        assert!(tsi.egress_setup().is_none() && tsi.egress_env().is_empty());
        let policy = Policy::new(["pypi.org:443".parse().unwrap()]);
        let config = VmConfig::new(dir.path())
            .env("https_proxy", "http://mine:1")
            .egress(policy)
            .egress_host("pypi.org", "192.0.2.7".parse().unwrap());
        let setup = config.egress_setup().unwrap();
        assert_eq!(setup.allow, ["pypi.org:443"]);
        assert_eq!(
            setup.hosts,
            [("pypi.org".to_owned(), "192.0.2.7".parse().unwrap())]
        );
        assert_eq!(
            config.egress_env(),
            [
                "HTTP_PROXY=http://198.18.0.1:3128",
                "HTTPS_PROXY=http://198.18.0.1:3128",
                "http_proxy=http://198.18.0.1:3128",
            ]
        );
        assert_eq!(config.egress_nameserver().as_deref(), Some("198.18.0.1"));
        let runner = config
            .runner_config(
                crate::runner::Workload::Exec {
                    program: "true".into(),
                    args: vec![],
                },
                vec![],
            )
            .unwrap();
        assert_eq!(runner.net, NetMode::Egress);
        assert!(runner.env.contains(&"https_proxy=http://mine:1".to_owned()));
        let crate::runner::Workload::Agent { args } = runner.workload else {
            panic!("the agent sets the name server up");
        };
        assert_eq!(args[..2], ["--nameserver", "198.18.0.1"]);
    }
}
