//! The `roof` command line: list, run and sweep the scenarios of `sim/`.

#[path = "../sim/mod.rs"]
mod sim;

mod cli;

fn main() {
    std::process::exit(cli::main());
}
