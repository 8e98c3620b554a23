//! The `lightfilter` command line: daemon, client commands, regtest peer and playground.

fn main() {
    println!("lightfilter");
}
