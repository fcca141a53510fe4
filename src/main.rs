//! The `pocketkv` binary.

fn main() -> std::process::ExitCode {
    pocketkv::cli::main()
}
