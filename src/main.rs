//! The `krunbox` command line.

mod cli;

fn main() {
    // A runner process never returns from here.
    krunbox::runner::enter_if_requested();
    std::process::exit(cli::main());
}
