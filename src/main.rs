//! The `aura` binary; everything lives in the library (see `aura::cli`).

fn main() -> std::process::ExitCode {
    aura::cli::main()
}
