//! `encoder-bridge`: the daemon that connects a cloud access-control API to card encoders,
//! and the operator commands that share its code paths.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    encoder_bridge::cli::main()
}
