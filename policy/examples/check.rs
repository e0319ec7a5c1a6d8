//! Validates the policy files named on the command line (a development aid;
//! administrators use `curfew policy check`).
fn main() {
    for f in std::env::args().skip(1) {
        match curfew_policy::Policy::load(std::path::Path::new(&f)) {
            Ok(_) => println!("{f}: ok"),
            Err(e) => println!("{e}"),
        }
    }
}
