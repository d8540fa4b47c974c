//! Boot an image from the store with its config, as `krunbox run --image`
//! does. The README's image program.
//!
//! ```sh
//! krunbox pull alpine     # or: krunbox load -i image.tar
//! cargo run --example image -- alpine cat /etc/os-release
//! ```

use krunbox::image::Store;
use krunbox::vm::VmConfig;

fn main() -> Result<(), krunbox::Report> {
    krunbox::runner::enter_if_requested();
    let mut args = std::env::args().skip(1);
    let name = args
        .next()
        .ok_or_else(|| std::io::Error::other("usage: image IMAGE [COMMAND…]"))?;
    let image = Store::open_default()?.get(&name)?;
    let argv = image.config.command(None, args.collect()); // Entrypoint + Cmd, or the arguments
    let out = VmConfig::from_image(&image)?.command(argv).output()?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    std::process::exit(out.status.code().unwrap_or(125));
}
