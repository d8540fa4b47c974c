//! Booting from an image in the store ([`krunbox_image`]): its tree as a
//! read-only root under a writable layer, its config as the defaults, the
//! way `docker run` applies them.

use krunbox_image::config::{ConfigError, RunConfig};
use krunbox_image::Image;

use super::VmConfig;

impl VmConfig {
    /// A VM booting from `image` (see [`VmConfig::from_image_tree`]), with
    /// the image's `User`, resolved in its tree, as the default user of
    /// the command and of every exec.
    pub fn from_image(image: &Image) -> Result<Self, ConfigError> {
        let vm = Self::from_image_tree(&image.root, &image.config);
        Ok(match image.config.resolve_user(&image.root)? {
            Some((uid, gid)) => vm.user(uid, gid),
            None => vm,
        })
    }

    /// The user the workload and every exec that names none run as
    /// (default: root).
    pub fn user(mut self, uid: u32, gid: u32) -> Self {
        self.user = Some((uid, gid));
        self
    }

    /// A VM booting from the image tree `root` with the run config
    /// `config`: the tree is shared read-only under a writable layer in
    /// guest memory ([`VmConfig::overlay_root`]), so any number of VMs boot
    /// from one cached tree at no cost that grows with it; the image's
    /// `Env` is the guest environment and its `WorkingDir` the working
    /// directory. Options set afterwards override them.
    ///
    /// The command is the caller's: [`RunConfig::command`] applies the
    /// image's `Entrypoint` and `Cmd`; [`VmConfig::from_image`] also
    /// applies its `User`.
    ///
    /// ```no_run
    /// use krunbox::image::Store;
    /// use krunbox::vm::VmConfig;
    ///
    /// let store = Store::open_default()?;
    /// let image = store.get("docker.io/library/debian:bookworm")?;
    /// let argv = image.config.command(None, vec!["cat".into(), "/etc/os-release".into()]);
    /// let out = VmConfig::from_image(&image)?
    ///     .command(argv)
    ///     .output()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_image_tree(root: impl Into<std::path::PathBuf>, config: &RunConfig) -> Self {
        let mut vm = VmConfig::new(root).overlay_root(true);
        for pair in &config.env {
            if let Some((key, value)) = pair.split_once('=') {
                vm = vm.env(key, value);
            }
        }
        if let Some(dir) = &config.working_dir {
            vm = vm.workdir(dir);
        }
        vm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_env_and_workdir_become_defaults_that_options_override() {
        let config = RunConfig {
            env: vec!["PATH=/opt/bin:/bin".into(), "A=1".into(), "B=x=y".into()],
            working_dir: Some("/app".into()),
            ..RunConfig::default()
        };
        let vm = VmConfig::from_image_tree("/images/x", &config).env("A", "2");
        assert!(vm.has_overlay_root());
        let env = vm.env_strings();
        assert!(env.contains(&"PATH=/opt/bin:/bin".to_owned()), "{env:?}");
        assert!(env.contains(&"B=x=y".to_owned()), "{env:?}");
        assert_eq!(vm.workdir.as_deref(), Some("/app"));
        // A later value replaces the image's.
        let a: Vec<_> = env.iter().filter(|e| e.starts_with("A=")).collect();
        assert_eq!(a, ["A=2"]);
    }
}
