//! `krunbox rmi`: remove image names, and images no name refers to.

use clap::Args;

use crate::cli::report;

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Image names or IDs.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

pub fn rmi(args: RmiArgs) -> i32 {
    let store = match super::store() {
        Ok(store) => store,
        Err(e) => return report::fail(&e),
    };
    let mut code = 0;
    for image in &args.images {
        match store.remove(image) {
            Ok(removal) => {
                for name in removal.untagged {
                    println!("Untagged: {name}");
                }
                if let Some(digest) = removal.deleted {
                    println!("Deleted: {digest}");
                }
            }
            Err(e) => code = report::fail(&super::ImageError::from(e)),
        }
    }
    code
}
