//! `strand`: the Strand command line ([`strand_node::cli`]).

fn main() -> std::process::ExitCode {
    strand_node::cli::main()
}
